"""The `inference` workload: run a TFLite model bit-accurately on N random inputs, cost one inference.

Why: "does this model fit and what does one inference cost on device X" is the most common
question; the emulator run on real (random) inputs proves the integer pipeline executes and
counts saturations, while the cost comes from the same events as every other workload.

Spec (workloads/*.yaml)::

    name: resnet8-inference
    algorithm: inference
    model: resnet8            # builtin name (hwsim.models.registry) or a .tflite path
    inputs: 8                 # random inputs to run (default 4; 0 = shapes only)
    seed: 0
    target: stm32l4r5         # optional default target
    budgets: {sram: 256 KiB, latency: 100 ms}
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.errors import WorkloadError
from hwsim.workloads import WorkloadRun, register_runner

#: Target runtimes (profile `numerics.runtime`) -> the emulator's rounding/kernel conventions.
EMULATOR_RUNTIME = {"tflm": "tflm", "cmsis-nn": "cmsis-nn", "litert-ref": "litert-ref", "vendor": "tflm"}

KNOWN_FIELDS = {"name", "algorithm", "model", "inputs", "seed", "target", "budgets", "description", "runtime"}


def resolve_model(model: str, *, base: Path | None = None) -> Path:
    """A .tflite path for a builtin name or a path (tried relative to `base` first, e.g. the workload file)."""
    from hwsim.models.registry import model_path

    if base is not None and (base / model).is_file():
        return base / model
    return model_path(model)


def emulator_runtime(target, override: str | None = None) -> str:
    rt = override or target.numerics.runtime
    if rt not in EMULATOR_RUNTIME:
        raise WorkloadError(f"runtime {rt!r} is unknown; choose one of {', '.join(EMULATOR_RUNTIME)}")
    return EMULATOR_RUNTIME[rt]


def random_inputs(emulator, n: int, seed: int) -> list[np.ndarray]:
    """Uniform random integer codes over each input's dtype range (N stacked samples)."""
    rng = np.random.default_rng(seed)
    out = []
    for spec in emulator.input_specs:
        dt = np.dtype(spec.dtype)
        info = np.iinfo(dt) if dt.kind in "iu" else None
        shape = (n,) + tuple(spec.shape)
        if info is None:
            out.append(rng.standard_normal(shape).astype(dt))
        else:
            out.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=np.int64).astype(dt))
    return out


@register_runner("inference")
def run(spec: dict, target, options: dict) -> WorkloadRun:
    """Run N random inputs bit-accurately; return the trace of one inference."""
    from hwsim.emulator import Emulator

    unknown = sorted(set(spec) - KNOWN_FIELDS)
    if unknown:
        raise WorkloadError(f"inference workload field {unknown[0]!r} is unknown; known: {', '.join(sorted(KNOWN_FIELDS))}")
    if "model" not in spec:
        raise WorkloadError("inference workload needs `model:` (a builtin name or a .tflite path)")
    base = Path(options["spec_path"]).parent if options.get("spec_path") else None
    path = resolve_model(str(spec["model"]), base=base)
    try:
        n = int(spec.get("inputs", 4))
        seed = int(spec.get("seed", 0))
    except (TypeError, ValueError):
        raise WorkloadError(f"inference workload: inputs/seed must be integers, got "
                            f"inputs={spec.get('inputs')!r}, seed={spec.get('seed')!r}") from None
    if options.get("quick"):
        n = min(n, 1)
    runtime = emulator_runtime(target, spec.get("runtime"))
    em = Emulator.from_tflite(path, runtime=runtime)
    metrics: dict[str, Any] = {"model": str(path), "runtime": runtime, "inputs": n, "seed": seed}
    if n > 0:
        outputs, trace = em.run(random_inputs(em, n, seed))
        metrics["saturations"] = int(sum(e.saturations for e in trace.ops()))
        h = hashlib.sha256()
        for o in outputs:
            h.update(np.ascontiguousarray(o).tobytes())
        metrics["outputs_sha256"] = h.hexdigest()[:16]
        if outputs and outputs[0].ndim >= 2:
            metrics["argmax"] = [int(i) for i in np.asarray(outputs[0]).reshape(n, -1).argmax(axis=1)]
    else:
        trace = em.trace_only()
    name = str(spec.get("name") or Path(path).stem)
    return WorkloadRun(name=name, trace=trace, metrics=metrics,
                       conventions={"inference": f"costs of one inference; {n} random inputs run bit-accurately"})
