"""Flash figures on a compressing NPU count the encoded weights the cost model reads.

Oracles: the flash bytes the cost model prices for one inference (each constant is read once) —
the memory figure must be the same bytes, not a second estimate — and Vela 5.2's flash weight
reads for the same models (numbers and command in tests/test_npu_weight_codec.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from hwsim.cost.analytic import cost_trace
from hwsim.memory import analyze
from hwsim.target import load_target

from test_npu_weight_codec import VELA_FLASH_WEIGHT_READS

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"


@pytest.fixture(scope="module")
def u55():
    return load_target("ethos-u55-128")


@pytest.mark.parametrize("name", sorted(VELA_FLASH_WEIGHT_READS))
def test_flash_peak_equals_priced_weight_reads_and_tracks_vela(name, u55):
    from hwsim.emulator import Emulator

    trace = Emulator.from_tflite(MODELS / f"{name}.tflite").trace_only()
    mem = analyze(trace, u55)
    priced = cost_trace(trace, u55).ops["read_bytes_flash"].sum()
    constants = sum(n for _, kind, n in mem.peak_tensors["flash"] if kind in ("weight", "bias"))
    assert constants == int(round(priced))
    assert abs(mem.peak_bytes["flash"] / VELA_FLASH_WEIGHT_READS[name] - 1) <= 0.10
    assert "encoded stream" in mem.conventions["encoded_constants"]


def test_raw_weights_without_a_codec_or_without_weight_values(u55):
    from hwsim.emulator import Emulator

    trace = Emulator.from_tflite(MODELS / "ad01_int8.tflite").trace_only()
    raw = sum(int(t.data.nbytes) for t in Emulator.from_tflite(MODELS / "ad01_int8.tflite").graph.tensors
              if t.data is not None)
    assert analyze(trace, load_target("stm32h743")).peak_bytes["flash"] == raw
    trace.meta.pop("model_path", None)          # values unknown: weights stay raw, biases become records
    mem = analyze(trace, u55)
    priced = cost_trace(trace, u55).ops["read_bytes_flash"].sum()
    assert mem.peak_bytes["flash"] == int(round(priced))
    weights_raw = sum(int(t.data.nbytes) for t in Emulator.from_tflite(MODELS / "ad01_int8.tflite").graph.tensors
                      if t.data is not None and t.data.dtype.itemsize == 1)
    assert sum(n for _, kind, n in mem.peak_tensors["flash"] if kind == "weight") == weights_raw
