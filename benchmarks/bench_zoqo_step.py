"""One ZOQO step (MLP on digits, batch 64) in the emulator vs one FP ZO-SignSGD step in plain torch.

Both measured in the same run, same model, same batch; prints the ratio (target ≤ 1.5).
Usage: python benchmarks/bench_zoqo_step.py [--steps 200] [--repeats 9] [--hidden 32] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from hwsim.algorithms.zo_baselines import ZOBaseline, ZOBaselineConfig
from hwsim.algorithms.zoqo import ZOQOConfig, ZOQOTrainer
from hwsim.algorithms.zoqo_forward import quantize_input
from hwsim.data import load_dataset
from hwsim.models.mlp import build_mlp


def _block(fn, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def _time_pair(fa, fb, steps: int, repeats: int) -> tuple[float, float, float]:
    """Interleaved blocks (a, b, a, b, ...): medians of each side's seconds/call and of the per-pair
    ratio b/a. Why interleaved: on a shared machine the load drifts; adjacent blocks see the same load."""
    ta, tb, ratios = [], [], []
    for _ in range(repeats):
        a = _block(fa, steps)
        b = _block(fb, steps)
        ta.append(a)
        tb.append(b)
        ratios.append(b / a)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=200, help="steps per timing block")
    ap.add_argument("--hidden", type=int, nargs="*", default=[32], help="MLP hidden widths")
    ap.add_argument("--repeats", type=int, default=9, help="interleaved FP/ZOQO block pairs")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--loss", default="float", choices=["float", "lut"])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both sides")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x, y = load_dataset("digits")
    xb, yb = x[:a.batch], y[:a.batch]
    model = build_mlp(hidden=tuple(a.hidden))
    zoqo = ZOQOTrainer(copy.deepcopy(model), ZOQOConfig(bits=a.bits, lr=0.003, mu=0.015, loss=a.loss), x[:256])
    xq = quantize_input(xb)   # sensor-side, once per batch (not part of the step)
    fp = ZOBaseline(copy.deepcopy(model), ZOBaselineConfig(optimizer="sign", treatment="fp", lr=0.003, mu=0.015))
    for _ in range(20):
        zoqo.step(xq, yb)
        fp.step(xb, yb)
    t_fp, t_zo, ratio = _time_pair(lambda: fp.step(xb, yb), lambda: zoqo.step(xq, yb), a.steps, a.repeats)
    print(f"params: {zoqo.num_params()}  batch: {a.batch}  bits: {a.bits}  loss: {a.loss}  threads: {a.threads}")
    print(f"FP ZO-SignSGD step (plain torch): {t_fp * 1e6:9.1f} us")
    print(f"ZOQO step (integer emulator):     {t_zo * 1e6:9.1f} us")
    print(f"ratio ZOQO / FP: {ratio:.2f}  (median of {a.repeats} interleaved block pairs; target <= 1.5)")


if __name__ == "__main__":
    main()
