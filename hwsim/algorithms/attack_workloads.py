"""`zoqo-attack` workload runner: ZOQO Table I (black-box attack failure rates) in the emulator.

Why: `hwsim simulate --workload workloads/zoqo-attack-digits.yaml` trains (or loads from cache) a
natural and a PGD-adversarially-trained model, runs SignHunter / RandSign / Simple in the four
environments FP / Quant. Model / Post Quant. / ZOQO for every b, writes the failure-rate table
(markdown + CSV), and hands back the trace of **one attack query** in the ZOQO environment (grid
code perturbation + projection, the integer forward of the b-bit model, the FP loss) for costing.

Spec keys (all optional except `algorithm`), defaults in brackets:
  dataset [digits] | mnist | cifar10;  data_path [null] (local files for mnist/cifar10)
  model [dataset default: digits→mlp, mnist/cifar10→cnn];  model_args [{}] (e.g. {hidden: [64]})
  bits [[8, 4]];  methods [[randsign, signhunter, simple]];  models [[natural, adversarial]]
  environments [[fp, quant_model, post_quant, zoqo]]
  examples [100] (first N test images);  max_loss_queries [10000];  seed [0]
  eps / eps_adv / delta [dataset defaults, native units: digits/MNIST 0.3/0.3/0.1, CIFAR 12/8/2]
  small_eps_rule [one_step] | floor          (ε < grid step, §1.11 [A])
  pq_attack_model [quant] | fp               (which model the Post-Quant. FP attack queries)
  input_bits [null → max(b, 8)]              (the integer model's input quantizer)
  simple_query_count [emulator] | repo;  project_fp_queries [false] (repo: FP queries unprojected)
  train_epochs [30];  train_lr [0.01];  adv_train: {eps, steps [10], step_size, epochs [40], lr, batch_size, seed}
  cache_dir [$HWSIM_CACHE or ~/.cache/hwsim]/attacks
  threads [1] (torch intra-op threads while the runner works; "auto" leaves torch's setting)
  quick: {examples [16], max_loss_queries [300], adv_epochs [3], train_epochs [10]}
           (used when options["quick"] is true — the test / smoke setting)
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from hwsim.algorithms.adv_train import PGDConfig
from hwsim.algorithms.attack_envs import ENVIRONMENTS, EnvSettings, run_environment, zoqo_params
from hwsim.algorithms.attack_grid import quantize_codes
from hwsim.algorithms.attack_qmodel import IntegerClassifier
from hwsim.algorithms.attack_setup import DATASET_DEFAULTS, prepare
from hwsim.algorithms.attack_table import (Cell, cells_csv, table_rows, to_csv, to_markdown)
from hwsim.algorithms.attacks import METHODS, AttackParams
from hwsim.algorithms.zoqo_loss import cross_entropy_work
from hwsim.errors import WorkloadError
from hwsim.trace import TensorInfo, Trace
from hwsim.workloads import WorkloadRun, register_runner

KNOWN_KEYS = {
    "name", "algorithm", "description", "dataset", "data_path", "model", "bits", "methods", "models",
    "environments", "examples", "max_loss_queries", "seed", "eps", "eps_adv", "delta", "small_eps_rule",
    "pq_attack_model", "input_bits", "simple_query_count", "project_fp_queries", "train_epochs",
    "adv_train", "cache_dir", "quick", "repeat", "target", "budgets", "threads", "model_args",
    "train_lr",
}
QUICK_DEFAULTS = {"examples": 16, "max_loss_queries": 300, "adv_epochs": 3, "train_epochs": 10}


def _list(spec: dict, key: str, default: list, allowed: tuple | None = None) -> list:
    value = spec.get(key, default)
    if not isinstance(value, (list, tuple)):
        value = [value]
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise WorkloadError(f"workload field {key}: {bad[0]!r} unknown; use any of {list(allowed)}")
    return list(value)


def _default_cache() -> Path:
    root = os.environ.get("HWSIM_CACHE") or Path.home() / ".cache" / "hwsim"
    return Path(root) / "attacks"


def attack_query_trace(qmodel: IntegerClassifier, x: torch.Tensor, bits: int, eps_steps: int,
                       method: str) -> Trace:
    """Events of one ZOQO attack query for one image: code perturbation, integer forward, FP loss."""
    trace = Trace()
    trace.meta.update({"workload": "zoqo-attack", "environment": "zoqo", "bits": bits, "method": method,
                       "unit": "one loss query of one image"})
    codes = quantize_codes(x[:1], qmodel.lb, qmodel.ub, bits)
    n = codes.numel()
    shape = tuple(codes.shape)
    x0 = TensorInfo("attack.x0_codes", shape, bits, "state", f"int{bits}")
    adv = TensorInfo("attack.adv_codes", shape, bits, "state", f"int{bits}")
    sgn = TensorInfo("attack.sign", shape, 1, "state", "int1")
    query = TensorInfo("attack.query_codes", shape, bits, "scratch", f"int{bits}")
    with trace.phase("perturb"):
        for t in (x0, adv, sgn, query):
            trace.alloc(t)
        trace.op("code_add", "attack.perturb", [adv, sgn], [query], {("elementwise", "int32"): n},
                 layer="attack", eps_steps=eps_steps)
        trace.op("project", "attack.project", [query, x0], [query], {("compare", "int32"): 4 * n},
                 layer="attack")
        q = codes.clamp(0, 2 ** bits - 1)
    with trace.phase("forward"):
        if qmodel.input_bits != bits:
            trace.op("recode", "attack.recode", [query], [query], {("elementwise", "int32"): 2 * n},
                     layer="attack", to_bits=qmodel.input_bits)
        logits = qmodel.logits_from_codes(qmodel.grid_to_input_codes(q, bits), trace)
    with trace.phase("loss"):
        k = logits.shape[1]
        lg = TensorInfo(f"{qmodel.name}.logits", tuple(logits.shape), 32, "output", "int32")
        loss = TensorInfo("attack.loss", (1,), 32, "scratch", "fp32")
        trace.alloc(loss)
        trace.op("cross_entropy", "attack.loss", [lg], [loss], cross_entropy_work(1, k), layer="attack")
        trace.op("compare_loss", "attack.compare", [loss], [], {("compare", "fp32"): 1}, layer="attack")
        trace.free(query)
    return trace


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with `n` intra-op threads (restored afterwards). Why: the attack's matrices are tiny
    (a few images × ≤ a few hundred features); on a small shared CPU, OpenMP workers spinning
    against other processes made each query ~40× slower than one thread (measured)."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@register_runner("zoqo-attack")
def run(spec: dict, target: Any, options: dict) -> WorkloadRun:
    threads = spec.get("threads", 1)
    with torch_threads(None if threads in (None, "auto") else int(threads)):
        return _run(spec, options)


def _run(spec: dict, options: dict) -> WorkloadRun:
    unknown = sorted(set(spec) - KNOWN_KEYS)
    if unknown:
        raise WorkloadError(f"workload field {unknown[0]!r} is unknown for zoqo-attack; known: "
                            f"{', '.join(sorted(KNOWN_KEYS))}")
    quick = bool(options.get("quick"))
    q = {**QUICK_DEFAULTS, **(spec.get("quick") or {})}
    dataset = spec.get("dataset", "digits")
    if dataset not in DATASET_DEFAULTS:
        raise WorkloadError(f"workload field dataset: {dataset!r} unknown; use one of {sorted(DATASET_DEFAULTS)}")
    dd = DATASET_DEFAULTS[dataset]
    scale = dd["pixel_scale"]
    bits = [int(b) for b in _list(spec, "bits", [8, 4])]
    if any(b < 1 or b > 16 for b in bits):
        raise WorkloadError(f"workload field bits: {bits} — each must be in 1..16")
    methods = _list(spec, "methods", ["randsign", "signhunter", "simple"], METHODS)
    envs = _list(spec, "environments", list(ENVIRONMENTS), ENVIRONMENTS)
    kinds = _list(spec, "models", ["natural", "adversarial"], ("natural", "adversarial"))
    examples = int(q["examples"] if quick else spec.get("examples", 100))
    max_q = int(q["max_loss_queries"] if quick else spec.get("max_loss_queries", 10_000))
    seed = int(spec.get("seed", 0))
    eps_nat = float(spec.get("eps", dd["eps"]))
    eps_adv = float(spec.get("eps_adv", dd["eps_adv"]))
    delta = float(spec.get("delta", dd["delta"]))
    adv_raw = dict(spec.get("adv_train") or {})
    known_pgd = {f.name for f in fields(PGDConfig)}
    if set(adv_raw) - known_pgd:
        raise WorkloadError(f"workload field adv_train.{sorted(set(adv_raw) - known_pgd)[0]} unknown; "
                            f"known: {', '.join(sorted(known_pgd))}")
    adv_raw.setdefault("eps", eps_adv)
    adv_raw["eps"] = float(adv_raw["eps"]) / scale
    if adv_raw.get("step_size") is not None:
        adv_raw["step_size"] = float(adv_raw["step_size"]) / scale
    adv_raw.setdefault("seed", seed)
    if quick:
        adv_raw["epochs"] = int(q["adv_epochs"])
    pgd = PGDConfig(**adv_raw)
    train_epochs = int(q["train_epochs"] if quick else spec.get("train_epochs", 30))
    cache_dir = Path(spec.get("cache_dir") or options.get("cache_dir") or _default_cache())
    out_dir = Path(options.get("out_dir") or Path("reports") / spec.get("name", "zoqo-attack"))
    progress = bool(options.get("progress", not quick))

    setup = prepare(dataset, path=spec.get("data_path"), model_kind=spec.get("model"), which=kinds,
                    epochs=train_epochs, pgd=pgd, seed=seed, cache_dir=cache_dir,
                    model_args=spec.get("model_args"), lr=float(spec.get("train_lr", 1e-2)))
    x_all, y_all = setup.x_test[:examples], setup.y_test[:examples]
    base = dict(max_loss_queries=max_q, seed=seed,
                simple_query_count=spec.get("simple_query_count", "emulator"),
                project_queries=bool(spec.get("project_fp_queries", False)))
    settings_kw = dict(small_eps_rule=spec.get("small_eps_rule", "one_step"),
                       pq_attack_model=spec.get("pq_attack_model", "quant"), lb=0.0, ub=1.0)
    input_bits = spec.get("input_bits")

    jobs = []
    for kind in kinds:
        for method in methods:
            for env in envs:
                for b in ([bits[0]] if env == "fp" else bits):
                    jobs.append((kind, method, env, b))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc="zoqo-attack cells", leave=False)
    qmodels: dict[tuple[str, int], IntegerClassifier] = {}
    cells: list[Cell] = []
    for kind, method, env, b in jobs:
        model = setup.models[kind]
        eps = (eps_nat if kind == "natural" else eps_adv)
        params = AttackParams(method, eps=eps / scale, delta=delta / scale, **base)
        settings = EnvSettings(bits=b, **settings_kw)
        qm = None
        if env != "fp":
            if (kind, b) not in qmodels:
                qmodels[(kind, b)] = IntegerClassifier(model, setup.x_train[:512], bits=b, lb=0.0, ub=1.0,
                                                       input_bits=input_bits, name=f"{kind}_q{b}")
            qm = qmodels[(kind, b)]
        res = run_environment(env, params, model, qm, x_all, y_all, settings)
        eps_q = res.extra.get("eps_q")
        targets = bits if env == "fp" else [b]
        repo_avg = None
        if "queries_repo_count" in res.extra:
            mask = res.success & res.correct0
            repo_avg = float(res.extra["queries_repo_count"][mask].double().mean()) if mask.any() else float("nan")
        for bb in targets:
            cells.append(Cell(dataset, kind, bb, method, env, res.successes, res.failures, res.avg_queries,
                              eps, None if eps_q is None else eps_q * scale, repo_avg))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    rows = table_rows(cells)
    md, csv_text, long_csv = to_markdown(rows), to_csv(rows), cells_csv(cells)
    out_dir.mkdir(parents=True, exist_ok=True)
    artifacts = {"table_md": out_dir / "attack_table.md", "table_csv": out_dir / "attack_table.csv",
                 "cells_csv": out_dir / "attack_cells.csv"}
    artifacts["table_md"].write_text(md)
    artifacts["table_csv"].write_text(csv_text)
    artifacts["cells_csv"].write_text(long_csv)

    kind0 = kinds[0]
    qm0 = qmodels.get((kind0, bits[0])) or IntegerClassifier(
        setup.models[kind0], setup.x_train[:512], bits=bits[0], lb=0.0, ub=1.0, input_bits=input_bits,
        name=f"{kind0}_q{bits[0]}")
    zp, _ = zoqo_params(AttackParams(methods[0], eps=eps_nat / scale, delta=delta / scale),
                        EnvSettings(bits=bits[0], **settings_kw))
    trace = attack_query_trace(qm0, x_all, bits[0], int(zp.eps), methods[0])
    metrics = {
        "rows": rows,
        "cells": [c.__dict__ | {"failure_rate": c.failure_rate} for c in cells],
        "table_markdown": md,
        "settings": {"dataset": dataset, "examples": int(x_all.shape[0]), "max_loss_queries": max_q,
                     "eps": eps_nat, "eps_adv": eps_adv, "delta": delta, "bits": bits, "quick": quick,
                     "seed": seed, **settings_kw, "input_bits": input_bits or "max(b, 8)",
                     "simple_query_count": base["simple_query_count"],
                     "project_fp_queries": base["project_queries"], "pgd": pgd.__dict__},
        "model_accuracy": setup.accuracy,
        "provenance": setup.provenance,
    }
    conventions = {"trace": "one loss query of one image in the ZOQO environment at "
                            f"b={bits[0]} (perturb + integer forward + FP loss); multiply by the "
                            "queries in `cells` for a whole attack"}
    return WorkloadRun(name=spec.get("name", "zoqo-attack"), trace=trace, metrics=metrics,
                       conventions=conventions, artifacts=artifacts)
