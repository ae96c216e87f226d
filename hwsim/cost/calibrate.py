"""Fit a profile's `runtime_efficiency` to measured latencies (and `power.static` to measured energy).

Why: a device profile gives peak hardware rates; what a kernel library (TFLM + CMSIS-NN,
X-CUBE-AI, microTVM, ...) reaches on real models is a property of the *software stack*. We
measure it once from published latencies and keep it as data in a profile that `extends` the
hardware profile, so every later prediction uses the same cost model with fitted numbers.

Method. The analytic cost model is linear in its free parameters except for the per-op
max(compute, memory):

    latency = sum_ops max(K_i + sum_c x_c * C_ic + sum_l y_l * S_il + r * P_i, M_i + sum_l y_l * B_il)
              + O_i + p * n_ops + q * n_inferences

with x_c = 1 / runtime_efficiency.compute[c] (>= 1: a library cannot beat the profile's peak),
y_l = 1 / runtime_efficiency.memory[l] (parameter `memory:<level>`, >= 1: no faster than the
level's bandwidth), p = per_op_overhead, q = per_inference_overhead, r = per_output_overhead
(parameter `per_output`: time per output element of a MAC op on a CPU; P_i = those elements).
C_ic (compute seconds of op i in class c at efficiency 1), S_il / B_il (bandwidth seconds of level l that stall the core /
that overlap compute, see `Memory.stalls_compute`), K_i (compute and stalls not fitted), M_i
(memory seconds not fitted) and O_i (launch overhead) are read from `cost_trace` itself — each
fitted part by re-pricing with that class or level at half efficiency — so the fit and the
predictions use one cost model, never a second formula. (On a unit with an `output_stage` the
op's compute is max(MAC time, output-stage time), which is not linear in x_c: there the fit is
an approximation; predictions still call `cost_trace`.)
The parameters minimise the squared *relative* latency errors (models span 2 ms to 700 ms)
with bounds, by `scipy.optimize.least_squares`.

Kernel model (`kernel_model=True`, MCU profiles whose CPU has a `kernels` table): MAC work is
priced in instruction counts of the kernel library's loops (`hwsim.cost.mcu_kernels`: fully
connected, im2col convolution, 1x1, depthwise, scalar leftovers, im2col copies, all fixed
profile data), so the fitted efficiencies are the stack's speed relative to the GEMM loop at
the profile's peak: `mac` and `dw_mac` (`KERNEL_PARAMS`; chosen on the leave-one-benchmark-out
protocol, VALIDATION.md), two parameters, so every three-benchmark fold keeps a residual. The
per-output cost (`per_output`, time per output element of a MAC op) is available as a parameter.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwsim.errors import HwsimError

#: Parameters `fit` can estimate. Class names are hwsim.trace.OP_CLASSES; "mac+dw_mac" ties both;
#: `memory:<level>` (e.g. memory:flash) fits that memory level's bandwidth efficiency.
FIT_PARAMS = ("mac", "dw_mac", "mac+dw_mac", "elementwise", "compare", "lookup", "per_op", "per_inference",
              "per_output")
#: Overhead parameters (additive times, bounded below by 0; not op-class efficiencies).
OVERHEADS = ("per_op", "per_inference", "per_output")
MEMORY_PREFIX = "memory:"
DEFAULT_PARAMS = ("mac", "dw_mac")
#: The parameters fitted with the kernel model (VALIDATION.md, model choice).
KERNEL_PARAMS = ("mac", "dw_mac")


@dataclass
class Measurement:
    """One measured model: the .tflite path, latency (s) and optionally energy (J) per inference."""

    model: Path
    latency_s: float
    energy_j: float | None = None
    label: str = ""


def read_measurements(path: str | Path) -> list[Measurement]:
    """Read M.csv (columns `model`, `latency_ms`, optional `energy_uJ`, optional `label`).

    Relative model paths are resolved against the CSV's folder first, then the working directory.
    """
    path = Path(path)
    if not path.is_file():
        raise HwsimError(f"{path}: measurements file not found; pass a CSV with columns model, latency_ms[, energy_uJ]")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise HwsimError(f"{path}: no rows; add one row per measured model (model, latency_ms[, energy_uJ])")
    missing = [c for c in ("model", "latency_ms") if c not in rows[0]]
    if missing:
        raise HwsimError(f"{path}: missing column(s) {missing}; found {list(rows[0])}; "
                         "required: model, latency_ms (optional: energy_uJ, label)")
    out: list[Measurement] = []
    seen: dict[Path, int] = {}
    for n, row in enumerate(rows, start=2):
        model = Path((row["model"] or "").strip())
        if not model.is_absolute():
            near = path.parent / model
            model = near if near.is_file() else model
        if not model.is_file() and model.suffix != ".tflite":   # a builtin name (kws, resnet8, ...)
            from hwsim.models.registry import resolve

            model = resolve(str(row["model"]).strip()) or model
        if not model.is_file():
            raise HwsimError(f"{path}:{n}: model {row['model']!r} not found (looked next to the CSV and in the "
                             "working directory); give the path of a .tflite file or a builtin name "
                             "(ad01, kws, resnet8, vww, sww)")
        key = model.resolve()
        if key in seen:
            if (row.get("same_latency_as") or "").strip():
                continue   # a marked repeat of an earlier row's number: not a second data point
            raise HwsimError(f"{path}:{n}: model {row['model']!r} already measured on line {seen[key]}; the fit "
                             "needs one row per distinct model: average repeated runs into one row (or mark "
                             "an exact repeat in a same_latency_as column)")
        seen[key] = n
        lat = _positive(row["latency_ms"], path, n, "latency_ms")
        if lat < 1e-3:
            raise HwsimError(f"{path}:{n}: latency_ms = {row['latency_ms']!r} is below 1 µs, not a plausible "
                             "inference latency; latency_ms is in milliseconds (e.g. 75.06)")
        energy = row.get("energy_uJ")
        e = _positive(energy, path, n, "energy_uJ") * 1e-6 if energy not in (None, "") else None
        out.append(Measurement(model, lat * 1e-3, e, (row.get("label") or model.stem).strip()))
    return out


def _positive(value: Any, path: Path, line: int, column: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise HwsimError(f"{path}:{line}: {column} = {value!r} is not a number; write e.g. 12.5") from None
    if not (v > 0 and math.isfinite(v)):
        raise HwsimError(f"{path}:{line}: {column} = {value!r} must be a positive number")
    return v


# ---------------------------------------------------------------------------------------------
# features: the cost model, decomposed


@dataclass
class Features:
    """A model's cost on a target, split into the parts the fit scales (arrays over ops)."""

    label: str
    C: dict[str, np.ndarray]   # op class -> compute seconds per op at efficiency 1
    K: np.ndarray              # compute seconds per op of classes not fitted (at the target's efficiency)
    M: np.ndarray              # memory seconds per op
    O: np.ndarray              # launch overhead seconds per op (hardware, not fitted)
    n_ops: int
    n_inferences: int
    dynamic_energy_j: float    # compute + memory energy (static power excluded)
    op_names: tuple[str, ...] = ()   # OpEvent.op per row (for diagnostics by operator type)
    S: dict[str, np.ndarray] = field(default_factory=dict)  # level -> stall seconds per op at efficiency 1
    B: dict[str, np.ndarray] = field(default_factory=dict)  # level -> overlapping bandwidth seconds per op
    P: np.ndarray | None = None   # per op: compute seconds per second of per_output_overhead (output elements)


