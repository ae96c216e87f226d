"""`bmpq-train` workload runner for `hwsim simulate --workload workloads/bmpq-*.yaml`.

Why: one YAML names the model, data, BMPQ schedule and budgets; the runner trains (digits) or
runs shapes-only (VGG16/ResNet18 CIFAR shapes), and hands back the trace of one training step at
the final widths plus metrics (accuracy, bit vector, compression, ILP history, inference cost).

Spec keys (all optional except algorithm/model):
  model: digits-cnn | vgg16-cifar10 | resnet18-cifar10 | ...
  data: digits                       (sklearn's 8×8 digits, bundled with scikit-learn)
  shapes_only: false                 (true: no training; cost one epoch and the inference)
  train_size: 50000                  (shapes-only: samples per epoch)
  bits: {layer: bits} | [..] | ilp   (shapes-only: widths to cost; ilp = uniform-sensitivity ILP)
  ilp_budgets: {compression: 9x, weights: 12KiB, latency: 2ms, energy: 1mJ}
                                     (the ILP's budgets on the *inference* Φ of the model; the
                                      top-level `budgets:` stay `hwsim simulate`'s compliance checks
                                      on the traced training step)
  accumulator: wide | target         (wide: exact int64 like TFLite 16x8 kernels, overflows of the
                                      target's accumulator counted; target: wrap/saturate/raise).
                                      Either way the final model's test accuracy is also evaluated
                                      with the other mode (`accuracy_wide` / `accuracy_target`), and
                                      overflows are surfaced in `accumulator_note` and `flags`
  inference_targets: [stm32h743, ethos-u55-256]
                                     (targets on which the resulting mixed-precision *inference* is
                                      costed and checked against device capacities, besides the
                                      workload's `target`, which runs the training)
  bmpq: {support: [4, 2], epochs, warmup_epochs, interval_epochs, batch_size, lr, ...}
"""
from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from hwsim.algorithms.bmpq import QNet, inference_trace, train_step_trace
from hwsim.algorithms.bmpq_train import BmpqConfig, plot_history, train_bmpq
from hwsim.compression import compression_ratio
from hwsim.errors import HwsimError, WorkloadError
from hwsim.models.layer_specs import ModelSpec, builtin_model
from hwsim.trace import Trace
from hwsim.workloads import WorkloadRun, register_runner


def build_net(model: ModelSpec, **kw) -> QNet:
    """The BMPQ network for a built-in model spec (ResNet topology or a chain with pools)."""
    if model.name.startswith("resnet"):
        from hwsim.models.resnet import ResNetQNet
        return ResNetQNet(model, **kw)
    from hwsim.models.vgg import bmpq_sequential
    return bmpq_sequential(model, **kw)


def load_digits_split(seed: int = 0, test_fraction: float = 0.2):
    """sklearn digits as NCHW float tensors in [0, 1] (pixel / 16), stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                              stratify=y)
    return x_tr, y_tr, x_te, y_te


def config_from_spec(spec: dict) -> BmpqConfig:
    raw = dict(spec.get("bmpq", {}) or {})
    known = {f.name for f in fields(BmpqConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise WorkloadError(f"workload field bmpq.{unknown[0]} is unknown; known: {', '.join(sorted(known))}")
    if "support" in raw:
        raw["support"] = tuple(int(b) for b in raw["support"])
    if "lr_milestones" in raw:
        raw["lr_milestones"] = tuple(int(e) for e in raw["lr_milestones"])
    raw["budgets"] = dict(spec.get("ilp_budgets", {"compression": "9x"}))
    return BmpqConfig(**raw)


def make_allocator(model: ModelSpec, target, cfg: BmpqConfig):
    """Φ once (on the target), then an ILP per interval with that interval's ENBG."""
    from hwsim.ilp import Allocator
    from hwsim.phi import parse_budget, phi_table
    phi = phi_table(model, target, bits=cfg.support, resources=tuple(cfg.budgets))
    budgets = {r: parse_budget(r, v, phi) for r, v in cfg.budgets.items()}

    def allocate(enbg: dict[str, float]):
        return Allocator(phi, enbg, objective=cfg.objective).solve(budgets)
    return allocate, phi, budgets


