"""`hwsim emulate` sub-command (not yet implemented)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Register the command on the main app. Filled in by the issue that builds it."""
