"""Find, merge (`extends:`), validate and load device profiles; report every problem with file:line.

Why: the cost and memory models trust the Target blindly, so every mistake in a profile must be
caught here, all at once, each problem pointing at the file and line that caused it.
"""
from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import hwsim
from hwsim.errors import ProfileError
from hwsim.target.yamlio import LineDict, LineList, Loc, YamlProblem, deep_merge, load_yaml

if typing.TYPE_CHECKING:
    from pydantic import BaseModel

    from hwsim.target.model import Target

#: Imported on first use: pydantic and the Target schema cost ~0.2 s, which commands that only
#: read YAML (`hwsim targets list`) need not pay. Module attributes stay available (__getattr__).
_LAZY_NAMES = {"BaseModel": "pydantic", "ValidationError": "pydantic", "PLACEMENT_ROLES": "hwsim.target.model",
               "Target": "hwsim.target.model", "cross_check": "hwsim.target.model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        import importlib

        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

YAML_SUFFIXES = (".yaml", ".yml")
#: Keys that belong to one file and are never inherited through `extends:`.
OWN_KEYS = ("name", "abstract", "extends")
ENV_VAR = "HWSIM_TARGETS_PATH"


@dataclass(frozen=True)
class TargetEntry:
    """A profile found on the search path."""

    name: str
    kind: str
    path: Path
    abstract: bool = False
    description: str = ""


# ---------------------------------------------------------------------------------------------
# search path


def search_dirs() -> list[Path]:
    """Folders searched for profiles: `$HWSIM_TARGETS_PATH` entries first (they override), then repo `targets/`."""
    dirs = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    dirs.append(hwsim.REPO_ROOT / "targets")
    return dirs


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())


def _display(path: Path) -> str:
    """A short, stable file name for messages (relative to the working directory when inside it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(YAML_SUFFIXES) or "/" in ref or os.sep in ref


def find_profile(name_or_path: str | Path, *, near: Path | None = None) -> Path | None:
    """Path of a profile named `name_or_path` (a file stem), or the path itself if it is one.

    `near`: the folder of a profile whose `extends:` is being resolved; it is searched first.
    """
    ref = str(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(ref):
        p = Path(ref)
        if not p.is_absolute() and near is not None and (near / p).is_file():
            return near / p
        return p if p.is_file() else None
    folders = ([near] if near is not None else []) + search_dirs()
    for folder in folders:
        for suffix in YAML_SUFFIXES:
            direct = folder / f"{ref}{suffix}"
            if direct.is_file():
                return direct
        for p in _yaml_files(folder):
            if p.stem == ref:
                return p
    return None


def _known_names() -> list[str]:
    return sorted({p.stem for d in search_dirs() for p in _yaml_files(d)})


# ---------------------------------------------------------------------------------------------
# raw loading and `extends:`


class _Problems:
    """Collects `file:line: field: message` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, loc: Loc | None, field: str, message: str) -> None:
        where = str(loc) if loc is not None else "?"
        self.lines.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")

    def __bool__(self) -> bool:
        return bool(self.lines)


def _read_mapping(path: Path, problems: _Problems) -> LineDict | None:
    disp = _display(path)
    try:
        tree = load_yaml(path, disp)
    except YamlProblem as err:
        problems.add(err.loc, "", err.message)
        return None
    if not isinstance(tree, LineDict):
        problems.add(Loc(disp, 1), "", f"a profile must be a YAML mapping of fields (key: value), got {_kind_of(tree)}")
        return None
    return tree


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty file"
    return f"a {type(value).__name__} ({value!r})"


@dataclass
class RawProfile:
    """One profile file after `extends:` resolution (still YAML-shaped, with locations)."""

    path: Path
    own: LineDict  # this file alone
    merged: LineDict  # this file over all its ancestors
    chain: list[Path]  # this file, its parent, grandparent...


def resolve(path: Path, problems: _Problems, _seen: tuple[Path, ...] = ()) -> RawProfile | None:
    """Read `path` and merge it over its `extends:` ancestors; cycles and unknown parents are problems."""
    own = _read_mapping(path, problems)
    if own is None:
        return None
    parent_ref = own.get("extends")
    if parent_ref is None:
        return RawProfile(path, own, own, [path])
    loc = own.key_locs.get("extends")
    if not isinstance(parent_ref, str) or not parent_ref.strip():
        problems.add(loc, "extends", f"must be a profile name or relative path, got {parent_ref!r}")
        return None
    parent = find_profile(parent_ref, near=path.parent)
    if parent is None:
        problems.add(
            loc,
            "extends",
            f"unknown parent profile {parent_ref!r}; not found next to {path.name} or on the search path "
            f"(known: {', '.join(_known_names()) or 'none'})",
        )
        return None
    chain_ids = _seen + (path.resolve(),)
    if parent.resolve() in chain_ids:
        cycle = " -> ".join(p.stem for p in chain_ids) + f" -> {parent.stem}"
        problems.add(loc, "extends", f"'extends' cycle {cycle!r}; a profile may not (indirectly) extend itself")
        return None
    base = resolve(parent, problems, chain_ids)
    if base is None:
        return None
    inherited = LineDict(base.merged, loc=base.merged.loc)
    inherited.key_locs = dict(base.merged.key_locs)
    for key in OWN_KEYS:
        inherited.pop(key, None)
        inherited.key_locs.pop(key, None)
    merged = deep_merge(inherited, own)
    merged.loc = own.loc
    return RawProfile(path, own, merged, [path] + base.chain)


