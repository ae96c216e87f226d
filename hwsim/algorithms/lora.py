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
Digits task (`task: digits-rows`): a real ZOQO-LoRA fine-tuning of `RowTransformer` whose two loss
queries run in the integer emulator (`hwsim.algorithms.lora_zoqo`, `hwsim.algorithms.lora_forward`).
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
                        loss: str = "float", classes: int = 2, rng_chunk: int = 4096) -> Trace:
    """Events of one ZOQO LoRA step, shapes only (no payloads)."""
    from hwsim.algorithms.zoqo_loss import cross_entropy_work
    from hwsim.models.opt import LoRAConfig, OPTConfig, opt_forward, weight_infos

    cfg = OPTConfig.opt_1_3b(batch=batch, seq=seq) if config == "opt-1.3b" else OPTConfig.tiny(batch=batch, seq=seq)
    lora = LoRAConfig(rank=rank, alpha=alpha, targets=tuple(targets), bits=bits, signed=False)
    weights = weight_infos(cfg, lora)
    loras = [t for t in weights if ".lora_" in t.name]
    d = sum(t.numel for t in loras)
    nb = int(math.ceil(math.log2(2 * k + 1)))
    depth = max(1, int(math.ceil(math.log2(2 * k + 1))))
    fmt = "int8" if bits <= 8 else "int16"
    tr = Trace()
    tr.meta.update({"model": cfg.name, "lora_params": d, "zoqo_bits": bits, "shapes_only": True})
    with tr.phase("perturb"):
        for t in weights:          # frozen base weights and the trainable adapters, once
            tr.alloc(t)
        for t in loras:
            n = t.numel
            r = TensorInfo(f"r:{t.name}", (min(n, rng_chunk),), 32, "scratch", "uint32")   # chunked draws
            j = TensorInfo(f"noise:{t.name}", t.shape, nb, "noise", "int8")
            tr.alloc(r)
            tr.op("rng_uint32", f"rng:{t.name}", [], [r], {("rng", "int32"): n}, layer=t.name)
            tr.alloc(j)
            tr.op("inverse_cdf", f"noise:{t.name}", [r], [j], {("compare", "int32"): n * depth,
                                                                 ("elementwise", "int8"): n}, layer=t.name)
            tr.free(r)
            for tag in ("+", "-"):
                p = TensorInfo(f"{t.name}{tag}", t.shape, bits, "param", t.fmt)
                tr.alloc(p)
                tr.op("perturb_codes", f"perturb{tag}:{t.name}", [t, j], [p], {("elementwise", fmt): 2 * n},
                      layer=t.name)
    fp = opt_forward(cfg, tr, "meta", lora=lora, phase="forward_plus", alloc_weights=False, prefix="+")
    fm = opt_forward(cfg, tr, "meta", lora=lora, phase="forward_minus", alloc_weights=False, prefix="-")
    with tr.phase("compare"):
        for tag, f in (("+", fp), ("-", fm)):
            li = TensorInfo(f"loss{tag}", (1,), 32, "scratch", "fp32" if loss == "float" else "int32")
            tr.alloc(li)
            # classification loss on the label words' logits at the last position (train_as_classification)
            tr.op("cross_entropy", f"loss{tag}", [f.logits_info], [li], cross_entropy_work(batch, classes, loss))
            tr.free(f.logits_info)
        tr.op("compare_losses", "sigma", [], [], {("compare", "fp32" if loss == "float" else "int32"): 1})
    with tr.phase("update"):
        for t in loras:
            for tag in ("+", "-"):
                tr.free(TensorInfo(f"{t.name}{tag}", t.shape, bits, "param", t.fmt))
            j = TensorInfo(f"noise:{t.name}", t.shape, nb, "noise", "int8")
            tr.op("update_codes", f"update:{t.name}", [t, j], [t],
                  {("elementwise", fmt): 3 * t.numel, ("compare", fmt): 2 * t.numel}, layer=t.name)
            tr.free(j)
    return tr