def _cost_summary(trace: Trace, target, repeat: int = 1) -> dict[str, Any]:
    """Latency/energy/peaks of `trace` on `target`, and whether it fits the device's memories.

    Why `fits`: a per-target inference cost is only meaningful next to whether the model fits
    there (e.g. ResNet18's weights exceed an MCU's flash); the same checks as `hwsim simulate`.
    """
    from hwsim.cost.simulation import simulate_trace
    sim = simulate_trace(trace, target, repeat={"step": repeat})
    return {"latency_s": float(sim.cost.latency_s), "energy_j": float(sim.cost.energy_j),
            "peak_bytes": {k: int(v) for k, v in sim.memory.peak_bytes.items()},
            "fits": sim.passed,
            "over_capacity": [v.budget for v in sim.verdicts if not v.passed],
            "flags": sorted(sim.cost.flag_counts)}


def _fit_flags(inference: dict[str, dict]) -> list[str]:
    """One `[inference]` flag per target the final model's inference does not fit (or cannot run on)."""
    out = []
    for name, c in inference.items():
        if "error" in c:
            out.append(f"[inference] not costed on {name}: {c['error']}")
        elif not c.get("fits", True):
            out.append(f"[inference] the mixed-precision model does not fit {name}: "
                       f"{', '.join(c['over_capacity'])} exceeded")
    return out


def _fit_note(fits: dict[str, bool]) -> str:
    """One short line (the terminal report shows metrics up to 100 characters inline)."""
    yes = [n for n, ok in fits.items() if ok]
    no = [n for n, ok in fits.items() if not ok]
    if not no:
        return "inference fits " + ", ".join(yes)
    return "inference does NOT fit " + ", ".join(no) + ("; fits " + ", ".join(yes) if yes else "")


def _inference_line(costs: dict[str, dict]) -> str:
    """'target latency/energy' per inference target, short enough for the terminal table."""
    from hwsim.budgets import format_value
    return "; ".join(f"{n} {format_value(c['latency_s'], 's')} {format_value(c['energy_j'], 'J')}"
                     for n, c in costs.items() if "latency_s" in c)


def inference_targets(spec: dict) -> list:
    """The `inference_targets:` of a workload, loaded (a bad name raises ProfileError → exit 2)."""
    from hwsim.target import load_target
    names = spec.get("inference_targets") or []
    if not isinstance(names, list):
        raise WorkloadError(f"workload field inference_targets={names!r}: give a list of target names, "
                            "e.g. [stm32h743, ethos-u55-256]")
    return [load_target(str(n)) for n in names]


def _shapes_bits(model: ModelSpec, spec: dict, cfg: BmpqConfig, target) -> tuple[dict[str, int], str]:
    bits = spec.get("bits", "ilp")
    names = [s.name for s in model.layers]
    if isinstance(bits, dict):
        return {n: int(bits.get(n, model.layer(n).fixed_bits or cfg.q_max)) for n in names}, "given"
    if isinstance(bits, list):
        if len(bits) != len(names):
            raise WorkloadError(f"workload field bits has {len(bits)} entries; model {model.name} has "
                                f"{len(names)} weighted layers")
        return dict(zip(names, (int(b) for b in bits))), "given"
    if bits != "ilp":
        raise WorkloadError(f"workload field bits={bits!r}: give a list, a mapping or 'ilp'")
    allocate, _, _ = make_allocator(model, target, cfg)
    return dict(allocate({n: 1.0 for n in names}).bits), "ilp, uniform sensitivity"