def _with_efficiency(target, compute: dict[str, float], per_op: float = 0.0, per_inf: float = 0.0,
                     memory: dict[str, float] | None = None, per_out: float = 0.0):
    t = target.model_copy(deep=True)
    update: dict[str, Any] = {"compute": dict(compute), "per_op_overhead_s": per_op,
                              "per_inference_overhead_s": per_inf, "per_output_overhead_s": per_out}
    if memory is not None:
        update["memory"] = dict(memory)
    t.runtime_efficiency = t.runtime_efficiency.model_copy(update=update)
    return t


def _classes(params: Sequence[str]) -> list[str]:
    out: list[str] = []
    for p in params:
        if p in OVERHEADS or p.startswith(MEMORY_PREFIX):
            continue
        out.extend(p.split("+"))
    return out


def _levels(params: Sequence[str]) -> list[str]:
    return [p[len(MEMORY_PREFIX):] for p in params if p.startswith(MEMORY_PREFIX)]


def check_params(params: Sequence[str], target=None) -> None:
    """Raise HwsimError naming the first parameter `fit` cannot estimate (memory levels checked on `target`)."""
    for p in params:
        if p.startswith(MEMORY_PREFIX):
            level = p[len(MEMORY_PREFIX):]
            if target is not None and level not in target.memories:
                raise HwsimError(f"calibration parameter {p!r}: target {target.name!r} has no memory level "
                                 f"{level!r}; levels: {sorted(target.memories)}")
        elif p not in FIT_PARAMS:
            raise HwsimError(f"unknown calibration parameter {p!r}; choose from {list(FIT_PARAMS)} "
                             f"or {MEMORY_PREFIX}<level>")