# ---------------------------------------------------------------------------------------------
# `source:` notes


def strip_sources(tree: Any, problems: _Problems, path: tuple[Any, ...] = ()) -> tuple[Any, dict[str, str]]:
    """Remove `source:` notes (recording them per field path) and unwrap `{value:, source:}`."""
    provenance: dict[str, str] = {}
    if isinstance(tree, LineDict):
        out = LineDict(loc=tree.loc)
        if "source" in tree:
            note = tree["source"]
            if not isinstance(note, str) or not note.strip():
                problems.add(tree.key_locs["source"], _fmt_path(path + ("source",)), f"must be a non-empty string, got {note!r}")
            else:
                provenance[_fmt_path(path)] = note
        for key, value in tree.items():
            if key == "source":
                continue
            new, prov = strip_sources(value, problems, path + (key,))
            out[key] = new
            out.key_locs[key] = tree.key_locs[key]
            provenance.update(prov)
        if "value" in out and path != ():
            extra = sorted(k for k in out if k != "value")
            if extra:
                problems.add(
                    out.key_locs[extra[0]],
                    _fmt_path(path + (extra[0],)),
                    f"a quantity mapping may only hold 'value' and 'source', got {extra[0]!r}",
                )
            return out["value"], provenance
        return out, provenance
    if isinstance(tree, LineList):
        out_list = LineList(loc=tree.loc)
        out_list.item_locs = list(tree.item_locs)
        for i, value in enumerate(tree):
            new, prov = strip_sources(value, problems, path + (i,))
            out_list.append(new)
            provenance.update(prov)
        return out_list, provenance
    return tree, provenance


# ---------------------------------------------------------------------------------------------
# validation


