"""Encoded weight bytes of the Ethos-U profiles (hwsim.cost.npu_weight_codec) against outside oracles.

Oracles: (1) Vela's own weight encoder, `ethosu.mlw_codec.encode` (ethos-u-vela 5.2.0), run on the
same weight values; (2) numbers Vela 5.2 reported for the MLPerf Tiny models, recorded from

    vela tests/data/mlperf_tiny/<model>.tflite --accelerator-config ethos-u55-128 \
        --config <ethos-u-vela>/config_files/Arm/vela.ini \
        --system-config Ethos_U55_High_End_Embedded --memory-mode Shared_Sram

(summary CSV: `total_npu_encoded_weights`, `off_chip_flash_weight_read_bytes`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwsim.cost.analytic import cost_trace
from hwsim.cost.npu_weight_codec import encoded_bytes, model_weights
from hwsim.models.tflite_import import load_tflite
from hwsim.target import load_target

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"
NAMES = ["ad01_int8", "pretrainedResnet_quant", "kws_ref_model", "vww_96_int8", "str_ww_ref_model"]
#: Vela 5.2 summary CSV, ethos-u55-128 / Ethos_U55_High_End_Embedded / Shared_Sram (command above).
VELA_ENCODED = {"ad01_int8": 184464, "pretrainedResnet_quant": 74592, "kws_ref_model": 24032,
                "vww_96_int8": 47456, "str_ww_ref_model": 47424}
VELA_FLASH_WEIGHT_READS = {"ad01_int8": 184464, "pretrainedResnet_quant": 77312, "kws_ref_model": 29792,
                           "vww_96_int8": 68416, "str_ww_ref_model": 49984}


@pytest.fixture(scope="module")
def codec():
    wc = load_target("ethos-u55-128").compute["npu"].weight_compression
    assert wc is not None
    return wc


def _layer_weights(name: str) -> list[np.ndarray]:
    g = load_tflite(MODELS / f"{name}.tflite")
    out = []
    for op in g.ops:
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = g.tensors[op.inputs[1]]
            out.append(np.asarray(w.data, dtype=np.int64) - w.zp)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_estimate_matches_vela_weight_encoder(name, codec):
    from ethosu import mlw_codec  # a test dependency (pyproject [test]); missing = a failure, not a skip
    ws = _layer_weights(name)
    ours = sum(encoded_bytes(w, codec) for w in ws)
    theirs = sum(len(mlw_codec.encode(w.ravel().tolist())) for w in ws)
    assert abs(ours / theirs - 1) <= 0.05, (ours, theirs)


@pytest.mark.parametrize("name", NAMES)
def test_estimate_within_12pct_of_velas_reported_encoded_weights(name, codec):
    """Looser than the codec test: Vela splits each tensor into one stream per OFM block depth, each
    padded to 16 bytes (its `encoded_ranges`), which the one-stream estimate leaves out; on these
    models that adds 2-7 % (VWW, many small layers, is the far end at -10.6 %)."""
    ours = sum(encoded_bytes(w, codec) for w in _layer_weights(name))
    assert abs(ours / VELA_ENCODED[name] - 1) <= 0.12, (ours, VELA_ENCODED[name])


def test_codec_extremes_against_vela_encoder(codec):
    """Zeros compress to almost nothing; uniform random int8 values do not compress."""
    from ethosu import mlw_codec
    zeros = np.zeros(4096, dtype=np.int64)
    rng = np.random.default_rng(0)
    noise = rng.integers(-127, 128, size=4096)
    assert encoded_bytes(zeros, codec) <= 0.025 * zeros.size and len(mlw_codec.encode(zeros.tolist())) <= 0.025 * zeros.size
    ours, theirs = encoded_bytes(noise, codec), len(mlw_codec.encode(noise.tolist()))
    assert ours >= 0.9 * noise.size and abs(ours / theirs - 1) <= 0.05
    assert encoded_bytes(noise, codec) % codec.stream_align_bytes == 0


@pytest.mark.parametrize("name", NAMES)
def test_priced_flash_weight_reads_match_vela(name):
    """Bytes hwsim reads from flash on ethos-u55-128 (encoded weights + bias/scale records) vs Vela's."""
    from hwsim.emulator import Emulator

    t = load_target("ethos-u55-128")
    trace = Emulator.from_tflite(MODELS / f"{name}.tflite").trace_only()
    flash = float(cost_trace(trace, t).ops["read_bytes_flash"].sum())
    assert abs(flash / VELA_FLASH_WEIGHT_READS[name] - 1) <= 0.10, (flash, VELA_FLASH_WEIGHT_READS[name])


def test_without_model_values_raw_bytes_are_priced_and_flagged():
    from hwsim.emulator import Emulator

    t = load_target("ethos-u55-128")
    trace = Emulator.from_tflite(MODELS / "kws_ref_model.tflite").trace_only()
    raw = sum(r.nbytes for ev in trace.ops() for r in ev.reads if r.kind == "weight")
    trace.meta.pop("model_path")
    res = cost_trace(trace, t)
    bias_records = sum(r.shape[-1] * 10 for ev in trace.ops() for r in ev.reads if r.kind == "bias")
    assert float(res.ops["read_bytes_flash"].sum()) == raw + bias_records
    assert any(f["key"] == "weight-compression" for f in res.flags)
    assert model_weights({}) is None
