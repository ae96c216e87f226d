"""YAML reading that remembers where every key came from (file and line).

Why: a profile error must point at `file:line`, even after `extends:` merged three files into one
tree. Mappings load as `LineDict` (a dict that also records, per key, the file and 1-based line of
that key) and sequences as `LineList`; the deep merge keeps those records, so the location of any
field in the resolved tree is the line of the file that supplied it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import yaml


class Loc(NamedTuple):
    """A place in a YAML file (line is 1-based)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class LineDict(dict):
    """A mapping that knows its own location and the location of each of its keys."""

    def __init__(self, *args: Any, loc: Loc | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.loc: Loc | None = loc
        self.key_locs: dict[Any, Loc] = {}


class LineList(list):
    """A sequence that knows its own location and that of each item."""

    def __init__(self, *args: Any, loc: Loc | None = None):
        super().__init__(*args)
        self.loc: Loc | None = loc
        self.item_locs: list[Loc] = []


class YamlProblem(Exception):
    """A YAML file cannot be read (syntax error, duplicate key); carries its location."""

    def __init__(self, loc: Loc, message: str):
        super().__init__(f"{loc}: {message}")
        self.loc = loc
        self.message = message


#: libyaml's parser when available (about 10x faster); it reports the same line marks.
_BASE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _loader_for(file: str) -> type[yaml.SafeLoader]:
    class _LineLoader(_BASE_LOADER):  # type: ignore[misc, valid-type]
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
        loader.flatten_mapping(node)
        out = LineDict(loc=Loc(file, node.start_mark.line + 1))
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise YamlProblem(
                    Loc(file, key_node.start_mark.line + 1),
                    f"duplicate key {key!r} (first at line {out.key_locs[key].line}); keep one",
                )
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_locs[key] = Loc(file, key_node.start_mark.line + 1)
        return out

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
        out = LineList(loc=Loc(file, node.start_mark.line + 1))
        for child in node.value:
            out.append(loader.construct_object(child, deep=True))
            out.item_locs.append(Loc(file, child.start_mark.line + 1))
        return out

    _LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    _LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return _LineLoader


_PARSED: dict[tuple[str, str, int], Any] = {}


def load_yaml(path: Path, display: str | None = None) -> Any:
    """Load one YAML file into LineDict/LineList trees; raise YamlProblem on unreadable input.

    Parsed trees are cached by (path, mtime); callers must treat them as read-only (the merge and
    source-stripping steps build new trees).
    """
    file = display or str(path)
    try:
        key = (str(Path(path).resolve()), file, path.stat().st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _PARSED:
        return _PARSED[key]
    tree = _load_uncached(path, file)
    if key is not None:
        _PARSED[key] = tree
    return tree


def _load_uncached(path: Path, file: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise YamlProblem(Loc(file, 0), f"cannot read file: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise YamlProblem(Loc(file, 0), "file is not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_loader_for(file))  # noqa: S506 - SafeLoader subclass
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        context = err.context or ""
        if err.context_mark is not None and err.problem_mark is not None and err.context:
            context += f" (started at line {err.context_mark.line + 1})"
        what = " ".join(x for x in (context, err.problem) if x)
        raise YamlProblem(Loc(file, line), f"YAML syntax error: {what}") from None
    except yaml.YAMLError as err:
        raise YamlProblem(Loc(file, 0), f"YAML error: {err}") from None


def deep_merge(base: Any, over: Any) -> Any:
    """Merge `over` onto `base`: mappings merge key by key, anything else is replaced.

    A `null` in `over` deletes the key. A quantity written as `{value:..., source:...}` replaces
    (never merges with) what the parent had, so a child's number never keeps the parent's source.
    """
    if not (isinstance(base, LineDict) and isinstance(over, LineDict)) or "value" in over:
        return over
    out = LineDict(base, loc=base.loc)
    out.key_locs = dict(base.key_locs)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
            out.key_locs.pop(key, None)
            continue
        out[key] = deep_merge(base[key], value) if key in base else value
        out.key_locs[key] = over.key_locs.get(key, over.loc)
    return out


def to_plain(tree: Any) -> Any:
    """Strip location records (LineDict → dict, LineList → list)."""
    if isinstance(tree, dict):
        return {k: to_plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_plain(v) for v in tree]
    return tree