def features(trace, target, params: Sequence[str], label: str = "") -> Features:
    """Decompose `cost_trace(trace, target)` into the parts `params` scale (see module docstring)."""
    from hwsim.cost.analytic import cost_trace, n_inferences

    check_params(params, target)
    classes = _classes(params)
    levels = _levels(params)
    base_eff = {c: f for c, f in target.runtime_efficiency.compute.items() if c not in classes}
    base_mem = {lv: f for lv, f in target.runtime_efficiency.memory.items() if lv not in levels}
    base = cost_trace(trace, _with_efficiency(target, base_eff, memory=base_mem))
    comp0 = base.ops["compute_s"].to_numpy(dtype=float)
    mem0 = base.ops["memory_s"].to_numpy(dtype=float)
    C: dict[str, np.ndarray] = {}
    for c in classes:
        half = cost_trace(trace, _with_efficiency(target, {**base_eff, c: 0.5}, memory=base_mem))
        C[c] = half.ops["compute_s"].to_numpy(dtype=float) - comp0
    S: dict[str, np.ndarray] = {}
    B: dict[str, np.ndarray] = {}
    for lv in levels:
        half = cost_trace(trace, _with_efficiency(target, base_eff, memory={**base_mem, lv: 0.5}))
        S[lv] = half.ops["compute_s"].to_numpy(dtype=float) - comp0
        B[lv] = half.ops["memory_s"].to_numpy(dtype=float) - mem0
    P = None
    if "per_output" in params:
        unit = 1e-6   # price 1 us per output element; the compute-time difference / 1 us = elements
        one = cost_trace(trace, _with_efficiency(target, base_eff, memory=base_mem, per_out=unit))
        P = (one.ops["compute_s"].to_numpy(dtype=float) - comp0) / unit
    K = comp0 - sum(C.values(), np.zeros_like(comp0)) - sum(S.values(), np.zeros_like(comp0))
    K = np.where(np.abs(K) < 1e-15, 0.0, K)
    M = mem0 - sum(B.values(), np.zeros_like(mem0))
    M = np.where(np.abs(M) < 1e-15, 0.0, M)
    events = trace.ops()
    dyn = float((base.ops["compute_energy_j"] + base.ops["memory_energy_j"]).sum())
    return Features(label, C, K, M, base.ops["overhead_s"].to_numpy(dtype=float), len(events),
                    n_inferences(events, {}), dyn, tuple(base.ops["op"]), S, B, P)


# ---------------------------------------------------------------------------------------------
# the fit


@dataclass
class Fit:
    """Fitted parameters and how well they reproduce the training measurements."""

    params: tuple[str, ...]
    efficiency: dict[str, float]          # op class -> fraction of peak
    per_op_overhead_s: float
    per_inference_overhead_s: float
    static_W: float | None                # fitted static power (None: not fitted)
    train_rel_error: dict[str, float]     # label -> (predicted - measured) / measured
    at_bound: list[str] = field(default_factory=list)   # parameters stuck at a bound (say so)
    memory_efficiency: dict[str, float] = field(default_factory=dict)   # memory level -> fraction of bandwidth
    per_output_overhead_s: float = 0.0    # per output element of a MAC op on a CPU (parameter per_output)
    kernel_model: bool = False            # fitted with the CPU kernel table (runtime_efficiency.kernel_model)