def run_lora_workload(spec: dict, fields: dict, target: Any, options: dict):
    from hwsim.target import load_target
    from hwsim.workloads import WorkloadRun

    if fields.get("task", "opt-shapes") == "digits-rows":
        return _run_digits_workload(spec, fields, options)
    fields = {k: v for k, v in fields.items() if k != "task"}
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


# ---- ZOQO fine-tuning of LoRA adapters on a small transformer (digits rows as tokens) -----------
class ZOQOAdapterTrainer:
    """ZOQO on LoRA codes: integer perturb/update exactly as `ZOQOTrainer`; the two loss queries run
    the float transformer with the adapters set to their dequantized grid values (R_min + s·code).

    Kept as the float-forward reference (`zoqo-float-forward@b*` variants); the workload's ZOQO runs
    use `hwsim.algorithms.lora_zoqo.IntLoRATrainer`, whose queries run in the integer emulator.
    """

    def __init__(self, model: torch.nn.Module, names: list[str], cfg, *, zero_range: str = "paired_a",
                 zero_floor: float = 0.01) -> None:
        from hwsim.algorithms.zoqo_noise import GroupedSampler, cdf_table, counter_base, noise_steps

        self.model, self.cfg, self.names = model, cfg, list(names)
        params = dict(model.named_parameters())
        self.params = {n: params[n] for n in self.names}
        self.groups = lora_groups({n: p.detach() for n, p in self.params.items()}, cfg.bits,
                                  zero_range=zero_range, zero_floor=zero_floor, factor=cfg.range_factor)
        codes = [self.groups[n].quantize(self.params[n].detach()).reshape(-1).to(torch.int32) for n in self.names]
        self.sizes = [c.numel() for c in codes]
        self.flat = torch.cat(codes)
        ks, tables, ms = [], [], []
        for n in self.names:
            g = self.groups[n]
            k = noise_steps(cfg.mu, g.scale, cfg.k_rounding)
            sigma = cfg.sigma_steps if cfg.sigma_steps is not None else cfg.mu / g.scale
            ks.append(k)
            tables.append(cdf_table(k, sigma, cfg.noise))
            ms.append(g.steps(cfg.lr))
        self.ks, self.ms = ks, ms
        self.sampler = GroupedSampler(tables, ks, self.sizes)
        self.m_vec = torch.cat([torch.full((s,), m, dtype=torch.int32) for s, m in zip(self.sizes, ms)])
        self.q_vec = torch.cat([torch.full((s,), self.groups[n].qmax, dtype=torch.int32)
                                for s, n in zip(self.sizes, self.names)])
        self.base = counter_base(self.flat.numel())
        self.t = 0
        self._load(self.flat)

    def _load(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            for chunk, n in zip(torch.split(flat, self.sizes), self.names):
                self.params[n].copy_(self.groups[n].dequantize(chunk).view_as(self.params[n]))

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> int:
        from hwsim.algorithms.zoqo_noise import uniform32
        import torch.nn.functional as F

        j = self.sampler(uniform32(self.cfg.seed, self.t, 0, self.flat.numel(), self.base)).to(torch.int32)
        losses = []
        for sgn in (1, -1):
            c = self.flat + sgn * j
            if self.cfg.clamp_perturbed:
                c = torch.minimum(c.clamp(min=0), self.q_vec)
            self._load(c)
            losses.append(float(F.cross_entropy(self.model(x), y)))
        lp, lm = losses
        sigma = 1 if lp > lm else (0 if (self.cfg.tie == "zero" and lp == lm) else -1)
        if sigma:
            self.flat = torch.minimum((self.flat - torch.sign(j) * self.m_vec * sigma).clamp(min=0), self.q_vec)
        self._load(self.flat)
        self.t += 1
        return sigma


def run_lora_digits(*, bits_list=(8, 4), steps: int = 600, batch: int = 64, rank: int = 4, alpha: float = 8.0,
                    pretrain_epochs: int = 2, lr: float = 0.002, mu: float = 0.01, sigma_steps: float | None = None,
                    zero_range: str = "paired_a", zero_floor: float = 0.01, seed: int = 0,
                    cache_dir: str | None = None, max_train: int | None = None, loss: str = "float",
                    float_forward_variants: bool = True, trace_bits: int | None = None, calib_n: int = 256,
                    progress: bool = False) -> tuple[dict, Trace]:
    """Pretrain RowTransformer in float, add LoRA (q/v), fine-tune the adapters with ZOQO whose two
    loss queries run in the integer emulator (`IntLoRATrainer`), at each b.

    Baselines (float forward, as in ZOQO Table IV's FP / Q.-post-updates rows): FP ZO-Sign and
    Q.-post-update ZO-Sign; with `float_forward_variants`, also ZOQO with the float forward of the
    grid-valued adapters (`ZOQOAdapterTrainer`, the pre-emulator version) for comparison.
    Returns (metrics, trace of step 0 of the integer ZOQO run at `trace_bits`, default the first b).
    """
    import copy

    from hwsim.algorithms.lora_zoqo import IntLoRATrainer
    from hwsim.algorithms.zo_baselines import ZOBaseline, ZOBaselineConfig
    from hwsim.algorithms.zoqo import ZOQOConfig, batches
    from hwsim.algorithms.zoqo_forward import quantize_input
    from hwsim.data import load_dataset
    from hwsim.models.float_train import accuracy, torch_threads, train_float
    from hwsim.models.transformer import RowTransformer

    bits_list = tuple(int(b) for b in bits_list)
    trace_bits = int(trace_bits) if trace_bits is not None else bits_list[0]
    if trace_bits not in bits_list:
        raise WorkloadError(f"zoqo-lora (digits-rows): trace_bits {trace_bits} is not in bits_list {list(bits_list)}")
    trace = Trace()
    with torch_threads(1):
        x, y = load_dataset("digits", split="train", seed=seed)
        xt, yt = load_dataset("digits", split="test", seed=seed)
        if max_train:
            x, y = x[:max_train], y[:max_train]
        xq, xtq = quantize_input(x), quantize_input(xt)
        base = train_float(RowTransformer(seed=seed), (x, y), epochs=pretrain_epochs, seed=seed,
                           cache_dir=cache_dir, lr=3e-3)
        out = {"task": "digits rows as 8 tokens of 8 pixels; RowTransformer d=32, 1 block, 2 heads",
               "forward": "integer emulator (IntRowTransformer: int8 weights/activations, int16 residual, "
                          "I-BERT LayerNorm, TFLM int8 softmax) for zoqo@b*; float for sign/* and zoqo-float-forward@b*",
               "loss": loss, "pretrained_fp_accuracy": accuracy(base, xt, yt), "steps": steps, "rank": rank,
               "alpha": alpha, "zero_range": zero_range, "variants": {}, "start_accuracy": {},
               "start_accuracy_float": {}, "int_float_agreement": {}, "float_accuracy_of_int_trained": {}}
        order = list(batches(x.shape[0], batch, seed, steps))

        def fresh():
            m = copy.deepcopy(base)
            names = m.add_lora(rank, alpha, seed=seed)
            return m, names

        def agreement(trainer, m) -> float:
            trainer.load_into(m)
            with torch.no_grad():
                pf = m(xt).argmax(1)
            return float((trainer.predict(xtq) == pf).float().mean())

        m, names = fresh()
        out["lora_params"] = sum(p.numel() for n, p in m.named_parameters() if n in names)
        fp = ZOBaseline(m, ZOBaselineConfig(optimizer="sign", treatment="fp", lr=lr, mu=mu, seed=seed),
                        groups={}, trainable=names)
        for idx in order:
            fp.step(x[idx], y[idx])
        out["variants"]["sign/fp"] = accuracy(m, xt, yt)
        for bits in bits_list:
            cfg = ZOQOConfig(bits=bits, lr=lr, mu=mu, sigma_steps=sigma_steps, seed=seed, loss=loss)
            m, names = fresh()
            tr = IntLoRATrainer(m, names, cfg, x[:calib_n], zero_range=zero_range, zero_floor=zero_floor)
            out["start_accuracy"][f"b{bits}"] = tr.accuracy(xtq, yt)
            agree0 = agreement(tr, m)
            out["start_accuracy_float"][f"b{bits}"] = accuracy(m, xt, yt)
            it = order
            if progress:
                from tqdm import tqdm
                it = tqdm(order, desc=f"zoqo-lora int b={bits}", leave=False)
            for i, idx in enumerate(it):
                if i == 0 and bits == trace_bits:
                    with trace.step(0):
                        tr.step(xq[idx], y[idx], trace)
                else:
                    tr.step(xq[idx], y[idx])
            out["variants"][f"zoqo@b{bits}"] = tr.accuracy(xtq, yt)
            out["int_float_agreement"][f"b{bits}"] = {"start": agree0, "end": agreement(tr, m)}
            out["float_accuracy_of_int_trained"][f"b{bits}"] = accuracy(m, xt, yt)
            if float_forward_variants:
                m, names = fresh()
                ff = ZOQOAdapterTrainer(m, names, cfg, zero_range=zero_range, zero_floor=zero_floor)
                for idx in order:
                    ff.step(x[idx], y[idx])
                out["variants"][f"zoqo-float-forward@b{bits}"] = accuracy(m, xt, yt)
            m, names = fresh()
            groups = lora_groups({n: p.detach() for n, p in m.named_parameters() if n in names}, bits,
                                 zero_range=zero_range, zero_floor=zero_floor)
            qp = ZOBaseline(m, ZOBaselineConfig(optimizer="sign", treatment="q-post", lr=lr, mu=mu, bits=bits, seed=seed),
                            groups=groups, trainable=names)
            for idx in order:
                qp.step(x[idx], y[idx])
            out["variants"][f"sign/q-post@b{bits}"] = accuracy(m, xt, yt)
    trace.meta.update({"model": "RowTransformer+LoRA (integer)", "trace_bits": trace_bits})
    out["float_ops_by_phase"] = trace.float_ops_by_phase()
    return out, trace


def _run_digits_workload(spec: dict, fields: dict, options: dict):
    """`task: digits-rows`: ZOQO fine-tuning of the LoRA adapters with the loss queries in the integer
    emulator, plus float-forward baselines; the trace handed back is step 0 of the integer ZOQO run
    at `trace_bits` (every op of perturb, forward±, compare, update), costed ×`steps`."""
    from hwsim.workloads import WorkloadRun

    kw = {k: v for k, v in fields.items() if k != "task"}
    allowed = {"bits_list", "steps", "batch", "rank", "alpha", "pretrain_epochs", "lr", "mu", "sigma_steps",
               "zero_range", "zero_floor", "seed", "cache_dir", "max_train", "loss", "float_forward_variants",
               "trace_bits", "calib_n"}
    bad = sorted(set(kw) - allowed)
    if bad:
        raise WorkloadError(f"zoqo-lora (digits-rows): field {bad[0]!r} unknown; known: {', '.join(sorted(allowed))}")
    if "bits_list" in kw:
        kw["bits_list"] = tuple(int(b) for b in kw["bits_list"])
    metrics, trace = run_lora_digits(progress=bool(options.get("progress", True)), **kw)
    steps = int(kw.get("steps", 600))
    return WorkloadRun(name=str(spec.get("name", "zoqo-lora-digits")), trace=trace,
                       repeat={"step": steps}, metrics=metrics,
                       conventions={"trace": f"step 0 of ZOQO-LoRA at b={trace.meta['trace_bits']} with both loss "
                                             f"queries in the integer RowTransformer (batch {kw.get('batch', 64)}); "
                                             f"costed ×{steps} steps",
                                    "accuracies": "zoqo@b*: integer-emulator forward; sign/* and "
                                                  "zoqo-float-forward@b*: float forward"})