def _fmt_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _locate(tree: Any, path: Iterable[Any]) -> tuple[Loc | None, Any]:
    """Location of the deepest existing node along `path`, and that node."""
    loc = tree.loc if isinstance(tree, (LineDict, LineList)) else None
    node = tree
    for part in path:
        if isinstance(node, LineDict) and part in node:
            loc = node.key_locs.get(part, loc)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            loc = node.item_locs[part]
            node = node[part]
        else:
            break
    return loc, node


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _strip_optional(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _strip_optional(args[0]) if len(args) == 1 else tp
    return tp


#: Fields the loader fills in itself; never written in YAML.
_INTERNAL_FIELDS = ("path", "provenance")


def _yaml_keys(model: type[BaseModel]) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if name in _INTERNAL_FIELDS:
            continue
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        keys.append(str(choices[0]) if choices else name)
    return keys + ["source"]


def _model_at(path: Iterable[Any]) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at `path` (for 'allowed fields' hints)."""
    from pydantic import BaseModel

    from hwsim.target.model import Target

    tp: Any = Target
    for part in path:
        tp = _strip_optional(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next(
                (
                    f
                    for n, f in tp.model_fields.items()
                    if n == part or part in (getattr(f.validation_alias, "choices", None) or ())
                ),
                None,
            )
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return None
    tp = _strip_optional(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _describe_error(err: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "missing":
        return loc, "missing required field"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = ""
        if model:
            keys = _yaml_keys(model)
            close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
            allowed = (f"; did you mean {close[0]!r}?" if close else "") + f" (allowed: {', '.join(keys)})"
        return loc, f"unknown field {loc[-1]!r}{allowed}"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if "[key]" in loc:
        loc = loc[: loc.index("[key]")]
        return loc, f"key {value!r} is not allowed: {msg}"
    if repr(value) not in msg and not isinstance(value, dict):
        msg = f"{msg} (got {value!r})"
    return loc, msg


def _validate(raw: RawProfile, problems: _Problems, *, partial: bool) -> Target | None:
    """Validate a merged profile; `partial` (abstract family files) ignores missing fields."""
    from pydantic import ValidationError

    from hwsim.target.model import Target, cross_check

    tree, provenance = strip_sources(raw.merged, problems)
    disp = _display(raw.path)
    top = Loc(disp, 1)
    name = raw.own.get("name")
    if name is not None and name != raw.path.stem:
        problems.add(
            raw.own.key_locs.get("name", top),
            "name",
            f"profile name {name!r} must equal the file stem {raw.path.stem!r}; rename one of them",
        )
    data = dict(tree)
    for internal in _INTERNAL_FIELDS:
        if internal in data:
            problems.add(tree.key_locs.get(internal, top), internal, f"{internal!r} is filled in by hwsim; remove it")
    data["path"] = raw.path
    data["provenance"] = provenance
    try:
        target = Target.model_validate(data, context={"yaml": True, "skip_cross_checks": True})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if partial and err["type"] == "missing":
                continue
            path, msg = _describe_error(err)
            loc, _ = _locate(tree, path)
            problems.add(loc or top, _fmt_path(path), msg)
        _raw_placement_check(tree, problems, top)
        return None
    if partial:
        return target
    for path, value, msg in cross_check(target):
        loc, _ = _locate(tree, path)
        problems.add(loc or top, _fmt_path(path), f"{value!r}: {msg}")
    return None if problems else target


def _raw_placement_check(tree: LineDict, problems: _Problems, top: Loc) -> None:
    """Placement names vs memories, on the raw tree (so it is reported even when other fields fail)."""
    from hwsim.target.model import PLACEMENT_ROLES

    placement, memories = tree.get("placement"), tree.get("memories")
    if not isinstance(placement, LineDict) or not isinstance(memories, LineDict):
        return
    names = sorted(str(k) for k in memories)
    for role in PLACEMENT_ROLES:
        mem = placement.get(role)
        if isinstance(mem, str) and mem not in memories:
            problems.add(
                placement.key_locs.get(role, top),
                f"placement.{role}",
                f"{mem!r}: memory {mem!r} does not exist; defined memories: {names}",
            )


def _raise(path: Path | str, problems: _Problems) -> None:
    n = len(problems.lines)
    raise ProfileError(
        f"invalid device profile {_display(Path(path))} ({n} problem{'s' if n != 1 else ''})",
        problems=problems.lines,
    )


_CACHE: dict[Path, tuple[tuple[tuple[Path, float], ...], Target]] = {}


def _chain_stamp(chain: list[Path]) -> tuple[tuple[Path, float], ...]:
    return tuple((p.resolve(), p.stat().st_mtime) for p in chain)


def load_target(name_or_path: str | Path) -> Target:
    """Load a profile by name (file stem on the search path) or by path to a YAML file.

    Resolves `extends:`, parses units, validates everything; raises ProfileError listing every
    problem as `file:line: field.path: message`. Results are cached per file (by mtime); each
    call returns a fresh copy the caller may modify.
    """
    path = find_profile(name_or_path)
    if path is None:
        ref = str(name_or_path)
        if Path(ref).is_file():
            raise ProfileError(f"{ref}: is not a YAML device profile (.yaml/.yml); pass a profile name "
                               "(see `hwsim targets list`) or the path of a profile .yaml")
        if _looks_like_path(ref):
            raise ProfileError(f"device profile file {ref!r} does not exist")
        raise ProfileError(
            f"unknown target {ref!r}; known targets: {', '.join(e.name for e in list_targets()) or 'none'}"
            f" (search path: {', '.join(map(str, search_dirs()))}; or pass a path to a YAML file)"
        )
    cached = _CACHE.get(path.resolve())
    if cached is not None:
        try:
            if _chain_stamp([p for p, _ in cached[0]]) == cached[0]:
                return cached[1].model_copy(deep=True)
        except OSError:
            pass
    problems = _Problems()
    raw = resolve(path, problems)
    if raw is None or problems:
        _raise(path, problems)
    assert raw is not None
    if raw.merged.get("abstract") is True:
        raise ProfileError(
            f"{_display(path)} is an abstract family profile; load a concrete profile that extends it "
            f"(e.g. one listed by `hwsim targets list`)"
        )
    target = _validate(raw, problems, partial=False)
    if target is None or problems:
        _raise(path, problems)
    assert target is not None
    _CACHE[path.resolve()] = (_chain_stamp(raw.chain), target)
    return target.model_copy(deep=True)


def check_profile(path: Path, *, require_sources: bool = True) -> list[str]:
    """All problems of one profile file (abstract ones validated partially), `[]` when valid.

    `require_sources`: also apply the sourcing rule (see hwsim.target.sources).
    """
    from hwsim.target.sources import lint_sources

    problems = _Problems()
    raw = resolve(path, problems)
    if raw is None:
        return problems.lines
    abstract = raw.own.get("abstract") is True
    _validate(raw, problems, partial=abstract)
    if require_sources:
        problems.lines.extend(lint_sources(raw))
    return problems.lines


def list_targets(kind: str | None = None, *, include_abstract: bool = False) -> list[TargetEntry]:
    """Profiles on the search path (first occurrence of a name wins), optionally of one kind."""
    seen: dict[str, TargetEntry] = {}
    for folder in search_dirs():
        for path in _yaml_files(folder):
            if path.stem in seen:
                continue
            raw = resolve(path, _Problems())
            if raw is None:
                continue
            abstract = raw.own.get("abstract") is True
            entry = TargetEntry(
                name=str(raw.own.get("name", path.stem)),
                kind=str(raw.merged.get("kind", "?")),
                path=path,
                abstract=abstract,
                description=str(raw.merged.get("description", "")),
            )
            seen[path.stem] = entry
    out = [e for e in seen.values() if include_abstract or not e.abstract]
    if kind is not None:
        out = [e for e in out if e.kind == kind]
    return sorted(out, key=lambda e: (e.kind, e.name))
