"""Trace events of the TFLite emulator: one OpEvent per op, MACs, tensor kinds, alloc/free rule,
and the shapes-only mode emitting the same events without computing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwsim.emulator import Emulator
from hwsim.trace import AllocEvent, FreeEvent, OpEvent

MODELS_DIR = Path(__file__).resolve().parent / "data" / "mlperf_tiny"
ALL = sorted(MODELS_DIR.glob("*.tflite"))

# MACs per inference as published next to the model files (tests/data/mlperf_tiny/README.md,
# computed there from the flatbuffers with CONV = Ho·Wo·Co·Kh·Kw·Ci, DW = Ho·Wo·Co·Kh·Kw, FC = out·in)
PUBLISHED_MACS = {"ad01_int8": 264_192, "pretrainedResnet_quant": 12_501_632,
                  "kws_ref_model": 2_656_768, "vww_96_int8": 7_489_664,
                  "str_ww_ref_model": 826_368}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_one_event_per_op_and_published_macs(path: Path) -> None:
    em = Emulator.from_tflite(path)
    trace = em.trace_only()
    ops = trace.ops()
    assert len(ops) == len(em.graph.ops)
    assert sum(e.macs for e in ops) == PUBLISHED_MACS[path.stem]
    for e, op in zip(ops, em.graph.ops):
        assert e.layer == em.graph.tensors[op.outputs[0]].name
        assert e.attrs["tflite_op"] == op.opcode
    names = {e.op for e in ops}
    assert names <= {"conv2d", "depthwise_conv2d", "fully_connected", "add", "average_pool2d",
                     "reshape", "softmax"}
    assert trace.meta["batch"] == 1


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_alloc_free_follow_the_emission_rule(path: Path) -> None:
    em = Emulator.from_tflite(path)
    trace = em.trace_only()
    g = em.graph
    events = trace.events
    n_inputs = len(g.inputs)
    # graph inputs are allocated first, then constants (weights/biases) once
    assert all(isinstance(e, AllocEvent) and e.tensor.kind == "input" for e in events[:n_inputs])
    live: set[str] = set()
    allocated: set[str] = set()
    for e in events:
        if isinstance(e, AllocEvent):
            assert e.tensor.name not in allocated, f"{e.tensor.name} allocated twice"
            allocated.add(e.tensor.name)
            live.add(e.tensor.name)
        elif isinstance(e, FreeEvent):
            assert e.tensor.kind not in ("output", "weight", "bias")
            live.remove(e.tensor.name)
        else:
            assert isinstance(e, OpEvent)
            for t in e.reads + e.writes:
                assert t.name in live, f"{e.name}: {t.name} not live"
    outputs = {g.tensors[i].name for i in g.outputs}
    assert outputs <= live
    weights = {t.name for e in trace.ops() for t in e.reads if t.kind == "weight"}
    assert weights and weights <= live
    # every activation dies (freed) after its last reader
    for t in g.tensors:
        if t.data is None and t.index not in g.outputs:
            assert t.name not in live


def test_run_emits_the_same_events_as_shapes_only() -> None:
    path = MODELS_DIR / "kws_ref_model.tflite"
    em = Emulator.from_tflite(path)
    x = np.random.default_rng(0).integers(-128, 128, (3, 1, 49, 10, 1)).astype(np.int8)
    _, run_trace = em.run(x)
    shape_trace = em.trace_only()
    assert run_trace.meta["batch"] == 3
    assert len(run_trace.events) == len(shape_trace.events)
    for a, b in zip(run_trace.events, shape_trace.events):
        assert type(a) is type(b)
        if isinstance(a, OpEvent):
            assert (a.op, a.name, a.reads, a.writes, a.work) == (b.op, b.name, b.reads, b.writes, b.work)
        else:
            assert a.tensor == b.tensor


def test_saturations_are_counted_from_the_clamp() -> None:
    """Count of values clamped by the fused ReLU of the first conv, checked against a re-count
    from the captured tensors: with uniform random inputs many pre-activations are negative."""
    path = MODELS_DIR / "kws_ref_model.tflite"
    em = Emulator.from_tflite(path)
    x = np.random.default_rng(1).integers(-128, 128, (4, 1, 49, 10, 1)).astype(np.int8)
    _, trace = em.run(x, capture_intermediates=True)
    first = trace.ops()[0]
    out = em.intermediates[first.layer]
    lo, hi = em.kernels[0].act
    # every clamped value sits exactly at a bound, so saturations ≤ count of values at the bounds
    at_bounds = int(np.count_nonzero(out == lo)) + int(np.count_nonzero(out == hi))
    assert 0 < first.saturations <= at_bounds
    assert sum(e.saturations for e in trace.ops()) >= first.saturations


def test_tensor_kinds_and_formats() -> None:
    em = Emulator.from_tflite(MODELS_DIR / "pretrainedResnet_quant.tflite")
    trace = em.trace_only()
    conv = trace.ops()[0]
    kinds = [t.kind for t in conv.reads]
    assert kinds == ["input", "weight", "bias"]
    assert [t.fmt for t in conv.reads] == ["int8", "int8", "int32"]
    assert conv.writes[0].kind == "activation"
    assert trace.ops()[-1].writes[0].kind == "output"
    assert conv.work[("mac", "int8")] == 32 * 32 * 16 * 3 * 3 * 3


def test_payload_false_is_shapes_only() -> None:
    em = Emulator.from_tflite(MODELS_DIR / "str_ww_ref_model.tflite")
    x = np.zeros((5, 1, 30, 1, 40), np.int8)
    outs, trace = em.run(x, payload=False)
    assert outs == [] and trace.meta["batch"] == 5
    ref = em.trace_only()
    assert [(e.op, e.work) for e in trace.ops()] == [(e.op, e.work) for e in ref.ops()]
    assert all(e.saturations == 0 for e in trace.ops())
