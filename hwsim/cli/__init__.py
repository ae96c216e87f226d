"""The `hwsim` command.

Why: one entry point with `--help` on every level. Each sub-command lives in its own module and
registers itself on the shared Typer app; heavy imports (torch, pandas) happen inside commands so
`hwsim --help` stays fast. User mistakes (HwsimError) print one message and exit with its code.
"""
from __future__ import annotations

import importlib
import sys

import typer

from hwsim.errors import HwsimError

app = typer.Typer(
    name="hwsim",
    help="Bit-accurate fixed-point emulation and hardware cost modeling for quantized networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},   # -h works on every level
)

#: Sub-command modules; each defines `register(app: typer.Typer) -> None`.
_COMMAND_MODULES = ("targets", "emulate", "simulate", "calibrate", "allocate", "sweep")


@app.command()
def version() -> None:
    """Print the hwsim version."""
    from hwsim import __version__

    typer.echo(__version__)


def _register_all() -> None:
    for mod in _COMMAND_MODULES:
        module = importlib.import_module(f"hwsim.cli.{mod}")
        module.register(app)


_register_all()


@app.callback()
def _root() -> None:
    """hwsim: does it fit, what does it cost, which bit widths, and what if the budget changes?"""


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Exit codes: 0 ok, 1 budget failure / infeasible, 2 bad input."""
    try:
        app(args=argv, prog_name="hwsim")
    except HwsimError as err:
        print(err.render(), file=sys.stderr)
        sys.exit(err.exit_code)
