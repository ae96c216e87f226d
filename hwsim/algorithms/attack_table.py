"""Failure-rate tables in the layout of ZOQO Table I (rows dataset × b × method, columns natural
FP/QM/PQ/ZOQO then adversarial FP/QM/PQ/ZOQO), as markdown and CSV.

Why: one place turns the per-cell attack outcomes into the paper's table so the CLI report, the
CSV and the tests read the same numbers.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from hwsim.algorithms.attack_envs import ENV_LABELS, ENVIRONMENTS

METHOD_LABELS = {"randsign": "RandSign", "signhunter": "SignHunter", "simple": "Simple"}
MODEL_KINDS = ("natural", "adversarial")


@dataclass
class Cell:
    """One (dataset, model kind, b, method, environment) attack outcome."""

    dataset: str
    model: str
    bits: int
    method: str
    env: str
    successes: int
    failures: int
    avg_queries: float
    eps: float
    eps_q: float | None = None
    avg_queries_repo_count: float | None = None   # Simple: the same runs counted as the repo does

    @property
    def failure_rate(self) -> float:
        n = self.successes + self.failures
        return self.failures / n if n else float("nan")


def table_rows(cells: list[Cell]) -> list[dict]:
    """One dict per (dataset, b, method): `{model}_{env}` → failure rate."""
    rows: dict[tuple, dict] = {}
    for c in cells:
        key = (c.dataset, c.bits, c.method)
        row = rows.setdefault(key, {"dataset": c.dataset, "bits": c.bits, "method": c.method})
        row[f"{c.model}_{c.env}"] = c.failure_rate
    order = {m: i for i, m in enumerate(METHOD_LABELS)}
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], -k[1], order.get(k[2], 99)))]


def _fmt(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def to_markdown(rows: list[dict]) -> str:
    head = ["data", "b", "method"] + [f"{m[:3]}. {ENV_LABELS[e]}" for m in MODEL_KINDS for e in ENVIRONMENTS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [r["dataset"], str(r["bits"]), METHOD_LABELS.get(r["method"], r["method"])]
        vals += [_fmt(r.get(f"{m}_{e}")) for m in MODEL_KINDS for e in ENVIRONMENTS]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    cols = ["dataset", "bits", "method"] + [f"{m}_{e}" for m in MODEL_KINDS for e in ENVIRONMENTS]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def cells_csv(cells: list[Cell]) -> str:
    """Long form: every cell with its counts and average queries over successes."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "model", "bits", "method", "env", "successes", "failures", "failure_rate",
                "avg_queries", "avg_queries_repo_count", "eps", "eps_q"])
    for c in cells:
        w.writerow([c.dataset, c.model, c.bits, c.method, c.env, c.successes, c.failures,
                    f"{c.failure_rate:.4f}", f"{c.avg_queries:.1f}",
                    "" if c.avg_queries_repo_count is None else f"{c.avg_queries_repo_count:.1f}", c.eps,
                    "" if c.eps_q is None else f"{c.eps_q:.6g}"])
    return buf.getvalue()
