"""Peak memory of one update step: FP training vs QAT vs ZOQO (hwsim's version of ZOQO Table V).

Why tensor-level: the paper's closed formula lost its symbols (§1.8), so every tensor live during
one step is listed (elements × bits) through alloc/free events, and the peak is read off the
liveness walk. The ZOQO trace is the real emulator trace of `ZOQOTrainer.step`; FP and QAT steps
are emitted here as explicit event programs (forward with saved activations, backward, update).

Conventions (also in the result): FP = fp32 weights, fp32 activations saved for backward, fp32
gradients, SGD (no optimizer state; `optimizer: adam` adds 2·d fp32). QAT = fp32 shadow weights,
b-bit fake-quantized weight copies and b-bit activations saved for backward, fp32 gradients
(float backward through the STE). ZOQO = b-bit codes, noise codes, the two perturbed copies,
b-bit activations freed layer by layer, two scalar losses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn as nn

from hwsim.algorithms.zoqo import ZOQOConfig, ZOQOTrainer
from hwsim.algorithms.zoqo_forward import quantize_input
from hwsim.algorithms.zoqo_loss import cross_entropy_work
from hwsim.errors import WorkloadError
from hwsim.trace import AllocEvent, FreeEvent, TensorInfo, Trace


@dataclass
class PeakResult:
    peak_bits: int
    peak_phase: str
    live_at_peak: list[tuple[str, str, int]]      # (tensor, kind, bits)
    tensors: list[tuple[str, str, tuple, int, str]]   # every tensor: (name, kind, shape, bits/elem, fmt)

    @property
    def peak_bytes(self) -> int:
        return (self.peak_bits + 7) // 8


def peak_from_trace(trace: Trace) -> PeakResult:
    """Max over time of Σ live tensors' elements × bits (alloc/free events only)."""
    live: dict[str, TensorInfo] = {}
    cur = best = 0
    best_live: list = []
    phase = ""
    seen: dict[str, TensorInfo] = {}
    for e in trace.events:
        if isinstance(e, AllocEvent):
            if e.tensor.name in live:
                continue
            live[e.tensor.name] = e.tensor
            seen.setdefault(e.tensor.name, e.tensor)
            cur += e.tensor.nbits
            if cur > best:
                best, phase = cur, e.phase
                best_live = [(t.name, t.kind, t.nbits) for t in live.values()]
        elif isinstance(e, FreeEvent) and e.tensor.name in live:
            cur -= live.pop(e.tensor.name).nbits
    return PeakResult(best, phase, best_live,
                      [(t.name, t.kind, t.shape, t.bits, t.fmt) for t in seen.values()])


def build_fc(dims: Sequence[int], seed: int = 0) -> nn.Sequential:
    from hwsim.models.mlp import build_mlp
    if len(dims) < 2:
        raise WorkloadError("zoqo-memory: dims needs at least [in, out]")
    return build_mlp((int(dims[0]),), int(dims[-1]), hidden=tuple(int(d) for d in dims[1:-1]), seed=seed)


def _layers(dims: Sequence[int]) -> list[tuple[int, int]]:
    return list(zip(dims[:-1], dims[1:]))


