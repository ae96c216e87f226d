"""MAC-array micro-block utilisation (hwsim.cost.npu_blocks) against outside oracles.

Oracles: a brute-force walk over every OFM micro-block, sub-kernel and IFM-depth step written
here from the architecture rules (not the closed form under test); the profile's own peak
MACs/cycle for shapes that fill every granule; and per-layer / per-model cycles Vela 5.2
reported, recorded from

    vela tests/data/mlperf_tiny/<model>.tflite --accelerator-config <A> \
        --config <ethos-u-vela>/config_files/Arm/vela.ini --system-config <S> --memory-mode <M> \
        --verbose-performance

(per-layer CSV `NPU` column; summary CSV `cycles_total`), with A/S/M as in scripts/compare_vela.py.
"""
from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import pytest

from hwsim.cost.analytic import cost_trace
from hwsim.cost.npu_blocks import mac_array_cycles
from hwsim.target import load_target
from hwsim.trace import OpEvent, TensorInfo

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"
NPUS = ["ethos-u55-128", "ethos-u55-256", "ethos-u65-256"]


def _conv_event(ifm, weight, ofm, op="conv2d", ifm_kind="activation") -> OpEvent:
    """A conv/depthwise event with the operand shapes the pricer reads (MACs = output elements)."""
    reads = (TensorInfo("x", ifm, 8, ifm_kind, "int8"), TensorInfo("w", weight, 8, "weight", "int8"),
             TensorInfo("b", (ofm[-1],), 32, "bias", "int32"))
    macs = 1
    for d in ofm:
        macs *= d
    return OpEvent(op, "t", "forward", reads, (TensorInfo("y", ofm, 8, "activation", "int8"),),
                   {("mac" if op != "depthwise_conv2d" else "dw_mac", "int8"): macs})


