"""MAC-array cycles of an Ethos-U style NPU from an op's shapes (micro-block utilisation).

Why: an NPU's MAC array does not reach its MACs/cycle peak on every layer. It computes the
output (OFM) in micro-blocks of `height x width x channels` outputs, and each step of a
micro-block is a fixed-width dot product: `dot_product_bits` of IFM per output, taken either as
many IFM channels of one kernel tap (depth-first) or as `part_kernel_depth` channels of several
taps (part-kernel-first, for shallow IFMs). Outputs, channels and taps that do not fill a
granule still cost the whole step: a 1-channel IFM (keyword spotting's first conv) leaves 7/8
of the lanes idle, a 3x3 depthwise kernel runs as 3 steps of 4 taps. A tiny OFM cannot hide the
per-step accumulator write-back (`min_step_cycles`). The granules are hardware facts from the
profile (`compute.<npu>.blocks`); this module only counts steps from the trace event's shapes
(input, weight and output `TensorInfo` shapes, NHWC / OHWI as the TFLite emulator emits them).

Returns MAC-array cycles; the pricer turns them into seconds with the unit's clock and runtime
efficiency, and pipelines them with the output stage as before.
"""
from __future__ import annotations

from hwsim.trace import OpEvent, TensorInfo

#: Ops (trace `op` names) whose MAC work this model prices, by traversal kind.
CONV_OPS = {"conv2d": "conv", "fully_connected": "conv", "depthwise_conv2d": "depthwise",
            "average_pool2d": "pool", "max_pool2d": "pool"}
#: Binary elementwise ops the NPU's elementwise unit prices per output element.
ELEMENTWISE_OPS = ("add", "sub", "mul")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _sub_kernels(kh: int, kw: int, limit: list[int]) -> list[int]:
    """Tap counts of the sub-kernels a kh x kw kernel is split into (at most limit[0] x limit[1])."""
    hs = [min(limit[0], kh - i) for i in range(0, kh, limit[0])]
    ws = [min(limit[1], kw - i) for i in range(0, kw, limit[1])]
    return [h * w for h in hs for w in ws]


def _feature_maps(ev: OpEvent) -> tuple[TensorInfo | None, TensorInfo | None, TensorInfo | None]:
    """(IFM, weight, OFM) of a conv-like event: the first non-constant read, the weight, the first write."""
    ifm = next((t for t in ev.reads if t.kind not in ("weight", "bias", "param")), None)
    weight = next((t for t in ev.reads if t.kind == "weight"), None)
    ofm = ev.writes[0] if ev.writes else None
    return ifm, weight, ofm


def _ofm_hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """OFM as (height, width, channels): NHWC conv outputs; (batch, N) FC outputs run as batch x 1 x N."""
    if len(shape) == 4:
        return shape[0] * shape[1], shape[2], shape[3]
    if len(shape) >= 2:
        rows = 1
        for d in shape[:-1]:
            rows *= d
        return rows, 1, shape[-1]
    return 1, 1, shape[0] if shape else 1


