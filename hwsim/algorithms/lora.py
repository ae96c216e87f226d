"""ZOQO on LoRA adapters: layer-wise grids for A/B and the shapes-only cost of one OPT-1.3B step.

Grids (§1.9): every LoRA tensor has its own grid, range = 2 × the initial [min, max].
[A] B is initialised to zero, so its range is empty. `zero_range` picks the fix:
  "paired_a" (default) — reuse the paired A's grid (same layer, same projection);
  "floor"              — ±`zero_floor`.
Shapes-only step (ZO-Bench configuration, §1.9): OPT-1.3B, r = 8, α = 16, q_proj/v_proj, batch 16;
`seq` (tokens per example, [A]: not stated for SST-2 prompts) defaults to 64. The step is
perturb (integer RNG + inverse CDF + code adds on the LoRA codes only) → two integer forwards
(`hwsim.models.opt.opt_forward` on meta payloads) → compare → integer update, costed with
`hwsim.cost.analytic.cost_trace` on each target.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from hwsim.errors import WorkloadError
from hwsim.quant import QGroup, make_group
from hwsim.trace import TensorInfo, Trace

ZERO_RANGE = ("paired_a", "floor")


def lora_groups(params: dict[str, torch.Tensor], bits: int, *, zero_range: str = "paired_a",
                zero_floor: float = 0.01, factor: float = 2.0) -> dict[str, QGroup]:
    """Grids for LoRA tensors named `<layer>.lora_A` / `<layer>.lora_B` (2× init min/max)."""
    if zero_range not in ZERO_RANGE:
        raise WorkloadError(f"lora: zero_range {zero_range!r} unknown; use one of {ZERO_RANGE}")
    out: dict[str, QGroup] = {}
    for name, t in params.items():
        lo, hi = float(t.min()), float(t.max())
        if lo != hi:
            out[name] = make_group(name, t, bits, "2x_minmax", factor)
            continue
        if zero_range == "paired_a":
            pair = name.replace("lora_B", "lora_A")
            if pair == name or pair not in params:
                raise WorkloadError(f"lora: {name} has an empty range and no paired lora_A; "
                                    "use zero_range: floor")
            a = make_group(pair, params[pair], bits, "2x_minmax", factor)
            out[name] = QGroup(name, a.r_min, a.r_max, bits)
        else:
            out[name] = QGroup(name, -zero_floor, zero_floor, bits)
    return out


def opt_lora_step_trace(*, bits: int = 8, batch: int = 16, seq: int = 64, rank: int = 8, alpha: float = 16.0,
                        targets: tuple[str, ...] = ("q_proj", "v_proj"), k: int = 1, config: str = "opt-1.3b",
                        loss: str = "float", classes: int = 2) -> Trace:
    """Events of one ZOQO LoRA step, shapes only (no payloads)."""
    from hwsim.models.opt import LoRAConfig, OPTConfig, opt_forward, weight_infos

    cfg = OPTConfig.opt_1_3b(batch=batch, seq=seq) if config == "opt-1.3b" else OPTConfig.tiny(batch=batch, seq=seq)
    lora = LoRAConfig(rank=rank, alpha=alpha, targets=tuple(targets), bits=bits, signed=False)
    loras = [t for t in weight_infos(cfg, lora) if ".lora_" in t.name]
    d = sum(t.numel for t in loras)
    nb = int(math.ceil(math.log2(2 * k + 1)))
    depth = max(1, int(math.ceil(math.log2(2 * k + 1))))
    fmt = "int8" if bits <= 8 else "int16"
    tr = Trace()
    tr.meta.update({"model": cfg.name, "lora_params": d, "zoqo_bits": bits, "shapes_only": True})
    with tr.phase("perturb"):
        for t in loras:
            tr.alloc(t)
        for t in loras:
            n = t.numel
            r = TensorInfo(f"r:{t.name}", (n,), 32, "scratch", "uint32")
            j = TensorInfo(f"noise:{t.name}", t.shape, nb, "noise", "int8")
            tr.alloc(r)
            tr.op("rng_uint32", f"rng:{t.name}", [], [r], {("rng", "int32"): n}, layer=t.name)
            tr.alloc(j)
            tr.op("inverse_cdf", f"noise:{t.name}", [r], [j], {("compare", "int32"): n * depth,
                                                                 ("elementwise", "int8"): n}, layer=t.name)
            tr.free(r)
            for tag in ("+", "-"):
                p = TensorInfo(f"{t.name}{tag}", t.shape, bits, "weight", t.fmt)
                tr.alloc(p)
                tr.op("perturb_codes", f"perturb{tag}:{t.name}", [t, j], [p], {("elementwise", fmt): 2 * n},
                      layer=t.name)
    fp = opt_forward(cfg, tr, "meta", lora=lora, phase="forward_plus", prefix="+")
    fm = opt_forward(cfg, tr, "meta", lora=lora, phase="forward_minus", alloc_weights=False, prefix="-")
    with tr.phase("compare"):
        for tag, f in (("+", fp), ("-", fm)):
            li = TensorInfo(f"loss{tag}", (1,), 32, "scratch", "fp32" if loss == "float" else "int32")
            tr.alloc(li)
            # classification loss on the label words' logits at the last position (train_as_classification)
            w = {("elementwise", "fp32"): 5 * batch * classes + 3 * batch} if loss == "float" else \
                {("elementwise", "int32"): 3 * batch * classes + 8 * batch, ("lookup", "int16"): batch * (classes + 1)}
            tr.op("cross_entropy", f"loss{tag}", [f.logits_info], [li], w)
            tr.free(f.logits_info)
        tr.op("compare_losses", "sigma", [], [], {("compare", "fp32" if loss == "float" else "int32"): 1})
    with tr.phase("update"):
        for t in loras:
            for tag in ("+", "-"):
                tr.free(TensorInfo(f"{t.name}{tag}", t.shape, bits, "weight", t.fmt))
            j = TensorInfo(f"noise:{t.name}", t.shape, nb, "noise", "int8")
            tr.op("update_codes", f"update:{t.name}", [t, j], [t],
                  {("elementwise", fmt): 3 * t.numel, ("compare", fmt): 2 * t.numel}, layer=t.name)
            tr.free(j)
    return tr


def run_lora_workload(spec: dict, fields: dict, target: Any, options: dict):
    from hwsim.target import load_target
    from hwsim.workloads import WorkloadRun

    known = {"config", "bits", "batch", "seq", "rank", "alpha", "lora_targets", "steps", "cost_targets", "loss",
             "k", "classes"}
    bad = sorted(set(fields) - known)
    if bad:
        raise WorkloadError(f"zoqo-lora: field {bad[0]!r} unknown; known: {', '.join(sorted(known))}")
    kw = dict(bits=int(fields.get("bits", 8)), batch=int(fields.get("batch", 16)), seq=int(fields.get("seq", 64)),
              rank=int(fields.get("rank", 8)), alpha=float(fields.get("alpha", 16)),
              targets=tuple(fields.get("lora_targets", ("q_proj", "v_proj"))), config=str(fields.get("config", "opt-1.3b")),
              loss=str(fields.get("loss", "float")), k=int(fields.get("k", 1)), classes=int(fields.get("classes", 2)))
    trace = opt_lora_step_trace(**kw)
    metrics: dict[str, Any] = {"lora_params": trace.meta["lora_params"], "config": kw,
                               "float_ops_by_phase": trace.float_ops_by_phase(), "per_target": {}}
    names = list(fields.get("cost_targets", []))
    try:
        from hwsim.cost.analytic import cost_trace
    except ImportError:
        cost_trace = None
    if cost_trace is not None:
        for name in names:
            tgt = load_target(name)
            c = cost_trace(trace, tgt)
            metrics["per_target"][name] = {"step_latency_s": float(c.latency_s), "step_energy_j": float(c.energy_j),
                                           "by_phase_latency_s": {str(k): float(v) for k, v in
                                                                  c.by_phase["latency_s"].items()}
                                           if "latency_s" in getattr(c.by_phase, "columns", []) else {}}
    return WorkloadRun(name=str(spec.get("name", "zoqo-lora")), trace=trace,
                       repeat={"step": int(fields.get("steps", 20000))}, metrics=metrics,
                       conventions={"trace": "one ZOQO LoRA step, shapes only (meta payloads)"})