def run_shapes_only(model: ModelSpec, spec: dict, target, cfg: BmpqConfig,
                    targets: list | None = None) -> WorkloadRun:
    """Cost one BMPQ training epoch and the resulting mixed-precision inference, shapes only."""
    bits, source = _shapes_bits(model, spec, cfg, target)
    with torch.device("meta"):
        net = build_net(model, device="meta")
    net.set_bits(bits)
    c, h, w = model.input_shape
    x = torch.empty(cfg.batch_size, c, h, w, device="meta")
    step = train_step_trace(net, x, None, shapes_only=True)
    infer = inference_trace(net, torch.empty(1, c, h, w, device="meta"))
    steps = math.ceil(int(spec.get("train_size", 50000)) / cfg.batch_size)
    metrics: dict[str, Any] = {
        "model": model.name, "bits": bits, "bits_source": source, "steps_per_epoch": steps,
        "compression_ratio": float(compression_ratio(model, bits)),
        "macs_per_inference": sum(e.macs for e in infer.ops()),
    }
    per_target: dict[str, Any] = {}
    # the workload's target trains (epoch + inference); inference_targets only run the result
    jobs = [(t, True) for t in ([target] if target is not None else []) + list(targets or [])]
    jobs += [(t, False) for t in inference_targets(spec)]
    for t, train in jobs:
        if t.name in per_target:
            continue
        try:
            entry = {"train_epoch": _cost_summary(step, t, steps)} if train else {}
            entry["inference"] = _cost_summary(infer, t)
            per_target[t.name] = entry
        except HwsimError as err:      # e.g. a GPU profile pricing no int16 MAC for the 16-bit layers
            per_target[t.name] = {"error": err.message}
    fits = {n: c["inference"]["fits"] for n, c in per_target.items() if "inference" in c}
    flags = _fit_flags({n: c["inference"] for n, c in per_target.items() if "inference" in c})
    # flags and the fit summary first: the terminal report lists metrics in order and truncates
    metrics = {"inference_note": _fit_note(fits), **({"flags": flags} if flags else {}),
               "inference_fits": fits, **metrics, "costs": per_target}
    return WorkloadRun(f"bmpq-{model.name}-shapes", step, {"step": steps}, metrics,
                       {"shapes_only": "no numbers computed; BN not modelled"})


def _accumulator_check(net: QNet, data, target, mode: str, accuracy: float,
                       train_overflows: dict[str, int]) -> dict[str, Any]:
    """Test accuracy with the exact (int64) and with the target's accumulator, plus a visible note.

    Why: with `accumulator: wide` the reported accuracy assumes int64 accumulation (TFLite's 16x8
    kernels), while the 16-bit first/last layers overflow a 32-bit accumulator; users must see
    the overflow and whether the accuracy survives the target's wrap/saturate. The final model is
    re-evaluated once with the other mode (no retraining); the training mode is then restored.
    """
    from hwsim.algorithms.bmpq_train import _accuracy
    bits, policy = target.numerics.accumulator_bits, target.numerics.overflow
    x_te, y_te = data[2], data[3]
    other = "target" if mode == "wide" else "wide"
    net.set_accumulator(bits, policy, apply=(other == "target"))
    try:
        other_acc: float | None = _accuracy(net, x_te, y_te)
        err = ""
    except HwsimError as e:               # numerics.overflow: raise
        other_acc, err = None, e.message
    test_over = {k: v for k, v in net.overflows().items() if v}
    net.set_accumulator(bits, policy, apply=(mode == "target"))
    wide_acc, target_acc = (accuracy, other_acc) if mode == "wide" else (other_acc, accuracy)
    out: dict[str, Any] = {"accuracy_wide": wide_acc, "accuracy_target": target_acc}
    layers = sorted(k for k, v in train_overflows.items() if v) or sorted(test_over)
    if not layers:
        out["accumulator_note"] = f"no int{bits} accumulator overflow"
        return out
    shown = "raises" if target_acc is None else f"{target_acc:.4f}"
    out["accumulator_note"] = (f"{','.join(layers)} overflow int{bits}: test acc {wide_acc:.4f} "
                               f"(int64) vs {shown} (int{bits} {policy})" if wide_acc is not None else
                               f"{','.join(layers)} overflow int{bits}; int64 evaluation failed")
    out["flags"] = [
        f"[accumulator] layers {', '.join(layers)} overflow the {target.name} int{bits} accumulator "
        f"({sum(train_overflows.values())} values over training, {sum(test_over.values())} on the "
        f"test set); `accuracy` uses accumulator: {mode}. With int{bits} {policy} the test accuracy "
        f"is {shown if not err else 'not computable: ' + err}; with exact int64 it is "
        f"{'n/a' if wide_acc is None else f'{wide_acc:.4f}'}"]
    return out