def backprop_trace(dims: Sequence[int], batch: int, *, mode: str, bits: int = 8, optimizer: str = "sgd") -> Trace:
    """One FP or QAT training step as events (mode: "fp" | "qat")."""
    if mode not in ("fp", "qat"):
        raise WorkloadError(f"zoqo-memory: mode {mode!r} unknown; use fp or qat")
    t = Trace()
    t.meta["model"] = f"fc{list(dims)} {mode}"
    ab = 32 if mode == "fp" else bits
    afmt = "fp32" if mode == "fp" else f"int{bits}"
    layers = _layers(dims)
    W = [TensorInfo(f"w{i}", (o, k), 32, "param", "fp32") for i, (k, o) in enumerate(layers)]
    B = [TensorInfo(f"b{i}", (o,), 32, "param", "fp32") for i, (k, o) in enumerate(layers)]
    Wq = [TensorInfo(f"wq{i}", (o, k), bits, "scratch", f"int{bits}") for i, (k, o) in enumerate(layers)]
    with t.phase("forward"):
        for w, b in zip(W, B):
            t.alloc(w)
            t.alloc(b)
        if optimizer == "adam":
            for i, w in enumerate(W + B):
                t.alloc(TensorInfo(f"adam_m:{w.name}", w.shape, 32, "optimizer", "fp32"))
                t.alloc(TensorInfo(f"adam_v:{w.name}", w.shape, 32, "optimizer", "fp32"))
        x = TensorInfo("x", (batch, dims[0]), ab, "input", afmt)
        t.alloc(x)
        acts = [x]
        for i, (k, o) in enumerate(layers):
            last = i == len(layers) - 1
            if mode == "qat":
                t.alloc(Wq[i])
                t.op("fake_quant", f"fq{i}", [W[i]], [Wq[i]], {("elementwise", "fp32"): 4 * o * k}, layer=f"fc{i}")
            a = TensorInfo(f"a{i}", (batch, o), 32 if last else ab, "activation", "fp32" if last else afmt)
            t.alloc(a)
            t.op("fully_connected", f"fc{i}", [acts[-1], Wq[i] if mode == "qat" else W[i], B[i]], [a],
                 {("mac", "fp32"): batch * o * k, ("elementwise", "fp32"): 2 * batch * o}, layer=f"fc{i}")
            acts.append(a)
        loss = TensorInfo("loss", (1,), 32, "scratch", "fp32")
        t.alloc(loss)
        t.op("cross_entropy", "loss", [acts[-1]], [loss], cross_entropy_work(batch, dims[-1]))
    with t.phase("backward"):
        g = TensorInfo(f"da{len(layers) - 1}", (batch, dims[-1]), 32, "gradient", "fp32")
        t.alloc(g)
        for i in reversed(range(len(layers))):
            k, o = layers[i]
            gw = TensorInfo(f"dw{i}", (o, k), 32, "gradient", "fp32")
            gb = TensorInfo(f"db{i}", (o,), 32, "gradient", "fp32")
            t.alloc(gw)
            t.alloc(gb)
            t.op("fc_grad_w", f"dw{i}", [g, acts[i]], [gw, gb], {("mac", "fp32"): batch * o * k}, layer=f"fc{i}")
            if i > 0:
                gx = TensorInfo(f"da{i - 1}", (batch, k), 32, "gradient", "fp32")
                t.alloc(gx)
                t.op("fc_grad_x", f"dx{i}", [g, Wq[i] if mode == "qat" else W[i]], [gx],
                     {("mac", "fp32"): batch * o * k, ("elementwise", "fp32"): batch * k}, layer=f"fc{i}")
                t.free(g)
                g = gx
            else:
                t.free(g)
            t.free(acts[i + 1])
            if mode == "qat":
                t.free(Wq[i])
        t.free(acts[0])
    with t.phase("update"):
        for i, (k, o) in enumerate(layers):
            per = 8 if optimizer == "adam" else 2
            t.op("sgd_update" if optimizer != "adam" else "adam_update", f"upd{i}",
                 [W[i], TensorInfo(f"dw{i}", (o, k), 32, "gradient", "fp32")], [W[i]],
                 {("elementwise", "fp32"): per * (o * k + o)}, layer=f"fc{i}")
            t.free(TensorInfo(f"dw{i}", (o, k), 32, "gradient", "fp32"))
            t.free(TensorInfo(f"db{i}", (o,), 32, "gradient", "fp32"))
        t.free(loss)
    return t