def _unpack(theta: np.ndarray, params: Sequence[str]) -> tuple[dict[str, float], float, float]:
    x: dict[str, float] = {}
    per_op = per_inf = 0.0
    for v, p in zip(theta, params):
        if p == "per_op":
            per_op = float(v) * 1e-3
        elif p == "per_inference":
            per_inf = float(v) * 1e-3
        elif p == "per_output":
            x["per_output"] = float(v) * 1e-6
        elif p.startswith(MEMORY_PREFIX):
            x[p] = float(v)
        else:
            for c in p.split("+"):
                x[c] = float(v)
    return x, per_op, per_inf


def predict(f: Features, x: dict[str, float], per_op: float, per_inf: float) -> float:
    """Latency (s) the cost model gives with slowdowns x_c = 1/efficiency and the overheads."""
    comp = f.K.copy()
    for c, arr in f.C.items():
        comp = comp + x.get(c, 1.0) * arr
    mem = f.M.copy()
    for lv, arr in f.S.items():
        comp = comp + x.get(MEMORY_PREFIX + lv, 1.0) * arr
    for lv, arr in f.B.items():
        mem = mem + x.get(MEMORY_PREFIX + lv, 1.0) * arr
    if f.P is not None:
        comp = comp + x.get("per_output", 0.0) * f.P
    return float(np.maximum(comp, mem).sum() + f.O.sum() + per_op * f.n_ops + per_inf * f.n_inferences)


def fit(feats: Sequence[Features], latencies_s: Sequence[float], params: Sequence[str] = DEFAULT_PARAMS,
        energies_j: Sequence[float | None] | None = None) -> Fit:
    """Least-squares fit of `params` to measured latencies (relative errors); static power to energies."""
    from scipy.optimize import least_squares

    check_params(params)
    if not feats:
        raise HwsimError("calibration needs at least one measurement")
    y = np.asarray(latencies_s, dtype=float)
    lo = np.array([0.0 if p in OVERHEADS else 1.0 for p in params])
    hi = np.full(len(params), np.inf)

    def residuals(theta: np.ndarray) -> np.ndarray:
        x, po, pi = _unpack(theta, params)
        return np.array([predict(f, x, po, pi) for f in feats]) / y - 1.0

    # start: one common slowdown that matches the mean measured/modelled ratio; overheads 0
    base = np.array([predict(f, {}, 0.0, 0.0) for f in feats])
    s0 = max(1.0, float(np.median(y / np.maximum(base, 1e-12))))
    theta0 = np.array([0.0 if p in OVERHEADS else 1.0 if p.startswith(MEMORY_PREFIX) else s0
                       for p in params])
    sol = least_squares(residuals, theta0, bounds=(lo, hi), method="trf", x_scale="jac")
    x, per_op, per_inf = _unpack(sol.x, params)
    at_bound = [p for p, v, l in zip(params, sol.x, lo) if abs(v - l) <= 1e-9 * max(1.0, abs(l))]
    res = residuals(sol.x)
    static_W = None
    if energies_j is not None and any(e is not None for e in energies_j):
        # energy = dynamic (per-op energies of the profile) + static power x latency: fit static power
        pairs = [(e, f.dynamic_energy_j, lat) for e, f, lat in zip(energies_j, feats, y) if e is not None]
        num = sum((e - d) * t for e, d, t in pairs)
        den = sum(t * t for _, _, t in pairs)
        static_W = max(0.0, num / den) if den > 0 else None
    return Fit(tuple(params),
               {c: 1.0 / v for c, v in x.items() if not c.startswith(MEMORY_PREFIX) and c != "per_output"},
               per_op, per_inf, static_W, {f.label: float(r) for f, r in zip(feats, res)}, at_bound,
               {c[len(MEMORY_PREFIX):]: 1.0 / v for c, v in x.items() if c.startswith(MEMORY_PREFIX)},
               x.get("per_output", 0.0))


# ---------------------------------------------------------------------------------------------
# the calibrated profile


