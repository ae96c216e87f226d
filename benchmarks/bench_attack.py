"""Speed of the black-box attack harness: vectorized over the batch vs one example at a time.

Why: the attack tables run up to 10,000 queries for hundreds of images in four environments;
stepping all examples together is what makes the full digits table feasible on a small CPU.
Prints loss queries per second (examples × queries / s) for the vectorized ZOQO SignHunter and the
per-example baseline measured in the same run, and their ratio; also the integer (b-bit) forward
against the float forward of the same MLP.

    python benchmarks/bench_attack.py [--examples 32] [--queries 300]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from hwsim.algorithms.attack_envs import EnvSettings, run_environment
from hwsim.algorithms.attack_qmodel import IntegerClassifier
from hwsim.algorithms.attacks import AttackParams


def _setup(examples: int):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10)).eval()
    x = torch.rand(examples, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)          # every example correct at the start
    q = IntegerClassifier(model, torch.rand(256, 1, 8, 8), bits=8, lb=0.0, ub=1.0)
    return model, q, x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=32, help="images attacked together")
    ap.add_argument("--queries", type=int, default=300, help="loss-query budget per image")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, q, x, y = _setup(args.examples)
    # tiny ε so that (almost) no example succeeds: every image uses the whole budget
    params = AttackParams("signhunter", eps=1e-6, max_loss_queries=args.queries)
    settings = EnvSettings(bits=8, small_eps_rule="floor")

    t = time.perf_counter()
    res = run_environment("zoqo", params, model, q, x, y, settings)
    vec_s = time.perf_counter() - t
    vec_q = int(res.queries.sum())

    t = time.perf_counter()
    loop_q = 0
    for i in range(args.examples):
        r = run_environment("zoqo", params, model, q, x[i:i + 1], y[i:i + 1], settings)
        loop_q += int(r.queries.sum())
    loop_s = time.perf_counter() - t

    vec_rate, loop_rate = vec_q / vec_s, loop_q / loop_s
    print(f"ZOQO SignHunter, {args.examples} images x {args.queries} queries (int8 MLP 64-128-64-10)")
    print(f"  vectorized : {vec_rate:10.0f} queries/s")
    print(f"  per-example: {loop_rate:10.0f} queries/s   (baseline)")
    print(f"  speed-up   : {vec_rate / loop_rate:10.1f}x")

    codes = q.input_codes(x)
    reps = 200
    t = time.perf_counter()
    for _ in range(reps):
        q.logits_from_codes(codes)
    int_s = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        for _ in range(reps):
            model(x)
    fp_s = time.perf_counter() - t
    print(f"integer forward: {reps * args.examples / int_s:10.0f} images/s; float forward "
          f"{reps * args.examples / fp_s:10.0f} images/s (baseline); ratio {fp_s / int_s:.2f}")


if __name__ == "__main__":
    main()