def zoqo_step_trace(dims: Sequence[int], batch: int, *, bits: int = 8, seed: int = 0, **zoqo_kw) -> Trace:
    """The emulator trace of one real ZOQO step on a random-init FC net (inputs uniform in [0,1])."""
    model = build_fc(dims, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(max(batch, 64), int(dims[0]), generator=g)
    y = torch.randint(0, int(dims[-1]), (batch,), generator=g)
    tr = ZOQOTrainer(model, ZOQOConfig(bits=bits, **zoqo_kw), x[:64])
    trace = Trace()
    tr.step(quantize_input(x[:batch]), y, trace)
    trace.meta["model"] = f"fc{list(dims)} zoqo b={bits}"
    return trace


def memory_table(dims: Sequence[int], batch: int, bits: int = 8, optimizer: str = "sgd",
                 zoqo_kw: dict | None = None) -> tuple[list[dict], dict[str, Trace]]:
    traces = {"FP": backprop_trace(dims, batch, mode="fp", optimizer=optimizer),
              "QAT": backprop_trace(dims, batch, mode="qat", bits=bits, optimizer=optimizer),
              "ZOQO": zoqo_step_trace(dims, batch, bits=bits, **(zoqo_kw or {}))}
    d = sum(k * o + o for k, o in _layers(dims))
    rows = []
    for name, tr in traces.items():
        pk = peak_from_trace(tr)
        by_kind: dict[str, int] = {}
        for _, kind, nb in pk.live_at_peak:
            by_kind[kind] = by_kind.get(kind, 0) + nb
        rows.append({"method": name, "params": d, "peak_MB": pk.peak_bytes / 1e6, "peak_bytes": pk.peak_bytes,
                     "peak_phase": pk.peak_phase, "tensors": len(pk.tensors),
                     **{f"{k}_MB": v / 8e6 for k, v in sorted(by_kind.items())}})
    return rows, traces


def plot_table(rows: list[dict], path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kinds = sorted({k[:-3] for r in rows for k in r if k.endswith("_MB") and k != "peak_MB"})
    fig, ax = plt.subplots(figsize=(6, 4))
    bottom = [0.0] * len(rows)
    for kind in kinds:
        vals = [r.get(f"{kind}_MB", 0.0) for r in rows]
        ax.bar([r["method"] for r in rows], vals, bottom=bottom, label=kind)
        bottom = [a + b for a, b in zip(bottom, vals)]
    ax.set_ylabel("peak memory of one update step (MB)")
    ax.set_title("tensors live at the peak, by role")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(rows: list[dict]) -> str:
    lines = ["| method | peak (MB) | phase at peak | parameters (MB) | gradients (MB) | optimizer (MB) | "
             "activations+scratch (MB) | noise (MB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        wb = r.get("param_MB", 0) + r.get("weight_MB", 0) + r.get("bias_MB", 0)
        act = r.get("activation_MB", 0) + r.get("input_MB", 0) + r.get("output_MB", 0) + r.get("scratch_MB", 0)
        lines.append(f"| {r['method']} | {r['peak_MB']:.3f} | {r['peak_phase']} | {wb:.3f} | "
                     f"{r.get('gradient_MB', 0):.3f} | {r.get('optimizer_MB', 0):.3f} | {act:.3f} | "
                     f"{r.get('noise_MB', 0):.3f} |")
    return "\n".join(lines)


def run_memory_workload(spec: dict, fields: dict, target: Any, options: dict):
    from pathlib import Path
    from hwsim.workloads import WorkloadRun

    known = {"dims", "batch", "bits", "optimizer", "zoqo", "compare_on_target"}
    bad = sorted(set(fields) - known)
    if bad:
        raise WorkloadError(f"zoqo-memory: field {bad[0]!r} unknown; known: {', '.join(sorted(known))}")
    dims = [int(v) for v in fields.get("dims", [784, 512, 256, 10])]
    batch, bits = int(fields.get("batch", 64)), int(fields.get("bits", 8))
    rows, traces = memory_table(dims, batch, bits, fields.get("optimizer", "sgd"), fields.get("zoqo"))
    metrics: dict[str, Any] = {"memory_table": rows, "table": markdown(rows), "dims": dims, "batch": batch,
                               "bits": bits}
    if target is not None and fields.get("compare_on_target", True):
        metrics["zoqo_vs_qat"] = compare_on_target(traces["ZOQO"], traces["QAT"], target)
    artifacts = {}
    out = options.get("out_dir")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        plot_table(rows, Path(out) / "zoqo_memory.png")
        (Path(out) / "zoqo_memory.md").write_text(metrics["table"] + "\n")
        artifacts = {"zoqo_memory.png": Path(out) / "zoqo_memory.png", "zoqo_memory.md": Path(out) / "zoqo_memory.md"}
    return WorkloadRun(name=str(spec.get("name", "zoqo-memory")), trace=traces["ZOQO"], repeat={"step": 1},
                       metrics=metrics, artifacts=artifacts,
                       conventions={"memory_table": "peak = max over the step of Σ live tensors' elements×bits "
                                                    "(densely packed); FP/QAT/ZOQO conventions in hwsim.algorithms.zoqo_memory"})


def compare_on_target(zoqo: Trace, qat: Trace, target) -> dict:
    """Peak SRAM (hwsim.memory.analyze), latency and energy (hwsim.cost.analytic.cost_trace) of one step each."""
    out = {}
    try:
        from hwsim.cost.analytic import cost_trace
        from hwsim.memory import analyze
    except ImportError as err:      # the memory / cost rooms not installed
        return {"unavailable": str(err)}
    for name, tr in (("ZOQO", zoqo), ("QAT", qat)):
        mem = analyze(tr, target)
        cost = cost_trace(tr, target)
        out[name] = {"peak_bytes": dict(mem.peak_bytes), "latency_s": float(cost.latency_s),
                     "energy_j": float(cost.energy_j)}
    return out
