"""Option choices shared by several commands.

Why: `--format table|json` means the same on every command that prints a result; one enum lets
Typer validate it (exit 2, naming the allowed values) instead of each command checking by hand.
"""
from __future__ import annotations

from enum import Enum


class TableOrJson(str, Enum):
    table = "table"
    json = "json"
