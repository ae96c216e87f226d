"""Regenerated sections of VALIDATION.md, shared by the validation scripts.

Why: each script owns one block between its BEGIN/END markers; the hand-written prose around the
blocks must survive every regeneration.
"""
from __future__ import annotations

from pathlib import Path


def write_block(path: Path, begin: str, end: str, block: str) -> None:
    """Replace the text between `begin` and `end` (markers included in `block`), or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Validation\n\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
