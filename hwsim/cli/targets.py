"""`hwsim targets` — list, show, validate device profiles and print their JSON Schema.

Why: profiles are hand-written YAML; users need to see what hwsim resolved (after `extends:` and
unit parsing) and to check a new profile before running anything with it.
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer

from hwsim.cli._choices import TableOrJson

targets_app = typer.Typer(
    name="targets",
    help="Device profiles: list, show (fully resolved, SI units), validate, JSON Schema.",
    no_args_is_help=True,
    add_completion=False,
)


class KindOpt(str, Enum):
    mcu = "mcu"
    npu = "npu"
    gpu = "gpu"


class ShowFormat(str, Enum):
    yaml = "yaml"
    json = "json"


@targets_app.command("list")
def list_cmd(
    kind: Optional[KindOpt] = typer.Option(None, "--kind", help="Only profiles of this kind."),
    fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table (human) or json (list of objects)."),
    show_all: bool = typer.Option(False, "--all", help="Also list abstract family/base profiles."),
) -> None:
    """List profiles on the search path (repo targets/ plus $HWSIM_TARGETS_PATH)."""
    from hwsim.target import list_targets

    entries = list_targets(kind.value if kind else None, include_abstract=show_all)
    if fmt is TableOrJson.json:
        rows = [
            {"name": e.name, "kind": e.kind, "path": str(e.path), "abstract": e.abstract, "description": e.description}
            for e in entries
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not entries:
        typer.echo("no profiles found")
        return
    width = max([len("NAME")] + [len(e.name) for e in entries])
    typer.echo(f"{'NAME':<{width}}  {'KIND':<4} PATH")
    for e in entries:
        flag = " (abstract)" if e.abstract else ""
        typer.echo(f"{e.name:<{width}}  {e.kind:<4} {e.path}{flag}")


def _resolved(name_or_path: str) -> dict[str, Any]:
    from hwsim.target import load_target

    target = load_target(name_or_path)
    data = target.model_dump(mode="json", exclude={"abstract", "extends"})
    return data


@targets_app.command("show")
def show_cmd(
    target: str = typer.Argument(..., help="Profile name (file stem on the search path) or path to a YAML file."),
    fmt: ShowFormat = typer.Option(ShowFormat.yaml, "--format", help="yaml or json."),
) -> None:
    """Print the fully resolved profile: extends merged, every quantity in SI units (field names say which)."""
    data = _resolved(target)
    if fmt is ShowFormat.json:
        typer.echo(json.dumps(data, indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip())


def _expand(paths: list[Path]) -> list[Path]:
    from hwsim.target.loader import YAML_SUFFIXES

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in YAML_SUFFIXES and f.is_file()))
        else:
            files.append(p)
    return files


@targets_app.command("validate")
def validate_cmd(
    paths: List[Path] = typer.Argument(..., help="Profile files or folders (searched recursively for *.yaml)."),
    require_sources: bool = typer.Option(
        True, "--require-sources/--no-require-sources", help="Also require a `source:` for every number (default on)."
    ),
) -> None:
    """Validate profiles: one line per file (OK or its problem count, then one line per problem). Exit 2 if any is invalid."""
    from hwsim.errors import ProfileError
    from hwsim.target import check_profile

    files = _expand(paths)
    if not files:
        raise ProfileError(f"no profile files found in {', '.join(map(str, paths))}")
    bad = 0
    for f in files:
        if not f.exists():
            problems = [f"{f}: file does not exist"]
        else:
            problems = check_profile(f, require_sources=require_sources)
        if problems:
            bad += 1
            typer.echo(f"{f}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
            for p in problems:
                typer.echo(f"  - {p}")
        else:
            typer.echo(f"{f}: OK")
    if bad:
        typer.echo(f"{bad} of {len(files)} profile(s) invalid", err=True)
        raise typer.Exit(2)


@targets_app.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of the profile YAML format (for editor completion)."""
    from hwsim.target.model import Target

    schema = Target.model_json_schema(mode="validation", by_alias=True)
    props = schema.get("properties", {})
    for internal in ("path", "provenance"):
        props.pop(internal, None)
    schema["title"] = "hwsim device profile"
    schema["required"] = [r for r in schema.get("required", []) if r in props]
    typer.echo(json.dumps(schema, indent=2))


def register(app: typer.Typer) -> None:
    """Attach the `targets` sub-command group to the main app."""
    app.add_typer(targets_app, name="targets")
