"""The full digits attack table (ZOQO Table I layout) and how far the quantized environments sit
from the FP attack — the slow/full setting of workloads/zoqo-attack-digits.yaml.

Why: the paper's claim (ZOQO §IV) is that at the high bit width the Quant. Model / Post Quant. /
ZOQO failure rates track the FP attack. This runs the workload (100 images × 10,000 queries by
default, ≈20 min on 2 shared cores; models are cached after the first run), writes the table
(markdown + CSV) and prints, per b, the largest |rate − FP| (the FP column is the baseline
measured in the same run).

    python benchmarks/bench_attack_table.py [--examples 100] [--queries 10000] [--methods randsign signhunter simple]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from hwsim.workloads import get_runner

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default=str(ROOT / "workloads" / "zoqo-attack-digits.yaml"),
                    help="attack workload YAML")
    ap.add_argument("--examples", type=int, default=None, help="test images (default: the YAML's)")
    ap.add_argument("--queries", type=int, default=None, help="loss-query budget (default: the YAML's)")
    ap.add_argument("--methods", nargs="*", default=None, help="subset of randsign signhunter simple")
    ap.add_argument("--out", default=str(ROOT / "reports" / "zoqo-attack-digits"), help="output folder")
    args = ap.parse_args()
    spec = yaml.safe_load(Path(args.workload).read_text())
    if args.examples is not None:
        spec["examples"] = args.examples
    if args.queries is not None:
        spec["max_loss_queries"] = args.queries
    if args.methods:
        spec["methods"] = args.methods
    t = time.perf_counter()
    run = get_runner("zoqo-attack")(spec, None, {"out_dir": Path(args.out), "progress": True})
    elapsed = time.perf_counter() - t
    print(run.metrics["table_markdown"])
    s = run.metrics["settings"]
    print(f"{s['examples']} images x {s['max_loss_queries']} queries, eps {s['eps']} / {s['eps_adv']} (adv), "
          f"delta {s['delta']}; model accuracy {run.metrics['model_accuracy']}; {elapsed:.0f} s")
    for b in s["bits"]:
        for method in spec.get("methods", ["randsign", "signhunter", "simple"]):
            row = next(r for r in run.metrics["rows"] if r["bits"] == b and r["method"] == method)
            dev = max(abs(row[f"{m}_{e}"] - row[f"{m}_fp"]) for m in ("natural", "adversarial")
                      for e in ("quant_model", "post_quant", "zoqo") if f"{m}_fp" in row and f"{m}_{e}" in row)
            print(f"b={b:2d} {method:10s}: max |failure rate - FP| = {dev:.3f}")
    print(f"tables written to {args.out}")


if __name__ == "__main__":
    main()
