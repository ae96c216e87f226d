"""User-facing error types.

Why: every user mistake must end in one clear message and exit code 2 (budget failures exit 1),
never a traceback. Library code raises these; the CLI turns them into messages and exit codes.
"""
from __future__ import annotations


class HwsimError(Exception):
    """A user mistake (bad file, bad field, unknown op...). The CLI prints it and exits 2."""

    exit_code = 2

    def __init__(self, message: str, *, problems: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def render(self) -> str:
        if not self.problems:
            return f"error: {self.message}"
        lines = [f"error: {self.message}"] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class ProfileError(HwsimError):
    """A device profile is malformed; `problems` holds one line per problem (file:line: field: ...)."""


class ModelError(HwsimError):
    """A model file is corrupt or uses an operator the emulator lacks."""


class WorkloadError(HwsimError):
    """A workload spec is malformed."""


class InfeasibleBudget(HwsimError):
    """No assignment meets the budget. Exit 1 (a budget verdict, not a usage error)."""

    exit_code = 1
