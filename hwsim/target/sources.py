"""The sourcing rule: every number in a shipped profile says where it comes from.

Rule (checked per file, on the file as written, before merging):
  * a numeric value (a number, a list of numbers, or a quantity string such as `480 MHz`) is
    *sourced* when it is written as `{value: ..., source: "..."}` or when it sits inside a mapping
    (at any depth, in the same file) that has a `source:` note;
  * a note may cite an entry of the profile-level `sources:` mapping (this file's or an
    ancestor's) as `@id`; every such citation must resolve;
  * estimates say so in their note (`estimate: ...`) — not machine-checkable, reviewed by people.
Why: hardware numbers drift silently; a number without provenance cannot be checked or updated.
"""
from __future__ import annotations

import re
from typing import Any

from hwsim.target.yamlio import LineDict, LineList, Loc

#: `@id` preceded by start or whitespace (so `repo@commit` is not a citation).
CITATION_RE = re.compile(r"(?:^|(?<=[\s(,;]))@([A-Za-z][\w.-]*[\w])")
_NUMERIC_STR_RE = re.compile(r"^\s*[-+]?(\d|\.\d)")
#: Keys whose values are names/labels, not hardware numbers.
_NOT_NUMBERS = {"name", "kind", "description", "extends", "runtime", "rounding", "overflow", "fitted_on"}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and bool(_NUMERIC_STR_RE.match(value))


def _source_ids(raw: Any) -> set[str]:
    ids: set[str] = set()
    from hwsim.target.loader import _Problems, resolve  # local: loader imports this module lazily

    for path in raw.chain:
        r = resolve(path, _Problems())
        own = r.own if r is not None else None
        if isinstance(own, LineDict) and isinstance(own.get("sources"), dict):
            ids.update(str(k) for k in own["sources"])
    return ids


def lint_sources(raw: Any) -> list[str]:
    """Problems (`file:line: field: message`) for unsourced numbers and dangling `@id` citations."""
    ids = _source_ids(raw)
    out: list[str] = []

    def fmt(path: tuple[Any, ...]) -> str:
        s = ""
        for p in path:
            s += f"[{p}]" if isinstance(p, int) else ("." if s else "") + str(p)
        return s

    def check_note(note: Any, loc: Loc | None, path: tuple[Any, ...]) -> None:
        if not isinstance(note, str):
            return
        for cited in CITATION_RE.findall(note):
            if cited not in ids:
                out.append(
                    f"{loc}: {fmt(path)}: source cites @{cited}, which is not in `sources:` "
                    f"(known ids: {', '.join(sorted(ids)) or 'none'})"
                )

    def walk(node: Any, path: tuple[Any, ...], sourced: bool, loc: Loc | None) -> None:
        if isinstance(node, LineDict):
            has_note = isinstance(node.get("source"), str) and bool(node["source"].strip())
            if "source" in node:
                check_note(node["source"], node.key_locs.get("source"), path + ("source",))
            for key, value in node.items():
                if key in ("source", "sources") and path == () or key == "source" or key in _NOT_NUMBERS:
                    continue
                walk(value, path + (key,), sourced or has_note, node.key_locs.get(key, loc))
        elif isinstance(node, LineList):
            if any(_is_number(v) for v in node) and not sourced:
                out.append(f"{loc}: {fmt(path)}: numbers {list(node)!r} have no source; add a `source:` note")
            for i, value in enumerate(node):
                if not _is_number(value):
                    walk(value, path + (i,), sourced, node.item_locs[i])
        elif _is_number(node) and not sourced:
            out.append(
                f"{loc}: {fmt(path)}: {node!r} has no source; write {{value: {node}, source: \"...\"}} "
                "or add a `source:` note to the enclosing block"
            )

    walk(raw.own, (), False, raw.own.loc)
    return out