def mac_array_cycles(ev: OpEvent, blocks, ifm_bits: int) -> float | None:
    """MAC-array cycles of `ev` on an NPU with `blocks` geometry, or None when the op is not a
    conv/depthwise/FC/pool event with the shapes this model needs (the pricer then keeps the
    per-cycle peak rate)."""
    kind = CONV_OPS.get(ev.op)
    if kind is None:
        return None
    ifm, weight, ofm = _feature_maps(ev)
    if ifm is None or ofm is None or (kind != "pool" and weight is None):
        return None
    ub = blocks.ofm_micro_block
    oh, ow, oc = _ofm_hwc(ofm.shape)
    ublocks_xy = _ceil_div(oh, ub.height) * _ceil_div(ow, ub.width)
    ublocks_z = _ceil_div(oc, ub.depth)
    # one step of every micro-block of the OFM plane, or the write-back floor for a tiny plane
    plane_step = max(blocks.min_step_cycles, blocks.step_cycles * ublocks_xy)
    bit_scale = max(1, ifm_bits // 8)

    if kind == "pool":
        # one kernel tap per cycle per micro-block, at least one step
        macs = sum(n for (cls, _), n in ev.work.items() if n)
        outs = oh * ow * oc
        if outs == 0 or macs == 0:
            return None
        ih, iw = (ifm.shape[1], ifm.shape[2]) if len(ifm.shape) == 4 else (1, 1)
        taps = max(1, round(macs / outs))
        kh = ih if oh * ow == 1 else max(1, round(taps ** 0.5))
        kw = max(1, _ceil_div(taps, kh))
        per_ublock = sum(max(blocks.step_cycles, t) for t in _sub_kernels(kh, kw, blocks.sub_kernel))
        return float(per_ublock * ublocks_xy * ublocks_z * bit_scale)

    if kind == "depthwise":
        kh, kw = (weight.shape[1], weight.shape[2]) if len(weight.shape) == 4 else (1, 1)
        steps = sum(_ceil_div(t, blocks.depthwise_taps) for t in _sub_kernels(kh, kw, blocks.sub_kernel))
        return float(max(blocks.min_step_cycles, blocks.step_cycles * ublocks_xy * bit_scale) * steps * ublocks_z)

    # conv2d / fully_connected: weight OHWI (conv) or (N, D) (FC)
    if len(weight.shape) == 4:
        kh, kw, depth = weight.shape[1], weight.shape[2], weight.shape[3]
    else:
        kh, kw, depth = 1, 1, weight.shape[-1]
    subs = _sub_kernels(kh, kw, blocks.sub_kernel)
    depth_per_step = max(1, blocks.dot_product_bits // ifm_bits)
    # depth-first: each tap is a step over `depth_per_step` IFM channels
    depth_first = sum(subs) * _ceil_div(depth, depth_per_step)
    # part-kernel-first: `part_kernel_depth` channels of several taps per step
    taps_per_step = max(1, blocks.dot_product_bits // (ifm_bits * blocks.part_kernel_depth))
    part_kernel = sum(_ceil_div(t, taps_per_step) for t in subs) * _ceil_div(depth, blocks.part_kernel_depth)
    steps = depth_first if len(weight.shape) != 4 else min(depth_first, part_kernel)
    return float(plane_step * steps * ublocks_z)


def fmt_bits(fmt: str) -> int:
    """Bit width named by a trace format ("int8" -> 8); 8 when it names none."""
    digits = "".join(ch for ch in fmt if ch.isdigit())
    return int(digits) if digits else 8


def part_seconds(ev: OpEvent, unit, op_class: str, run_fmt: str, peak_seconds: float, efficiency: float) -> float:
    """Seconds of one work part of `ev` on NPU `unit` (which has `blocks`): the MAC-array cycles
    of a conv/depthwise/FC (its mac/dw_mac part) or pooling op (its one part), else `peak_seconds`
    (the per-cycle peak the pricer computed)."""
    if ev.op in ELEMENTWISE_OPS and op_class == "elementwise" and ev.writes:
        # the elementwise unit rescales both inputs, adds and requantises one output element per
        # pass: its rate is per OFM element in the OFM's format (the profile's elementwise entry)
        ofm = ev.writes[0]
        got = unit.promote("elementwise", ofm.fmt or run_fmt)
        if got is None:
            return peak_seconds
        return ofm.numel / (unit.count * got[1].per_cycle * efficiency * unit.clock_hz)
    kind = CONV_OPS.get(ev.op)
    if kind is None or (kind != "pool" and op_class not in ("mac", "dw_mac")):
        return peak_seconds
    cycles = mac_array_cycles(ev, unit.blocks, fmt_bits(run_fmt))
    if cycles is None:
        return peak_seconds
    return cycles / (unit.count * efficiency * unit.clock_hz)
