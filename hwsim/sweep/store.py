"""Crash-safe result store for sweeps.

Why: a sweep killed at any moment (even SIGKILL) must resume with no point lost and none
duplicated. Each finished point is appended as one JSON line to a journal and flushed+fsynced; a
torn last line (the kill landed mid-write) is detected and ignored. `results.parquet` is rewritten
from the journal atomically (temp file + os.replace), so it is always a complete, valid file.
Rows are keyed by `point_id` (content hash), so replays deduplicate.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

RESULTS = "results.parquet"
JOURNAL = "journal.jsonl"


class ResultStore:
    """Rows keyed by `point_id`, durable across crashes."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.out_dir / JOURNAL
        self.results_path = self.out_dir / RESULTS
        self._rows: dict[str, dict] = {}
        self._load()
        self._journal = open(self.journal_path, "a", encoding="utf-8")

    # ---- loading ----------------------------------------------------------------------------
    def _load(self) -> None:
        if self.results_path.exists():
            for row in pd.read_parquet(self.results_path).to_dict("records"):
                self._rows[row["point_id"]] = row
        if self.journal_path.exists():
            good_bytes = 0
            with open(self.journal_path, "rb") as fh:
                for raw in fh:
                    try:
                        if not raw.endswith(b"\n"):
                            raise ValueError("torn line")
                        row = json.loads(raw)
                    except ValueError:
                        break  # a torn tail from a kill mid-write: drop it and everything after
                    self._rows[row["point_id"]] = row
                    good_bytes += len(raw)
            if good_bytes != self.journal_path.stat().st_size:
                with open(self.journal_path, "r+b") as fh:
                    fh.truncate(good_bytes)

    # ---- API --------------------------------------------------------------------------------
    def done_ids(self) -> set[str]:
        return set(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def append(self, rows: Iterable[dict]) -> None:
        """Durably record finished points (one fsync per call, so batch the rows)."""
        wrote = False
        for row in rows:
            if row["point_id"] in self._rows:
                continue
            self._rows[row["point_id"]] = row
            self._journal.write(json.dumps(row, default=_jsonable, sort_keys=True) + "\n")
            wrote = True
        if wrote:
            self._journal.flush()
            os.fsync(self._journal.fileno())

    def compact(self) -> Path:
        """Rewrite results.parquet from every known row, atomically."""
        frame = self.frame()
        tmp = self.results_path.with_suffix(".parquet.tmp")
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.results_path)
        return self.results_path

    def frame(self) -> pd.DataFrame:
        rows = [_flatten_for_parquet(r) for r in self._rows.values()]
        frame = pd.DataFrame(rows)
        if "point_index" in frame.columns:
            frame = frame.sort_values("point_index", kind="stable").reset_index(drop=True)
        return frame

    def close(self) -> None:
        self._journal.close()


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _flatten_for_parquet(row: dict) -> dict:
    """Nested values (bit vectors, dicts) are stored as JSON strings so parquet stays flat."""
    return {k: (json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v)
            for k, v in row.items()}