def profile_yaml(base_name: str, name: str, fit_: Fit, fitted_on: str, sources: dict[str, str],
                 base_target=None, description: str = "", kernels: dict[str, Any] | None = None,
                 kernel_unit: str = "cpu") -> str:
    """YAML text of a profile that `extends` the base with the fitted runtime efficiency (and static power).

    `kernels`: counts (and their `source`) that override the base's CPU kernel table, written
    under `compute.<kernel_unit>.kernels` (the stack's kernel-library version).
    """
    import yaml

    src = "@calibration: " + fitted_on
    eff: dict[str, Any] = {"source": src}
    eff["compute"] = {c: float(f"{v:.6g}") for c, v in sorted(fit_.efficiency.items())}
    if fit_.memory_efficiency:
        eff["memory"] = {lv: float(f"{v:.6g}") for lv, v in sorted(fit_.memory_efficiency.items())}
    eff["per_op_overhead"] = f"{fit_.per_op_overhead_s * 1e6:.6g} us"
    eff["per_inference_overhead"] = f"{fit_.per_inference_overhead_s * 1e6:.6g} us"
    if "per_output" in fit_.params:
        eff["per_output_overhead"] = f"{fit_.per_output_overhead_s * 1e9:.6g} ns"
    if fit_.kernel_model:
        eff["kernel_model"] = True
    eff["fitted_on"] = fitted_on
    doc: dict[str, Any] = {
        "name": name,
        "extends": base_name,
        "description": description or f"{base_name} with runtime efficiency fitted by `hwsim calibrate`",
        "sources": {"calibration": fitted_on, **sources},
        "runtime_efficiency": eff,
    }
    if kernels:
        doc["compute"] = {kernel_unit: {"kernels": dict(kernels)}}
    if fit_.static_W is not None:
        doc["power"] = {"static": {"value": f"{fit_.static_W * 1e3:.6g} mW",
                                   "source": "@calibration: static power fitted to measured energy per inference "
                                             "(energy = profile dynamic energy + static x latency)"}}
    header = ("# Generated by `hwsim calibrate`; edit the measurements and re-run rather than this file.\n"
              f"# Training error per model (predicted/measured - 1): "
              + ", ".join(f"{k} {v:+.1%}" for k, v in fit_.train_rel_error.items()) + "\n")
    if fit_.at_bound:
        header += f"# Parameters at a bound (efficiency 1 = profile peak, overhead 0): {', '.join(fit_.at_bound)}\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def trace_for(model: Path):
    """Shapes-only trace of one inference of a .tflite model (the TFLite emulator's)."""
    from hwsim.emulator import Emulator

    return Emulator.from_tflite(model).trace_only()


def with_kernel_model(target, on: bool | None):
    """`target` with `runtime_efficiency.kernel_model` set (None: unchanged).

    Raises HwsimError when asked to switch it on for a profile whose CPU has no `kernels` table.
    """
    if on is None or bool(on) == target.runtime_efficiency.kernel_model:
        return target
    if on and cpu_kernel_unit(target) is None:
        raise HwsimError(f"target {target.name!r} has no CPU kernel table (compute.<cpu>.kernels), so the kernel "
                         "model cannot be used; add one (see targets/mcu/_mcu-tflm.yaml) or fit without it "
                         "(--no-kernel-model)")
    t = target.model_copy(deep=True)
    t.runtime_efficiency = t.runtime_efficiency.model_copy(update={"kernel_model": bool(on)})
    return t


def cpu_kernel_unit(target) -> str | None:
    """Name of the CPU compute unit that carries a kernel table (None: none has one)."""
    return next((n for n, u in target.compute.items() if u.kind == "cpu" and u.kernels is not None), None)


def with_kernel_table(target, overrides: dict[str, Any] | None):
    """`target` with counts of its CPU kernel table replaced (the loops of another library version).

    Why: the same board runs different kernel-library versions under different stacks; the
    version's counts (data in `hwsim/runtimes/cmsis_nn.yaml`) are known before any fit.
    """
    if not overrides:
        return target
    unit = cpu_kernel_unit(target)
    if unit is None:
        raise HwsimError(f"target {target.name!r} has no CPU kernel table (compute.<cpu>.kernels) to override")
    t = target.model_copy(deep=True)
    cpu = t.compute[unit]
    counts = {k: v for k, v in overrides.items() if k != "source"}
    unknown = sorted(set(counts) - set(type(cpu.kernels).model_fields))
    if unknown:
        raise HwsimError(f"kernel-table override names unknown counts {unknown}; "
                         f"known: {sorted(type(cpu.kernels).model_fields)}")
    t.compute[unit] = cpu.model_copy(update={"kernels": cpu.kernels.model_copy(update=counts)})
    return t