@register_runner("bmpq-train")
def run(spec: dict, target, options: dict) -> WorkloadRun:
    model = builtin_model(str(spec.get("model", "digits-cnn")))
    cfg = config_from_spec(spec)
    if spec.get("shapes_only", False):
        targets = None
        if options.get("all_targets"):
            from hwsim.target import list_targets, load_target
            targets = [load_target(e.path) for e in list_targets()]
        return run_shapes_only(model, spec, target, cfg, targets)
    if spec.get("data", "digits") != "digits":
        raise WorkloadError(f"workload field data={spec.get('data')!r}: only 'digits' is bundled; use "
                            "shapes_only: true for CIFAR-shaped models")
    if options.get("quick"):
        cfg.epochs = min(cfg.epochs, 4)
        cfg.warmup_epochs = min(cfg.warmup_epochs, 2)
        cfg.interval_epochs = 1
    data = load_digits_split(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = build_net(model, alpha_init=cfg.alpha_init, ternary_at_2=cfg.ternary_at_2)
    mode = spec.get("accumulator", "wide")
    if mode not in ("wide", "target"):
        raise WorkloadError(f"workload field accumulator={mode!r}: use 'wide' (exact int64, count the "
                            "target's overflows) or 'target' (apply the target's width and policy)")
    if target is not None:
        net.set_accumulator(target.numerics.accumulator_bits, target.numerics.overflow,
                            apply=(mode == "target"))
    allocate, phi, budgets = make_allocator(model, target, cfg)
    result = train_bmpq(net, data, cfg, allocate, progress=options.get("progress", True))
    x_tr, y_tr = data[0], data[1]
    step = train_step_trace(net, x_tr[:cfg.batch_size], y_tr[:cfg.batch_size])
    infer = inference_trace(net, x_tr[:1])
    steps = math.ceil(len(x_tr) / cfg.batch_size) * cfg.epochs
    metrics: dict[str, Any] = {}
    if target is not None:
        train_overflows = net.overflows()
        metrics.update(_accumulator_check(net, data, target, mode, result.accuracy, train_overflows))
    metrics.update({
        "accuracy": result.accuracy, "train_accuracy": result.train_accuracy,
        "bits": result.bits, "compression_ratio": result.compression_ratio,
        "compression_ratio_16": result.compression_ratio / 2,
        "budgets": budgets, "phi_totals": {r: phi.total(result.bits, r) for r in phi.resources},
        "sensitivity": "ENBG (BMPQ)",
        "intervals": [{"end_epoch": r.end_epoch, "enbg": r.enbg, "bits_before": r.bits_before,
                       "bits_after": r.bits_after, "objective": r.objective,
                       "binding": r.binding} for r in result.intervals],
        "epochs": result.epoch_log,
    })
    if target is not None:
        metrics["accumulator"] = (f"{mode}: overflows counted against int{target.numerics.accumulator_bits}"
                                  f" ({target.numerics.overflow}), summed over every training forward pass")
        metrics["accumulator_overflows"] = train_overflows
        metrics["inference_cost"] = _cost_summary(infer, target)
        metrics["inference_costs"] = {target.name: metrics["inference_cost"]}
        metrics["training_cost"] = _cost_summary(step, target, steps)
        metrics["training_step_cost"] = _cost_summary(step, target)
    for t in inference_targets(spec):
        try:
            metrics.setdefault("inference_costs", {})[t.name] = _cost_summary(infer, t)
        except HwsimError as err:
            metrics.setdefault("inference_costs", {})[t.name] = {"error": err.message}
    flags = _fit_flags(metrics.get("inference_costs", {}))
    if flags:
        metrics["flags"] = list(metrics.get("flags", [])) + flags
    if "inference_costs" in metrics:
        fits = {n: c.get("fits", False) for n, c in metrics["inference_costs"].items()}
        metrics = {"inference_note": _fit_note(fits),
                   "inference_summary": _inference_line(metrics["inference_costs"]), **metrics}
    artifacts = {}
    if options.get("out_dir"):
        artifacts = {k: Path(v) for k, v in plot_history(result, options["out_dir"]).items()}
        metrics["plots"] = {k: str(v) for k, v in artifacts.items()}
    return WorkloadRun(f"bmpq-{model.name}", step, {"step": steps}, metrics,
                       {"trace": "one training step at the final widths (batch "
                                 f"{cfg.batch_size}); repeat = steps of the whole run"}, artifacts)
