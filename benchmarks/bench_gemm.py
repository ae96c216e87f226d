"""Exact int8 x int8 -> int32 GEMM throughput vs torch float32 matmul of the same shape.

Why: every emulated integer product goes through `hwsim.fixedpoint.intops.int_matmul`; it must
be exact (checked once here against an int64 reference) and close to float32 GEMM speed.
Runs: `python benchmarks/bench_gemm.py [--size 1024] [--reps 21]`. Baseline and candidate are
timed interleaved (same run, same threads) and the ratio is the median of per-pair ratios.
Target: ratio >= 0.8.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from hwsim.fixedpoint.intops import int_matmul  # noqa: E402


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="M = N = K of the GEMM")
    ap.add_argument("--reps", type=int, default=21, help="timed interleaved repetitions")
    args = ap.parse_args()
    n = args.size
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
    b = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
    a[0, :] = -128  # worst case magnitude row/column: (-128)·(-128) summed K times
    b[:, 0] = -128
    af, bf = a.to(torch.float32), b.to(torch.float32)

    # Exactness, once, against int64 arithmetic (slow path, not timed).
    got = int_matmul(a, b)
    ref = torch.matmul(a.to(torch.int64), b.to(torch.int64))
    exact = bool(torch.equal(got, ref)) and got.dtype == torch.int64
    fits_int32 = bool(got.abs().max() <= 2**31 - 1)

    for _ in range(3):  # warm-up
        torch.matmul(af, bf)
        int_matmul(a, b)
    base, cand, ratios = [], [], []
    for _ in range(args.reps):
        tb = _time(lambda: torch.matmul(af, bf))
        tc = _time(lambda: int_matmul(a, b))
        base.append(tb)
        cand.append(tc)
        ratios.append(tb / tc)
    flops = 2.0 * n ** 3
    mb, mc = statistics.median(base), statistics.median(cand)
    ratio = statistics.median(ratios)
    print(f"shape {n}x{n}x{n}, torch threads {torch.get_num_threads()}, reps {args.reps}")
    print(f"exact vs int64 reference: {exact} (result max |y| = {int(got.abs().max())}, "
          f"fits int32: {fits_int32})")
    print(f"float32 matmul   median {mb * 1e3:8.2f} ms  {flops / mb / 1e9:7.1f} GFLOP/s")
    print(f"int_matmul int8  median {mc * 1e3:8.2f} ms  {flops / mc / 1e9:7.1f} GOP/s")
    print(f"ratio int_matmul/float32 throughput (median of pairs): {ratio:.3f}  (target >= 0.8)")
    print(f"ratio of best times (min/min, less sensitive to other load): {min(base) / min(cand):.3f}")
    if hasattr(os, "getloadavg"):
        print(f"1-min load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if not exact:
        raise SystemExit("int_matmul is NOT exact")


if __name__ == "__main__":
    main()
