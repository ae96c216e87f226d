"""`analyze(trace, target) -> MemoryResult`: peaks per memory level, arena plans, spills, conventions.

Why: "does it fit?" needs three different numbers that are easy to confuse — the peak of live
bytes per memory (what any allocator must at least provide), the arena a concrete planner
achieves (what a runtime actually reserves), and the lower bound. This module computes all three
from the trace's alloc/free events and the target's placement, and states for every figure what
it counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from hwsim.errors import HwsimError
from hwsim.memory.encoded_weights import encoded_constant_bytes
from hwsim.memory.liveness import Lifetime, lifetimes, live_bytes
from hwsim.memory.planners import PLANNERS, ArenaPlan, Request, align_up, lower_bound
from hwsim.memory.tflm_persistent import TflmPersistent, build_for_runtime, is_tflite_trace, tflm_persistent
from hwsim.trace import TENSOR_KINDS, Trace

#: Tensor kinds that never enter the activation arena (constants, stored apart from the arena).
CONSTANT_KINDS = ("weight", "bias")
#: Which planner a runtime actually uses (the arena it would reserve); others get the best plan.
RUNTIME_PLANNER = {"tflm": "greedy_tflm", "cmsis-nn": "greedy_tflm"}

_KIND_WORDS = {
    "input": "inputs", "output": "outputs", "activation": "activations", "weight": "weights",
    "bias": "biases", "scratch": "scratch", "gradient": "gradients", "optimizer": "optimizer state",
    "noise": "noise / PRNG state", "param": "trainable parameters", "state": "runtime state",
}


@dataclass
class MemoryResult:
    """Everything `analyze` found; every figure is in bytes and explained in `conventions`."""

    target: str
    peak_bytes: dict[str, int]
    peak_step: dict[str, int]
    peak_tensors: dict[str, list[tuple[str, str, int]]]      # memory -> [(tensor, kind, bytes)] live at the peak
    peak_by_kind: dict[str, dict[str, int]]                   # memory -> kind -> bytes at the peak
    arena_memory: str
    arena_bytes: dict[str, int]                               # planner (and "lower_bound") -> bytes
    plans: dict[str, ArenaPlan]
    required_bytes: dict[str, int]                            # memory -> bytes it must hold (arena + the rest)
    capacity_bytes: dict[str, int]
    spills: dict[str, int]                                    # memory -> bytes that do not fit
    timeline: pd.DataFrame
    conventions: dict[str, str]
    flags: list[str] = field(default_factory=list)
    buffers: list[Lifetime] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.spills

    def summary(self) -> dict[str, Any]:
        """Plain-data view (for JSON/CSV reports)."""
        return {
            "target": self.target, "peak_bytes": dict(self.peak_bytes),
            "arena_memory": self.arena_memory, "arena_bytes": dict(self.arena_bytes),
            "required_bytes": dict(self.required_bytes), "capacity_bytes": dict(self.capacity_bytes),
            "spills": dict(self.spills), "flags": list(self.flags),
            "peak_tensors": {m: [list(t) for t in ts] for m, ts in self.peak_tensors.items()},
            "conventions": dict(self.conventions),
        }


def _resolve_target(target: Any):
    if isinstance(target, (str, Path)):
        from hwsim.target import load_target

        return load_target(target)
    return target


def arena_requests(buffers: Sequence[Lifetime], arena_memory: str,
                   tie_order: dict[str, int] | None = None) -> list[Request]:
    """The buffers a runtime's planner lays out: every non-constant tensor living in the arena memory.

    `tie_order` (tensor name -> index in the model, e.g. `trace.meta["tensor_index"]`) is the
    order TFLM adds buffers in; it breaks size ties in `greedy_tflm`. Tensors missing from it
    (scratch buffers) follow in allocation order, as TFLM adds scratch buffers after tensors.
    """
    tie_order = tie_order or {}
    base = max(tie_order.values(), default=-1) + 1
    return [Request(b.name, b.nbytes, b.first, b.last, tie_order.get(b.name, base + b.order))
            for b in buffers if b.memory == arena_memory and in_arena(b)]


def in_arena(b: Lifetime) -> bool:
    """Whether a runtime planner would give this tensor arena space.

    Constants stay in the model buffer, as TFLM keeps them in the flatbuffer: weights, biases,
    and `param` tensors no op ever writes (the emulator marks other constant operands, e.g. a
    RESHAPE's shape, as `param`; a trainable parameter is written by its update op and stays).
    """
    return b.kind not in CONSTANT_KINDS and not (b.kind == "param" and not b.written)


def analyze(trace: Trace, target: Any, *, planners: Sequence[str] = ("greedy_tflm", "best_fit"),
            arena_memory: str | None = None, tie_order: dict[str, int] | None = None,
            tflm_build: str | None = None) -> MemoryResult:
    """Peaks per memory, arena plans and spills for `trace` on `target` (a Target or a profile name/path).

    `planners`: any of "greedy_tflm" (TFLite-Micro's), "best_fit" (portfolio heuristic),
    "optimal" (MILP, seconds on large graphs; not in the default set).

    `tie_order`: the model's tensor indices by name (default `trace.meta["tensor_index"]` when the
    emulator recorded it, else allocation order); only TFLM-style tie-breaking depends on it.

    `tflm_build`: which TFLM build's struct sizes price the persistent tail ("mcu32", "host64"; see
    `hwsim/runtimes/tflm.yaml`); default: the build the target's `numerics.runtime` runs (tflm and
    cmsis-nn -> mcu32), none for other runtimes. Only traces of TFLite models have a tail.
    """
    target = _resolve_target(target)
    unknown = [p for p in planners if p not in PLANNERS]
    if unknown:
        raise HwsimError(f"unknown arena planner {unknown[0]!r}; choose from {sorted(PLANNERS)}")
    num = target.numerics
    problems: list[str] = []
    buffers, steps = lifetimes(trace, target.memory_for, packing=num.packing,
                               container_bits=num.container_bits, problems=problems)
    encoded = encoded_constant_bytes(trace, target)
    for b in buffers:
        if b.name in encoded:
            b.nbytes = encoded[b.name]   # the NPU's encoded stream is what the model image stores
    const_mem = target.memory_for("weight")
    for b in buffers:
        if b.kind == "param" and not b.written:
            b.memory = const_mem  # a constant operand (never written) lives with the model's constants
    n_steps = max(len(steps), 1)
    memories = list(target.memories)
    arena_mem = arena_memory or target.memory_for("activation")
    if arena_mem not in target.memories:
        raise HwsimError(f"arena memory {arena_mem!r} is not a memory of target {target.name!r}; "
                         f"choose from {memories}")
    alignment = int(target.placement.alignment_bytes)

    by_mem: dict[str, list[Lifetime]] = {m: [] for m in memories}
    for b in buffers:
        by_mem.setdefault(b.memory, []).append(b)

    # ---- peaks of live bytes per memory --------------------------------------------------
    series: dict[str, np.ndarray] = {}
    peak_bytes: dict[str, int] = {}
    peak_step: dict[str, int] = {}
    peak_tensors: dict[str, list[tuple[str, str, int]]] = {}
    peak_by_kind: dict[str, dict[str, int]] = {}
    for mem, bufs in by_mem.items():
        s = live_bytes(bufs, n_steps)
        series[mem] = s
        at = int(np.argmax(s)) if len(s) else 0
        peak_bytes[mem] = int(s[at]) if len(s) else 0
        peak_step[mem] = at
        live = sorted((b for b in bufs if b.first <= at <= b.last), key=lambda b: (-b.nbytes, b.order))
        peak_tensors[mem] = [(b.name, b.kind, b.nbytes) for b in live]
        kinds: dict[str, int] = {}
        for b in live:
            kinds[b.kind] = kinds.get(b.kind, 0) + b.nbytes
        peak_by_kind[mem] = kinds

    # ---- arena plans ---------------------------------------------------------------------
    if tie_order is None:
        tie_order = trace.meta.get("tensor_index") if isinstance(trace.meta.get("tensor_index"), dict) else None
    reqs = arena_requests(buffers, arena_mem, tie_order)
    plans = {p: PLANNERS[p](reqs, alignment) for p in planners}
    arena_bytes = {p: plan.arena_bytes for p, plan in plans.items()}
    arena_bytes["lower_bound"] = lower_bound(reqs, alignment)
    build = tflm_build or build_for_runtime(num.runtime)
    persistent: TflmPersistent | None = None
    if build and is_tflite_trace(trace):
        persistent = tflm_persistent(trace, build)
        arena_bytes["tflm_persistent"] = persistent.total_bytes

    # ---- does it fit? --------------------------------------------------------------------
    runtime_planner = RUNTIME_PLANNER.get(num.runtime)
    if runtime_planner not in arena_bytes:
        runtime_planner = min(plans, key=lambda p: arena_bytes[p]) if plans else None
    arena_names = {r.name for r in reqs}  # names are unique among buffers live at once
    required: dict[str, int] = {}
    capacity = {m: int(target.memories[m].capacity_bytes) for m in memories}
    for mem, bufs in by_mem.items():
        if mem == arena_mem and runtime_planner is not None:
            rest = [b for b in bufs if b.name not in arena_names]
            required[mem] = (arena_bytes[runtime_planner] + int(live_bytes(rest, n_steps).max(initial=0))
                             + (persistent.total_bytes if persistent else 0))
        else:
            required[mem] = peak_bytes[mem]
    spills = {m: required[m] - capacity[m] for m in memories if required[m] > capacity.get(m, 0)}
    flags = list(problems)
    if persistent and persistent.unmodelled_ops:
        flags.append(f"tflm_persistent: no struct sizes for op(s) {persistent.unmodelled_ops} in "
                     f"hwsim/runtimes/tflm.yaml; their builtin options and OpData are not counted (tail too small)")
    for m, over in spills.items():
        what = (f"arena ({runtime_planner}: {arena_bytes.get(runtime_planner, 0)} B)"
                + (f" plus TFLM persistent tail ({persistent.total_bytes} B)" if persistent else "")
                + " plus other tensors"
                if m == arena_mem else "peak of live tensors")
        flags.append(f"spill: {m} needs {required[m]} B ({what}) but holds {capacity[m]} B; "
                     f"{over} B do not fit")

    # ---- timeline -------------------------------------------------------------------------
    arena_series = live_bytes([_aligned_lifetime(b, alignment) for b in buffers if b.name in arena_names],
                              n_steps)
    timeline = pd.DataFrame({
        "index": [s.index for s in steps] or [0],
        "op": [s.op for s in steps] or [""],
        "name": [s.name for s in steps] or [""],
        "layer": [s.layer for s in steps] or [""],
        "phase": [s.phase for s in steps] or [""],
        "step": [s.step for s in steps] or [0],
        **{f"live_{m}": series[m] for m in by_mem},
        "live_arena_aligned": arena_series,
    })

    return MemoryResult(
        target=target.name, peak_bytes=peak_bytes, peak_step=peak_step, peak_tensors=peak_tensors,
        peak_by_kind=peak_by_kind, arena_memory=arena_mem, arena_bytes=arena_bytes, plans=plans,
        required_bytes=required, capacity_bytes=capacity, spills=spills, timeline=timeline,
        conventions=_conventions(target, buffers, arena_mem, alignment, runtime_planner, persistent, len(encoded)),
        flags=flags, buffers=buffers)


def _aligned_lifetime(b: Lifetime, alignment: int) -> Lifetime:
    from dataclasses import replace

    return replace(b, nbytes=align_up(b.nbytes, alignment))


def _conventions(target, buffers: Sequence[Lifetime], arena_mem: str, alignment: int,
                 runtime_planner: str | None, persistent: TflmPersistent | None = None,
                 n_encoded: int = 0) -> dict[str, str]:
    """One sentence per figure and per tensor kind saying what is counted, where, and how."""
    num = target.numerics
    total_by_kind: dict[str, int] = {}
    for b in buffers:
        total_by_kind[b.kind] = total_by_kind.get(b.kind, 0) + 1
    conv = {
        "peak_bytes": ("per memory level: max over op steps of the bytes of all tensors live during that op "
                       "(allocated before it, freed after it; an op's inputs and outputs overlap, no in-place "
                       "reuse); unaligned storage bytes; tensors of every kind placed in that memory"),
        "arena_bytes": (f"activation arena in {arena_mem!r}: every non-constant tensor placed there "
                        f"(inputs, outputs, activations, scratch, training state if placed there), sizes "
                        f"rounded up to {alignment} B (placement.alignment), laid out by each planner; "
                        f"'lower_bound' = max over op steps of live aligned bytes (no planner can do better); "
                        f"weights/biases are not in the arena"),
        "required_bytes": (f"{arena_mem!r}: arena of the runtime's planner ({runtime_planner}) plus the peak of "
                           "other tensors placed there (e.g. weights copied to SRAM)"
                           + (" plus TFLM's persistent tail (arena_bytes['tflm_persistent'])" if persistent else "")
                           + "; other memories: peak_bytes"),
        "tflm_persistent": (
            f"TFLite-Micro's persistent arena tail, {persistent.total_bytes} B for build {persistent.build!r}: "
            "allocation-by-allocation replay of MicroInterpreter::AllocateTensors (runtime objects, "
            "SubgraphAllocations, one TfLiteEvalTensor per flatbuffer tensor, one NodeAndRegistration per op, "
            "builtin options, kernel OpData, per-channel multiplier/shift arrays of conv/depthwise, input/output "
            "TfLiteTensors with quantization), with TFLM's alignment padding; struct sizes from "
            "hwsim/runtimes/tflm.yaml (32-bit MCU build for tflm/cmsis-nn targets); by category: "
            + ", ".join(f"{k} {v} B" for k, v in persistent.by_category.items())
            if persistent else
            f"not counted: runtime {num.runtime!r} is not TFLite-Micro, or the trace is not of a TFLite model"),
        "spills": "required_bytes minus capacity for every memory where it is positive",
        "sub_byte": (f"target packs sub-byte values densely (packing=true)" if num.packing else
                     f"target does not pack: a value narrower than {num.container_bits} bits costs a "
                     f"{num.container_bits}-bit container (wider values round up to whole containers)"),
        "time": "op steps of the trace, in emission order (all phases and training steps on one axis)",
        "encoded_constants": (
            f"{n_encoded} weight/bias tensors counted at the size the NPU stores them: the weight codec's "
            "encoded stream (estimated from the weight values, hwsim.cost.npu_weight_codec; raw where the trace "
            "names no model file with the values) and the per-channel bias/scale records; the same bytes the cost "
            "model reads" if n_encoded else
            "weights and biases counted raw (no compute unit of this target declares weight_compression, or the "
            "trace names no model file with the weight values)"),
    }
    for kind in TENSOR_KINDS:
        word = _KIND_WORDS.get(kind, kind)
        mem = target.memory_for(kind)
        n = total_by_kind.get(kind, 0)
        where = "activation arena" if (mem == arena_mem and kind not in CONSTANT_KINDS) else "outside the arena"
        conv[kind] = (f"{word}: counted in {mem!r} ({where}) from alloc to free as emitted by the trace; "
                      f"{n} buffer(s) of this kind in this trace")
    conv["param"] += (f"; a param tensor no op ever writes is a constant operand (e.g. a RESHAPE shape) and "
                      f"is counted with the weights in {target.memory_for('weight')!r}, outside the arena")
    return conv