def default_params(target) -> tuple[str, ...]:
    """KERNEL_PARAMS when `target` prices MAC work with its kernel table, else DEFAULT_PARAMS."""
    return KERNEL_PARAMS if target.runtime_efficiency.kernel_model else DEFAULT_PARAMS


def calibrate(target, measurements: Sequence[Measurement], params: Sequence[str] | None = DEFAULT_PARAMS,
              traces: dict[Path, Any] | None = None, kernel_model: bool | None = None) -> tuple[Fit, list[Features]]:
    """Fit `params` of `target` to `measurements`; returns the fit and the features used.

    `kernel_model`: True/False switches the CPU kernel table on/off for the fit (None: as the
    target says); `params=None` picks `default_params` for the resulting target.
    """
    target = with_kernel_model(target, kernel_model)
    params = default_params(target) if params is None else tuple(params)
    traces = traces if traces is not None else {}
    feats = []
    for m in measurements:
        tr = traces.get(m.model)
        if tr is None:
            tr = traces[m.model] = trace_for(m.model)
        feats.append(features(tr, target, params, m.label))
    energies = [m.energy_j for m in measurements]
    fit_ = fit(feats, [m.latency_s for m in measurements], params,
               energies if any(e is not None for e in energies) else None)
    fit_.kernel_model = target.runtime_efficiency.kernel_model
    return fit_, feats


def calibrated_target(target, fit_: Fit):
    """`target` with the fitted runtime efficiency (and static power) applied, in memory."""
    t = _with_efficiency(with_kernel_model(target, fit_.kernel_model or None),
                         {**target.runtime_efficiency.compute, **fit_.efficiency},
                         fit_.per_op_overhead_s, fit_.per_inference_overhead_s,
                         {**target.runtime_efficiency.memory, **fit_.memory_efficiency}, fit_.per_output_overhead_s)
    if fit_.static_W is not None:
        t.power = t.power.model_copy(update={"static_W": fit_.static_W})
    return t


@dataclass
class HeldOut:
    """One leave-one-out case: fit on the others, predict this one with the real cost model."""

    label: str
    measured_s: float
    predicted_s: float
    fit: Fit
    measured_energy_j: float | None = None
    predicted_energy_j: float | None = None

    @property
    def rel_error(self) -> float:
        return self.predicted_s / self.measured_s - 1.0

    @property
    def energy_rel_error(self) -> float | None:
        if self.measured_energy_j is None or self.predicted_energy_j is None:
            return None
        return self.predicted_energy_j / self.measured_energy_j - 1.0


def leave_one_out(target, measurements: Sequence[Measurement], params: Sequence[str] | None = DEFAULT_PARAMS,
                  traces: dict[Path, Any] | None = None, kernel_model: bool | None = None) -> list[HeldOut]:
    """For each measurement: fit on all the others, then price the held-out model with `cost_trace`.

    The held-out model never enters its fold's fit; its prediction is `cost_trace` on the
    calibrated target (the same cost model every other prediction uses).
    """
    from hwsim.cost.analytic import cost_trace

    target = with_kernel_model(target, kernel_model)
    params = default_params(target) if params is None else tuple(params)
    traces = traces if traces is not None else {}
    for m in measurements:
        if m.model not in traces:
            traces[m.model] = trace_for(m.model)
    feats = [features(traces[m.model], target, params, m.label) for m in measurements]
    out = []
    for i, m in enumerate(measurements):
        rest = [j for j in range(len(measurements)) if j != i]
        energies = [measurements[j].energy_j for j in rest]
        f = fit([feats[j] for j in rest], [measurements[j].latency_s for j in rest], params,
                energies if any(e is not None for e in energies) else None)
        f.kernel_model = target.runtime_efficiency.kernel_model
        res = cost_trace(traces[m.model], calibrated_target(target, f))
        out.append(HeldOut(m.label, m.latency_s, res.latency_s, f, m.energy_j,
                           res.energy_j if f.static_W is not None else None))
    return out