def _brute_force_conv(ofm_hw, oc, kh, kw, depth, b, depthwise=False) -> int:
    """Walk every micro-block position, sub-kernel and step; count cycles per step of the plane."""
    ub = b.ofm_micro_block
    oh, ow = ofm_hw
    positions = list(itertools.product(range(0, oh, ub.height), range(0, ow, ub.width)))
    plane = max(b.min_step_cycles, b.step_cycles * len(positions))
    subs = [(min(b.sub_kernel[0], kh - y), min(b.sub_kernel[1], kw - x))
            for y in range(0, kh, b.sub_kernel[0]) for x in range(0, kw, b.sub_kernel[1])]
    total = 0
    for _z in range(0, oc, ub.depth):
        if depthwise:
            for sh, sw in subs:
                taps = sh * sw
                while taps > 0:
                    total += plane
                    taps -= b.depthwise_taps
            continue
        best = None
        # depth-first: one tap per step, dot_product_bits/8 channels
        df = 0
        for sh, sw in subs:
            for _tap in range(sh * sw):
                for _c in range(0, depth, b.dot_product_bits // 8):
                    df += plane
        # part-kernel-first: part_kernel_depth channels x (dot_product_bits / 8 / part_kernel_depth) taps
        pk = 0
        per = b.dot_product_bits // 8 // b.part_kernel_depth
        for sh, sw in subs:
            for _t in range(0, sh * sw, per):
                for _c in range(0, depth, b.part_kernel_depth):
                    pk += plane
        best = min(df, pk)
        total += best
    return total


@pytest.mark.parametrize("name", NPUS)
def test_profile_micro_block_reaches_the_profile_peak(name):
    """Full granules: cycles == MACs / per_cycle peak (integer equality), and the geometry's
    MACs per cycle equals the profile's mac int8 rate."""
    npu = load_target(name).compute["npu"]
    b = npu.blocks
    ub = b.ofm_micro_block
    per_cycle = ub.height * ub.width * ub.depth * (b.dot_product_bits // 8) / b.step_cycles
    assert per_cycle == npu.ops["mac"]["int8"].per_cycle
    oh, ow, oc, depth = 8 * ub.height, 8 * ub.width, 4 * ub.depth, 64
    ev = _conv_event((1, oh, ow, depth), (oc, 3, 3, depth), (1, oh, ow, oc))
    macs = oh * ow * oc * 9 * depth
    assert mac_array_cycles(ev, b, 8) == macs / per_cycle


@pytest.mark.parametrize("name", NPUS)
@pytest.mark.parametrize("shape", [
    # (OFM h, w, channels, kernel h, w, IFM depth)
    (25, 5, 64, 10, 4, 1),      # KWS first conv: 1-channel IFM, kernel split into sub-kernels
    (48, 48, 8, 3, 3, 3),       # VWW first conv: RGB input
    (3, 3, 256, 1, 1, 256),     # tiny OFM: write-back floor binds
    (7, 9, 20, 5, 5, 20),       # nothing aligned
    (1, 1, 128, 1, 1, 640),     # FC-like
])
def test_conv_cycles_match_brute_force_walk(name, shape):
    b = load_target(name).compute["npu"].blocks
    oh, ow, oc, kh, kw, depth = shape
    ev = _conv_event((1, oh, ow, depth), (oc, kh, kw, depth), (1, oh, ow, oc))
    assert mac_array_cycles(ev, b, 8) == _brute_force_conv((oh, ow), oc, kh, kw, depth, b)


@pytest.mark.parametrize("name", NPUS)
@pytest.mark.parametrize("shape", [(25, 5, 64, 3, 3), (48, 48, 8, 3, 3), (3, 3, 256, 3, 3), (28, 1, 40, 3, 1)])
def test_depthwise_cycles_match_brute_force_walk(name, shape):
    b = load_target(name).compute["npu"].blocks
    oh, ow, c, kh, kw = shape
    ev = _conv_event((1, oh, ow, c), (1, kh, kw, c), (1, oh, ow, c), op="depthwise_conv2d")
    assert mac_array_cycles(ev, b, 8) == _brute_force_conv((oh, ow), c, kh, kw, 1, b, depthwise=True)


#: Vela 5.2 per-layer `NPU` cycles, ethos-u55-128, kws_ref_model (command in the module docstring).
VELA_KWS_U55_128 = {"conv2d": 26185, "depthwise_conv2d": 8124}


def test_kws_under_utilised_layers_close_to_vela():
    """The layers that motivated the model: Vela gives KWS's first conv 9.5 % MAC utilisation and its
    depthwise convs 8.9 MACs/cycle on U55-128; hwsim's compute cycles are within 15 % of Vela's."""
    from hwsim.emulator import Emulator

    t = load_target("ethos-u55-128")
    trace = Emulator.from_tflite(MODELS / "kws_ref_model.tflite").trace_only()
    ops = cost_trace(trace, t).ops
    for op, vela in VELA_KWS_U55_128.items():
        first = ops[ops["op"] == op].iloc[0]
        ours = first["compute_s"] * t.clock_hz
        assert abs(ours / vela - 1) <= 0.15, (op, ours, vela)


#: Vela 5.2 summary `cycles_total` per profile and model (command in the module docstring).
VELA_TOTAL = {
    "ethos-u55-128": {"ad01_int8": 201184, "pretrainedResnet_quant": 201747, "kws_ref_model": 89900,
                      "vww_96_int8": 220870, "str_ww_ref_model": 59693},
    "ethos-u55-256": {"ad01_int8": 201184, "pretrainedResnet_quant": 141933, "kws_ref_model": 58340,
                      "vww_96_int8": 161459, "str_ww_ref_model": 56979},
    "ethos-u65-256": {"ad01_int8": 58150, "pretrainedResnet_quant": 113373, "kws_ref_model": 56879,
                      "vww_96_int8": 246086, "str_ww_ref_model": 28439},
}


def test_total_cycles_against_vela_headline():
    """Uncalibrated profiles vs Vela on 3 NPUs x 5 MLPerf Tiny models: 14/15 within +-15 %, median
    |error| under 8 %, none beyond 25 %. The one known miss (KWS on U65, -22 %) is the compute-bound
    remainder (per-OFM-block overheads, global average pool) that DRAM-priced activations used to
    hide before U65 feature maps moved to SRAM (VALIDATION.md)."""
    from hwsim.emulator import Emulator

    traces = {m: Emulator.from_tflite(MODELS / f"{m}.tflite").trace_only() for m in VELA_TOTAL["ethos-u55-128"]}
    errors = {}
    for prof, by_model in VELA_TOTAL.items():
        t = load_target(prof)
        for m, vela in by_model.items():
            errors[(prof, m)] = cost_trace(traces[m], t).latency_s * t.clock_hz / vela - 1
    within = [k for k, e in errors.items() if abs(e) <= 0.15]
    assert len(within) >= 14, errors
    assert statistics.median(abs(e) for e in errors.values()) < 0.08, errors
    assert max(abs(e) for e in errors.values()) < 0.25, errors
