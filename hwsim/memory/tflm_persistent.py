"""TFLite-Micro's persistent arena ("tail"), replayed allocation by allocation from a trace.

Why: TFLM reserves, besides the tensor plan (the "head", see `greedy_tflm`), a persistent tail in the
same arena: eval tensors, node structs, parsed builtin options, each kernel's OpData and per-channel
requantization arrays, input/output TfLiteTensors. A model "fits" only if head + tail fits. The
tail's size depends on struct sizes of the runtime build (pointer width, compile flags) and on
alignment padding, so this module replays `MicroInterpreter::AllocateTensors()`'s tail allocations in
TFLM's order, taking every size from `hwsim/runtimes/tflm.yaml`.

Order replayed (tflite-micro micro_allocator.cc / micro_interpreter.cc):
runtime objects -> SubgraphAllocations -> TfLiteEvalTensor[n_tensors] -> NodeAndRegistration[n_ops]
-> builtin options per op -> kernel Init OpData per op -> kernel Prepare per-channel arrays per op
-> per input/output: pointer array, persistent TfLiteTensor, its quantization (affine struct + zero points).
Each allocation moves the tail down to `align_down(tail - size, align)`; the padding is charged to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwsim.runtimes import load_runtime, tflm_build
from hwsim.trace import OpEvent, Trace

#: Categories, named as TFLM's RecordingMicroAllocator prints them where it records them.
CATEGORIES = (
    "runtime objects", "SubgraphAllocations", "TfLiteEvalTensor data", "NodeAndRegistration struct",
    "builtin data", "Persistent buffer data", "Persistent TfLiteTensor data",
    "Persistent TfLiteTensor quantization data",
)


@dataclass
class TflmPersistent:
    """Bytes of TFLM's persistent tail for one model on one runtime build."""

    build: str
    total_bytes: int
    by_category: dict[str, int]
    unmodelled_ops: list[str] = field(default_factory=list)


def build_for_runtime(runtime: str) -> str | None:
    """The `tflm.yaml` build a target's `numerics.runtime` runs (None: not a TFLM runtime)."""
    return load_runtime("tflm").get("runtime_builds", {}).get(runtime)


def is_tflite_trace(trace: Trace) -> bool:
    """Whether the trace came from a TFLite flatbuffer (ops carry `tflite_op`): only then is there a tail."""
    ops = trace.ops()
    return bool(ops) and all("tflite_op" in o.attrs for o in ops)


def _opcode(op: OpEvent) -> str:
    """The flatbuffer builtin operator (e.g. "CONV_2D"): TFLM's kernels and options are keyed by it."""
    return str(op.attrs.get("tflite_op", op.op))


def _channels(op: OpEvent, channel_dim: int) -> int:
    weights = [t for t in op.reads if t.kind == "weight"]
    return int(weights[0].shape[channel_dim]) if weights else 0


def _is_quantized(fmt: str, bits: int) -> bool:
    return fmt.startswith(("int", "uint")) or (not fmt and bits < 32)


def tflm_persistent(trace: Trace, build: str = "mcu32", *, n_tensors: int | None = None) -> TflmPersistent:
    """Replay TFLM's tail allocations for the TFLite model the trace came from.

    Counts from the trace: forward ops (one node each), distinct tensor names (one TfLiteEvalTensor
    each; `trace.meta["tflite_tensor_count"]` overrides when the emulator records the flatbuffer's
    count; `n_tensors` overrides both — a flatbuffer may hold tensors no op touches), input/output
    tensors, and output channels from the weight shapes.
    """
    b = tflm_build(build)
    ops = [o for o in trace.ops() if o.phase == "forward"]
    names: dict[str, Any] = {}
    for o in ops:
        for t in (*o.reads, *o.writes):
            names.setdefault(t.name, t)
    if n_tensors is None:
        n_tensors = int(trace.meta.get("tflite_tensor_count", len(names)))
    inputs = [t for t in names.values() if t.kind == "input"]
    outputs = [t for t in names.values() if t.kind == "output"]

    end = 1 << 30  # TFLM's tail starts at the arena's end, which is 16-aligned (new[] / linker)
    tail = end
    by_cat = {c: 0 for c in CATEGORIES}

    def alloc(category: str, size: int, align: int) -> None:
        nonlocal tail
        if size <= 0:
            return
        before = tail
        tail = (tail - size) // align * align
        by_cat[category] += before - tail

    pb_align = int(b["persistent_buffer_alignment"]["value"])
    ro = b["runtime_objects"]
    alloc("runtime objects", ro["size"], ro["align"])
    sa = b["subgraph_allocations"]
    alloc("SubgraphAllocations", sa["size"], sa["align"])
    et = b["eval_tensor"]
    alloc("TfLiteEvalTensor data", et["size"] * n_tensors, et["align"])
    nr = b["node_and_registration"]
    alloc("NodeAndRegistration struct", nr["size"] * len(ops), nr["align"])

    unmodelled: list[str] = []
    builtin, op_data, per_channel = b["builtin_data"], b["op_data"], b["per_channel_arrays"]
    known = set(builtin) | set(op_data) | set(per_channel)
    codes = [_opcode(o) for o in ops]
    for code in codes:
        if code not in known and code not in unmodelled:
            unmodelled.append(code)
        if code in builtin:
            entry = builtin[code]
            alloc("builtin data", entry["size"], int(entry.get("align", b["builtin_align"])))
            if "extra" in entry:  # allocated right after the options struct, not recorded by TFLM
                alloc("builtin data", entry["extra"]["size"], int(entry["extra"]["align"]))
    for code in codes:  # kernel Init(): one OpData each, in op order
        if code in op_data:
            alloc("Persistent buffer data", op_data[code]["size"], pb_align)
    for o, code in zip(ops, codes):  # kernel Prepare(): per-channel output multiplier and shift arrays
        pc = per_channel.get(code)
        if pc:
            for _ in range(int(pc["arrays"])):
                alloc("Persistent buffer data", int(pc["element"]) * _channels(o, int(pc["channel_dim"])), pb_align)
    ptr = int(b["io_tensor_pointer"]["size"])
    tt, aq, zp = b["persistent_tflite_tensor"], b["affine_quantization"], b["zero_point_array_per_channel"]
    for group in (inputs, outputs):  # MicroInterpreter::AllocateTensors: inputs first, then outputs
        if not group:
            continue
        alloc("Persistent buffer data", ptr * len(group), pb_align)
        for t in group:
            alloc("Persistent TfLiteTensor data", tt["size"], tt["align"])
            if _is_quantized(t.fmt, t.bits):  # per-tensor quantization: one scale, one zero point
                alloc("Persistent TfLiteTensor quantization data", aq["size"], aq["align"])
                alloc("Persistent TfLiteTensor quantization data", zp["header"] + zp["size"], zp["align"])
    return TflmPersistent(build=build, total_bytes=end - tail, by_category=by_cat, unmodelled_ops=unmodelled)
