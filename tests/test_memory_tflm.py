"""The greedy arena of the five MLPerf Tiny models equals TFLite-Micro's own, byte for byte.

Oracle: the `tflite-micro` Python interpreter (RecordingMicroAllocator). After one invoke,
`print_allocations()` reports "Arena allocation head N bytes": the non-persistent section of the
arena, which TFLM sizes to `GreedyMemoryPlanner::GetMaximumMemorySize()` of its memory plan (the
persistent tail — node structs, eval tensors, quantization params — is not tensors; it is replayed
and compared in tests/test_memory_persistent.py). The models use no kernel scratch buffers on
the host build (reference kernels request scratch only for int4 filters), so the head is the
tensor plan alone.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from hwsim.emulator import Emulator
from tflm_oracle import tflm_allocations
from hwsim.memory import analyze, arena_requests, check_plan
from hwsim.target import load_target

MODELS = ["ad01_int8", "pretrainedResnet_quant", "kws_ref_model", "vww_96_int8", "str_ww_ref_model"]
DATA = Path(__file__).resolve().parent / "data" / "mlperf_tiny"



@pytest.fixture(scope="module")
def tflm_heads() -> dict[str, int]:
    """Non-persistent arena bytes TFLM's planner reports, per model (one subprocess for all five:
    the C++ allocator prints to the process's stderr)."""
    rec = tflm_allocations([str(DATA / f"{m}.tflite") for m in MODELS])
    return {model: r["head"] for model, r in rec.items()}


@pytest.fixture(scope="module")
def target():
    t = load_target("stm32l4r5")  # TFLM placement: all tensors in one SRAM arena, 16-byte alignment
    assert t.placement.alignment_bytes == 16
    return t


@pytest.mark.parametrize("model", MODELS)
def test_greedy_arena_equals_tflm(model, tflm_heads, target):
    emu = Emulator.from_tflite(DATA / f"{model}.tflite")
    trace = emu.trace_only()
    res = analyze(trace, target)
    assert res.arena_bytes["greedy_tflm"] == tflm_heads[model]
    # same answer when ties are broken by the model's tensor indices, as TFLM adds buffers
    by_index = analyze(trace, target, tie_order={n: i for i, n in enumerate(emu.tensor_names())})
    assert by_index.arena_bytes["greedy_tflm"] == tflm_heads[model]
    # the better planner is never worse, never below the bound, and its plan is valid
    assert res.arena_bytes["lower_bound"] <= res.arena_bytes["best_fit"] <= res.arena_bytes["greedy_tflm"]
    reqs = arena_requests(res.buffers, res.arena_memory)
    for plan in res.plans.values():
        assert check_plan(reqs, plan) == []


# From tests/data/mlperf_tiny/README.md (computed from the flatbuffers by a separate parse):
# constant bytes (weights + biases + other constants) and the largest single-op input+output.
README_CONSTANT_BYTES = {"ad01_int8": 270_880, "pretrainedResnet_quant": 78_752, "kws_ref_model": 24_376,
                         "vww_96_int8": 219_072, "str_ww_ref_model": 49_420}
README_MAX_OP_IN_OUT = {"ad01_int8": 768, "pretrainedResnet_quant": 49_152, "kws_ref_model": 16_000,
                        "vww_96_int8": 55_296, "str_ww_ref_model": 6_656}


@pytest.mark.parametrize("model", MODELS)
def test_peaks_match_readme_statistics(model, target):
    res = analyze(Emulator.from_tflite(DATA / f"{model}.tflite").trace_only(), target)
    assert res.peak_bytes["flash"] == README_CONSTANT_BYTES[model]
    # an op's inputs and output are live together, so the peak can never be below this
    assert res.peak_bytes["sram"] >= README_MAX_OP_IN_OUT[model]


def test_vww_best_fit_reaches_lower_bound_where_tflm_fragments(tflm_heads, target):
    res = analyze(Emulator.from_tflite(DATA / "vww_96_int8.tflite").trace_only(), target)
    assert tflm_heads["vww_96_int8"] == 73_728
    assert res.arena_bytes["best_fit"] == res.arena_bytes["lower_bound"] == 55_296
