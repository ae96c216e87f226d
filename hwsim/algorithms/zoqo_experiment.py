"""The ZOQO-vs-baselines comparison on a small classifier (the digits version of ZOQO Table IV).

Why a module of its own: the workload runner, the tests and the benchmark all need the same
"pretrain in float → train every variant for N steps from the same start → test accuracy" loop.
Quantized variants are scored with the integer emulator forward (IntNet) on their b-bit codes;
the FP variant with the float model.

Hyper-parameters: `sign` / `adam` / `zoqo` hold the shared defaults; `variant_hp` overrides them per
variant ("sign/q-post") or per variant and bit width ("sign/q-post@b4"). With `val_fraction` set,
a stratified validation split is carved out of the *training* set (seeded by `seed`), the variants
train on the rest and are scored on it ("val_accuracy"); the test set is not touched. That is the
selection protocol of `zoqo_tuning` (hyper-parameters are never chosen by test accuracy).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn as nn

from hwsim.algorithms.zo_baselines import ZOBaseline, ZOBaselineConfig
from hwsim.algorithms.zoqo import ZOQOConfig, ZOQOTrainer, batches
from hwsim.algorithms.zoqo_forward import IntNet, quantize_input
from hwsim.data import load_dataset
from hwsim.errors import WorkloadError
from hwsim.models.float_train import accuracy, torch_threads, train_float
from hwsim.quant import QGroup, make_group
from hwsim.trace import Trace

#: variant names: "zoqo" and "<optimizer>/<treatment>" (see zo_baselines)
DEFAULT_VARIANTS = ("zoqo", "sign/fp", "sign/post-q", "sign/q-post", "sign/q-noise",
                    "adam/fp", "adam/post-q", "adam/q-post", "adam/q-noise")


@dataclass
class ExperimentSpec:
    dataset: str = "digits"
    path: str | None = None
    model: str = "mlp"
    hidden: tuple[int, ...] = (32,)
    channels: tuple[int, ...] = (8, 16)
    pretrain_epochs: int = 1
    pretrain_lr: float = 1e-2
    steps: int = 2000
    batch: int = 64
    seed: int = 0
    bits: tuple[int, ...] = (8, 4)
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    zoqo: dict = field(default_factory=dict)            # ZOQOConfig fields
    sign: dict = field(default_factory=lambda: {"lr": 1e-3, "mu": 1e-3})
    adam: dict = field(default_factory=lambda: {"lr": 1e-3, "mu": 1e-3})
    baseline_range_mode: str | None = None              # grid of the quantized baselines (None: ZOQO's)
    trace_bits: int | None = None                       # bits of the traced ZOQO step (default: first)
    cache_dir: str | None = None
    max_train: int | None = None                        # subsample the training set (quick runs)
    variant_hp: dict = field(default_factory=dict)      # "variant" or "variant@bN" -> hyper-parameter overrides
    val_fraction: float | None = None                   # hold out this share of train; score on it, not on test


@dataclass
class ExperimentResult:
    metrics: dict[str, Any]
    trace: Trace
    trainer: ZOQOTrainer | None


def build_model(spec: ExperimentSpec, in_shape: tuple[int, ...], classes: int) -> nn.Module:
    if spec.model == "mlp":
        from hwsim.models.mlp import build_mlp
        return build_mlp(in_shape, classes, hidden=spec.hidden, seed=spec.seed)
    if spec.model == "cnn":
        from hwsim.models.cnn import build_cnn
        return build_cnn(in_shape, classes, channels=spec.channels, seed=spec.seed)
    raise WorkloadError(f"zoqo-train: model {spec.model!r} unknown; use mlp or cnn")


def _int_accuracy(model: nn.Module, groups: dict[str, QGroup], codes: dict[str, torch.Tensor],
                  calib_x: torch.Tensor, xq: torch.Tensor, y: torch.Tensor) -> float:
    net = IntNet.from_float(model, groups, codes, calib_x)
    pred = net.forward(codes, xq).argmax(1)
    return float((pred == y).float().mean())


BASELINE_HP = ("lr", "mu", "range_mode", "range_factor")


def variant_hparams(spec: ExperimentSpec, variant: str, bits: int) -> dict:
    """Hyper-parameters of one variant at one bit width: shared block, then `variant`, then `variant@bN`.

    ZOQO: ZOQOConfig fields (its noise seed follows `spec.seed` unless given). Baselines: lr, mu,
    range_mode (default `baseline_range_mode`, else ZOQO's), range_factor.
    """
    over = {**spec.variant_hp.get(variant, {}), **spec.variant_hp.get(f"{variant}@b{bits}", {})}
    if variant == "zoqo":
        return {"seed": spec.seed, **spec.zoqo, **over, "bits": bits}
    opt = variant.partition("/")[0]
    hp = {"range_mode": spec.baseline_range_mode or spec.zoqo.get("range_mode", "minmax"),
          "range_factor": spec.zoqo.get("range_factor", 2.0),
          **(spec.sign if opt == "sign" else spec.adam), **over}
    bad = sorted(set(hp) - set(BASELINE_HP))
    if bad:
        raise WorkloadError(f"zoqo-train: hyper-parameter {bad[0]!r} of {variant} unknown; use {', '.join(BASELINE_HP)}")
    return hp


def holdout_split(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int):
    """Stratified (train, validation) split of the training set, deterministic in `seed`."""
    if not 0.0 < fraction < 1.0:
        raise WorkloadError(f"zoqo-train: val_fraction {fraction} must lie in (0, 1)")
    from sklearn.model_selection import train_test_split
    idx = torch.arange(y.shape[0]).numpy()
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed + 1000, stratify=y.numpy())
    tr, va = torch.as_tensor(sorted(tr)), torch.as_tensor(sorted(va))
    return x[tr], y[tr], x[va], y[va]


def run_experiment(spec: ExperimentSpec, *, progress: bool = False) -> ExperimentResult:
    with torch_threads(1):
        return _run(spec, progress)


def _run(spec: ExperimentSpec, progress: bool) -> ExperimentResult:
    x, y = load_dataset(spec.dataset, spec.path, "train", seed=spec.seed)
    if spec.val_fraction:
        x, y, xt, yt = holdout_split(x, y, spec.val_fraction, spec.seed)
        split = "val"
    else:
        xt, yt = load_dataset(spec.dataset, spec.path, "test", seed=spec.seed)
        split = "test"
    if spec.max_train:
        x, y = x[:spec.max_train], y[:spec.max_train]
    classes = int(max(int(y.max()), int(yt.max())) + 1)
    base = build_model(spec, tuple(x.shape[1:]), classes)
    t0 = time.perf_counter()
    base = train_float(base, (x, y), epochs=spec.pretrain_epochs, seed=spec.seed, cache_dir=spec.cache_dir,
                       lr=spec.pretrain_lr)
    metrics: dict[str, Any] = {"dataset": spec.dataset, "model": spec.model, "steps": spec.steps,
                               "batch": spec.batch, "train_size": int(x.shape[0]), f"{split}_size": int(xt.shape[0]),
                               "eval_split": split, "pretrained_fp_accuracy": accuracy(base, xt, yt),
                               "pretrain_s": time.perf_counter() - t0, "variants": {}}
    xq, xtq = quantize_input(x), quantize_input(xt)
    calib = x[:256]
    trace = Trace()
    trace_bits = spec.trace_bits if spec.trace_bits is not None else spec.bits[0]
    kept: ZOQOTrainer | None = None
    order = list(batches(x.shape[0], spec.batch, spec.seed, spec.steps))
    fp_done: dict[tuple, ZOBaseline] = {}     # FP runs by (optimizer, lr, mu): post-q quantizes them
    for variant in spec.variants:
        for bits in spec.bits:
            key = f"{variant}@b{bits}"
            t1 = time.perf_counter()
            if variant == "zoqo":
                hp = variant_hparams(spec, variant, bits)
                cfg = ZOQOConfig(**hp)
                trainer = ZOQOTrainer(copy.deepcopy(base), cfg, calib)
                start = trainer.accuracy(xtq, yt)
                it = _progress(order, progress, key)
                for i, idx in enumerate(it):
                    if bits == trace_bits and i == 0:
                        with trace.step(0):
                            trainer.step(xq[idx], y[idx], trace)
                    else:
                        trainer.step(xq[idx], y[idx])
                acc = trainer.accuracy(xtq, yt)
                train_acc = trainer.accuracy(xq, y)
                if bits == trace_bits:
                    kept = trainer
                info = {"start_accuracy": start, "m": {n: s.m for n, s in trainer.state.items()},
                        "k": {n: s.k for n, s in trainer.state.items()},
                        "step_size": {n: s.m * s.group.scale for n, s in trainer.state.items()},
                        "hp": {k: hp[k] for k in ("lr", "mu", "range_mode") if k in hp}}
            else:
                opt, _, treat = variant.partition("/")
                hp = variant_hparams(spec, variant, bits)
                fp_key = (opt, hp["lr"], hp["mu"])
                if treat in ("fp", "post-q") and fp_key in fp_done:
                    runner = fp_done[fp_key]    # post-q reuses the FP run (quantized once at the end)
                else:
                    cfg = ZOBaselineConfig(optimizer=opt, treatment=treat or "fp", bits=bits, seed=spec.seed, **hp)
                    model = copy.deepcopy(base)
                    groups = {n: make_group(n, p.detach(), bits, cfg.range_mode, cfg.range_factor)
                              for n, p in model.named_parameters()}
                    runner = ZOBaseline(model, cfg, groups)
                    for idx in _progress(order, progress, key):
                        runner.step(x[idx], y[idx])
                    if treat in ("fp", "post-q"):
                        fp_done[fp_key] = runner
                if treat == "fp":
                    if f"{variant}@fp" in metrics["variants"]:
                        continue
                    key = f"{variant}"
                    acc = accuracy(runner.model, xt, yt)
                    train_acc = accuracy(runner.model, x, y)
                    info = {"hp": {k: hp[k] for k in ("lr", "mu")}}
                else:
                    groups = {n: make_group(n, p.detach(), bits, hp["range_mode"], hp["range_factor"])
                              for n, p in base.named_parameters()}
                    codes = {n: groups[n].quantize(p.detach()) for n, p in runner.model.named_parameters()}
                    acc = _int_accuracy(base, groups, codes, calib, xtq, yt)
                    train_acc = _int_accuracy(base, groups, codes, calib, xq, y)
                    info = {"hp": {k: hp[k] for k in ("lr", "mu", "range_mode")}}
            if key in metrics["variants"]:
                continue
            metrics["variants"][key] = {"variant": variant, "bits": None if variant.endswith("/fp") else bits,
                                        f"{split}_accuracy": acc, "train_accuracy": train_acc,
                                        "train_s": time.perf_counter() - t1, **info}
    return ExperimentResult(metrics, trace, kept)


def _progress(order, progress: bool, desc: str):
    if not progress:
        return order
    from tqdm import tqdm
    return tqdm(order, desc=desc, leave=False)


def spec_from_dict(raw: dict) -> ExperimentSpec:
    """ExperimentSpec from a workload's mapping (unknown keys are a WorkloadError)."""
    known = set(ExperimentSpec.__dataclass_fields__)
    bad = sorted(set(raw) - known)
    if bad:
        raise WorkloadError(f"zoqo-train: field {bad[0]!r} unknown; known: {', '.join(sorted(known))}")
    out = dict(raw)
    for k in ("hidden", "channels", "bits", "variants"):
        if k in out and out[k] is not None:
            out[k] = tuple(out[k])
    for key, hp in (out.get("variant_hp") or {}).items():
        name, _, b = str(key).partition("@b")
        if name not in DEFAULT_VARIANTS or (b and not b.isdigit()) or not isinstance(hp, dict):
            raise WorkloadError(f"zoqo-train: variant_hp key {key!r} must be '<variant>' or '<variant>@b<bits>' "
                                f"mapping to a dict, with variant one of {', '.join(DEFAULT_VARIANTS)}")
    return replace(ExperimentSpec(), **out)
