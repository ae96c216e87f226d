"""The `hwsim` command.

Why: one entry point with `--help` on every level. Each sub-command lives in its own module and
registers itself on a Typer app; heavy imports (torch, pandas) happen inside commands so
`hwsim --help` stays fast. User mistakes (HwsimError) print one message and exit with its code.

Start-up is part of what `hwsim emulate` is benchmarked on (a whole process against LiteRT), so
this module imports nothing heavy: `emulate` runs straight from its stdlib argparse parser
(`hwsim.cli.emulate`) without importing typer, and every other command builds the Typer app with
only the requested sub-command registered (`hwsim --help` registers all of them).
"""
from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from hwsim.errors import HwsimError

if TYPE_CHECKING:
    import typer

#: Sub-command modules; each defines `register(app: typer.Typer) -> None`.
_COMMAND_MODULES = ("targets", "emulate", "simulate", "calibrate", "allocate", "sweep")


def _version() -> None:
    """Print the hwsim version."""
    from hwsim import __version__

    print(__version__)


def _root() -> None:
    """hwsim: does it fit, what does it cost, which bit widths, and what if the budget changes?"""


def build_app(only: str | None = None) -> "typer.Typer":
    """The Typer app with every sub-command, or with `version` plus the one named `only`."""
    import typer

    app = typer.Typer(
        name="hwsim",
        help="Bit-accurate fixed-point emulation and hardware cost modeling for quantized networks.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},   # -h works on every level
    )
    app.command("version")(_version)
    for mod in _COMMAND_MODULES if only is None else (only,):
        importlib.import_module(f"hwsim.cli.{mod}").register(app)
    app.callback()(_root)
    return app


_APP: "typer.Typer | None" = None


def __getattr__(name: str) -> Any:
    """`hwsim.cli.app`: the full Typer app, built on first use (importing typer is not free)."""
    global _APP
    if name == "app":
        if _APP is None:
            _APP = build_app()
        return _APP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _requested(argv: list[str]) -> str | None:
    """The sub-command module to register for `argv`, or None for all (help, unknown names)."""
    if argv and argv[0] in _COMMAND_MODULES:
        return argv[0]
    return None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Exit codes: 0 ok, 1 budget failure / infeasible, 2 bad input.

    Always ends in SystemExit (like Typer's standalone mode), whichever path ran."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if args and args[0] == "emulate":
            from hwsim.cli.emulate import main as emulate_main

            emulate_main(args[1:])
            sys.exit(0)
        if args[:1] == ["version"] and len(args) == 1:
            _version()
            sys.exit(0)
        build_app(_requested(args))(args=args, prog_name="hwsim")
    except HwsimError as err:
        print(err.render(), file=sys.stderr)
        sys.exit(err.exit_code)
