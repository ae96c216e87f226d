"""One ZOQO-LoRA step on the digits RowTransformer (batch 64) with both loss queries in the integer
emulator (`IntLoRATrainer`) vs the same step with the float forward (`ZOQOAdapterTrainer`).

Both measured in the same run, interleaved, same model, same batches; prints seconds per step and
the ratio integer / float (the price of emulating the integer transformer on the host).
Usage: python benchmarks/bench_lora_int_step.py [--steps 50] [--repeats 5] [--bits 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch


def _block(fn, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved block pairs (median reported)")
    ap.add_argument("--bits", type=int, default=8, help="ZOQO grid bits of the adapters")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from hwsim.algorithms.lora import ZOQOAdapterTrainer
    from hwsim.algorithms.lora_zoqo import IntLoRATrainer
    from hwsim.algorithms.zoqo import ZOQOConfig
    from hwsim.algorithms.zoqo_forward import quantize_input
    from hwsim.data import load_dataset
    from hwsim.models.float_train import train_float
    from hwsim.models.transformer import RowTransformer

    x, y = load_dataset("digits", split="train", seed=0)
    base = train_float(RowTransformer(seed=0), (x, y), epochs=3, seed=0, lr=3e-3)
    cfg = ZOQOConfig(bits=a.bits, lr=0.006, mu=0.03)
    mi, mf = copy.deepcopy(base), copy.deepcopy(base)
    ni, nf = mi.add_lora(4, 8.0, seed=0), mf.add_lora(4, 8.0, seed=0)
    ti = IntLoRATrainer(mi, ni, cfg, x[:256])
    tf = ZOQOAdapterTrainer(mf, nf, cfg)
    xb, yb = x[:64], y[:64]
    xq = quantize_input(xb)
    ti.step(xq, yb)
    tf.step(xb, yb)                                   # warm-up
    t_int, t_flt, ratios = [], [], []
    for _ in range(a.repeats):
        f = _block(lambda: tf.step(xb, yb), a.steps)
        i = _block(lambda: ti.step(xq, yb), a.steps)
        t_flt.append(f)
        t_int.append(i)
        ratios.append(i / f)
    print(f"ZOQO-LoRA step, b={a.bits}, batch 64: integer forward {statistics.median(t_int) * 1e3:.2f} ms, "
          f"float forward {statistics.median(t_flt) * 1e3:.2f} ms, ratio {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
