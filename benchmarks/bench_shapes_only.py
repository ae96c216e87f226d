"""Shapes-only (meta payload) integer forward pass of OPT-1.3B: wall time, events, MACs, params.

Why: the ZOQO LLM workloads cost OPT-1.3B steps from the trace without running the model; that
must take seconds, not hours. Baseline measured in the same run: the same architecture as plain
torch float ops on the ``meta`` device (shape propagation only, no events) — the ratio shows what
the event stream costs on top of torch's own shape inference.
Run: `python benchmarks/bench_shapes_only.py [--batch 16] [--seq 128] [--reps 5] [--lora-rank 0]`.
Target: <= 2 s per forward.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from hwsim.models.opt import LoRAConfig, OPTConfig, opt_forward, param_count  # noqa: E402
from hwsim.trace import Trace  # noqa: E402

PUBLISHED_PARAMS = 1_315_758_080  # facebook/opt-1.3b, HF num_parameters()


def torch_meta_forward(cfg: OPTConfig) -> None:
    """Baseline: float OPT forward on meta tensors (torch shape inference only)."""
    m = dict(device="meta")
    b, s, d, h = cfg.batch, cfg.seq, cfg.hidden, cfg.heads
    x = torch.empty(b, s, d, **m)
    emb = torch.empty(cfg.vocab, d, **m)
    for _ in range(cfg.layers):
        a = F.layer_norm(x, (d,))
        q, k, v = (F.linear(a, torch.empty(d, d, **m), torch.empty(d, **m)) for _ in range(3))
        qh, kh, vh = (t.reshape(b, s, h, d // h).transpose(1, 2) for t in (q, k, v))
        p = torch.softmax(qh @ kh.transpose(-1, -2), dim=-1)
        ctx = (p @ vh).transpose(1, 2).reshape(b, s, d)
        x = x + F.linear(ctx, torch.empty(d, d, **m), torch.empty(d, **m))
        a = F.layer_norm(x, (d,))
        f = F.relu(F.linear(a, torch.empty(cfg.ffn, d, **m), torch.empty(cfg.ffn, **m)))
        x = x + F.linear(f, torch.empty(d, cfg.ffn, **m), torch.empty(d, **m))
    F.linear(F.layer_norm(x, (d,)), emb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16, help="batch size")
    ap.add_argument("--seq", type=int, default=128, help="sequence length")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (median reported)")
    ap.add_argument("--lora-rank", type=int, default=0, help="LoRA rank on q/v (0 = none)")
    args = ap.parse_args()
    cfg = OPTConfig.opt_1_3b(batch=args.batch, seq=args.seq)
    lora = LoRAConfig(rank=args.lora_rank) if args.lora_rank else None

    times, base = [], []
    trace = Trace()
    for _ in range(args.reps):
        t0 = time.perf_counter()
        torch_meta_forward(cfg)
        base.append(time.perf_counter() - t0)
        trace = Trace()
        t0 = time.perf_counter()
        opt_forward(cfg, trace, "meta", lora=lora)
        times.append(time.perf_counter() - t0)
    t, tb = statistics.median(times), statistics.median(base)
    ops = trace.ops()
    macs = sum(e.macs for e in ops)
    params = param_count(cfg, lora)
    print(f"OPT-1.3B shapes-only integer forward, batch {cfg.batch}, seq {cfg.seq}"
          f"{f', LoRA r={args.lora_rank}' if lora else ''}")
    print(f"wall time (median of {args.reps}): {t:.4f} s   (target <= 2 s)")
    print(f"baseline torch meta-device float forward (no events): {tb:.4f} s; "
          f"ratio hwsim/baseline = {t / tb:.2f}")
    print(f"events: {len(trace)} ({len(ops)} ops), total MACs: {macs:.4e} "
          f"({macs / (cfg.batch * cfg.seq):.4e} per token)")
    print(f"params: {params:,} (published {PUBLISHED_PARAMS:,}; "
          f"{'match' if params == PUBLISHED_PARAMS else 'differs' if lora is None else 'base + LoRA'})")


if __name__ == "__main__":
    main()
