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
        # `pool_tap_cycles` cycles per kernel tap per micro-block (a sub-kernel costs at least one
        # step's worth of taps), x2 at 16-bit
        macs = sum(n for (cls, _), n in ev.work.items() if n)
        outs = oh * ow * oc
        if outs == 0 or macs == 0:
            return None
        ih, iw = (ifm.shape[1], ifm.shape[2]) if len(ifm.shape) == 4 else (1, 1)
        taps = max(1, round(macs / outs))
        kh = ih if oh * ow == 1 else max(1, round(taps ** 0.5))
        kw = max(1, _ceil_div(taps, kh))
        per_ublock = sum(max(blocks.step_cycles, t) for t in _sub_kernels(kh, kw, blocks.sub_kernel))
        return float(per_ublock * blocks.pool_tap_cycles * ublocks_xy * ublocks_z * bit_scale)

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


# ---- IFM re-fetch from an off-chip memory level -------------------------------------------------
def _round_up(a: int, b: int) -> int:
    return _ceil_div(a, b) * b


def _conv_geometry(ev: OpEvent, blocks, ifm_bits: int) -> dict | None:
    """IFM/OFM extents, kernel, stride and traversal of a conv-like event with NHWC shapes (None
    otherwise). The stride is the IFM / OFM size ratio (the trace carries no stride)."""
    kind = CONV_OPS.get(ev.op)
    if kind is None:
        return None
    ifm, weight, ofm = _feature_maps(ev)
    if ifm is None or ofm is None or len(ifm.shape) != 4 or len(ofm.shape) != 4:
        return None
    _, ih, iw, ic = ifm.shape
    oh, ow, oc = _ofm_hwc(ofm.shape)
    if kind == "pool":
        macs = sum(n for (cls, _), n in ev.work.items() if n)
        taps = max(1, round(macs / max(1, oh * ow * oc)))
        kh = ih if oh * ow == 1 else max(1, round(taps ** 0.5))
        kw = max(1, _ceil_div(taps, kh))
    elif weight is not None and len(weight.shape) == 4:
        kh, kw = weight.shape[1], weight.shape[2]
    else:
        return None
    part_kernel = False
    if kind == "conv":
        # the traversal npu_blocks.mac_array_cycles takes (fewer steps), which sets the IFM-block depth
        subs = _sub_kernels(kh, kw, blocks.sub_kernel)
        depth = weight.shape[3]
        taps_per_step = max(1, blocks.dot_product_bits // (ifm_bits * blocks.part_kernel_depth))
        pk = sum(_ceil_div(t, taps_per_step) for t in subs) * _ceil_div(depth, blocks.part_kernel_depth)
        df = sum(subs) * _ceil_div(depth, max(1, blocks.dot_product_bits // ifm_bits))
        part_kernel = pk < df
    return {"kind": kind, "ifm": (ih, iw, ic), "ofm": (oh, ow, oc), "kernel": (kh, kw),
            "stride": (max(1, round(ih / oh)), max(1, round(iw / ow))), "part_kernel": part_kernel}


def _ifm_block(g: dict, bh: int, bw: int, bd: int, blocks, fetch, ifm_bits: int) -> tuple[int, int, int]:
    """IFM block (h, w, depth) an OFM block of bh x bw x bd reads: grown by the (sub-)kernel halo,
    rounded up to the IFM micro-block; depth: the traversal's IFM-block depth (convs) or the OFM
    block depth (depthwise/pool)."""
    (kh, kw), (sh, sw) = g["kernel"], g["stride"]
    ub = fetch.ifm_micro_block
    h = _round_up((bh - 1) * sh + min(kh, blocks.sub_kernel[0]), ub.height)
    w = _round_up((bw - 1) * sw + min(kw, blocks.sub_kernel[1]), ub.width)
    if g["kind"] != "conv":
        return h, w, bd
    per_step = fetch.part_kernel_ifm_block_depth if g["part_kernel"] else max(1, blocks.dot_product_bits // ifm_bits)
    return h, w, _round_up(min(g["ifm"][2], per_step), ub.depth)


def _fits_shram(ifm_blk: tuple[int, int, int], bh: int, bw: int, bd: int, fetch, ifm_bits: int) -> bool:
    """Double-buffered IFM block and accumulators fit the shared buffer's banks."""
    ih, iw, idp = ifm_blk
    ifm_banks = _round_up(_ceil_div(ih * iw * _round_up(idp * ifm_bits // 8, 8), fetch.shram_bank_bytes) * 2,
                          fetch.ifm_bank_granule)
    acc_banks = _round_up(_ceil_div(bh * bw * _round_up(bd, 8) * fetch.acc_bits // 8, fetch.shram_bank_bytes) * 2,
                          fetch.acc_bank_granule)
    return ifm_banks + acc_banks + fetch.shram_reserved_banks <= fetch.shram_banks


_BLOCK_CACHE: dict[tuple, tuple[int, int, int]] = {}


def choose_ofm_block(g: dict, blocks, fetch, ifm_bits: int) -> tuple[int, int, int]:
    """The OFM block of `_search_ofm_block`, cached per geometry and profile numbers (the search
    walks up to a few thousand candidates; sweeps price the same layer many times)."""
    key = (tuple(sorted(g.items())), ifm_bits, blocks.model_dump_json(exclude={"ifm_fetch"}), fetch.model_dump_json())
    if key not in _BLOCK_CACHE:
        if len(_BLOCK_CACHE) > 4096:
            _BLOCK_CACHE.clear()
        _BLOCK_CACHE[key] = _search_ofm_block(g, blocks, fetch, ifm_bits)
    return _BLOCK_CACHE[key]


def _search_ofm_block(g: dict, blocks, fetch, ifm_bits: int) -> tuple[int, int, int]:
    """OFM block (h, w, depth): the least IFM + weight fetch per OFM element among blocks up to
    `ofm_block_max` (multiples of the micro-block; depths below the OFM depth multiples of
    `ofm_split_depth`) that fit the SHRAM. Ties keep the first found (smallest depth, height, width)."""
    oh, ow, oc = g["ofm"]
    ih, iw, ic = g["ifm"]
    kh, kw = g["kernel"]
    ub, mx = blocks.ofm_micro_block, fetch.ofm_block_max
    sh_, sw_, sd_ = (_round_up(min(oh, mx.height), ub.height), _round_up(min(ow, mx.width), ub.width),
                     _round_up(min(oc, mx.depth), ub.depth))
    repeats = len(_sub_kernels(kh, kw, blocks.sub_kernel))
    weight_taps = kh * kw if g["kind"] != "pool" else 0
    best, best_cost = None, float("inf")
    depth = max(ub.depth, min(sd_, fetch.ofm_split_depth))
    if depth < oc:
        depth = _round_up(depth, fetch.ofm_split_depth)
    while depth <= sd_:
        for bh in range(ub.height, sh_ + 1, ub.height):
            for bw in range(ub.width, sw_ + 1, ub.width):
                ifm_blk = _ifm_block(g, bh, bw, depth, blocks, fetch, ifm_bits)
                if not _fits_shram(ifm_blk, bh, bw, depth, fetch, ifm_bits):
                    continue
                full_xy = _ceil_div(oh, bh) * _ceil_div(ow, bw)
                frac_xy = (oh / bh) * (ow / bw)
                ifm_cost = ifm_blk[0] * ifm_blk[1] * ic * repeats * frac_xy
                w_cost = weight_taps * ic * full_xy
                if g["kind"] == "conv":
                    ifm_cost *= _ceil_div(oc, depth)
                    w_cost *= depth * (oc / depth)
                cost = (ifm_cost + w_cost) / (oh * ow * oc)
                if ih * iw * ic < 2 * ifm_blk[0] * ifm_blk[1] * ifm_blk[2]:
                    cost /= 2
                if cost < best_cost:
                    best, best_cost = (bh, bw, depth), cost
        depth += ub.depth
        if depth < oc:
            depth = _round_up(depth, fetch.ofm_split_depth)
    return best if best is not None else (ub.height, ub.width, ub.depth)


def ifm_fetch_plan(ev: OpEvent, blocks, ifm_bits: int) -> dict | None:
    """How a conv-like op fetches its IFM block by block (None when the op is not one or the
    profile has no `ifm_fetch` block): the OFM block, OFM block count, the IFM block as fetched
    (clipped to the IFM), the IFM depth and sub-kernel repeats.

    Rule (as Vela 5.2 counts element access per OFM block): every OFM block reads the full IFM
    block it needs, clipped to the IFM, with all IFM channels, once per sub-kernel; convs do so
    for every OFM block along the channel axis too, depthwise/pooling ops per spatial block."""
    fetch = getattr(blocks, "ifm_fetch", None) if blocks is not None else None
    g = _conv_geometry(ev, blocks, ifm_bits) if fetch is not None else None
    if g is None:
        return None
    oh, ow, oc = g["ofm"]
    ih, iw, ic = g["ifm"]
    bh, bw, bd = choose_ofm_block(g, blocks, fetch, ifm_bits)
    fh, fw, fd = _ifm_block(g, bh, bw, bd, blocks, fetch, ifm_bits)
    n = _ceil_div(oh, bh) * _ceil_div(ow, bw) * (_ceil_div(oc, bd) if g["kind"] == "conv" else 1)
    return {"ofm_block": (bh, bw, bd), "blocks": n, "ifm_block": (min(fh, ih), min(fw, iw), fd),
            "ifm_depth": ic, "repeats": len(_sub_kernels(*g["kernel"], blocks.sub_kernel))}


def ifm_fetch_bytes(ev: OpEvent, blocks, level: str, ifm_bits: int) -> float | None:
    """Bytes moved over memory level `level` to fetch the IFM of `ev` block by block, or None when
    the plain IFM size applies (no `ifm_fetch` block, level not listed in its `burst_bytes`, or
    not a conv-like op with NHWC shapes).

    bytes = OFM blocks x sub-kernels x IFM block (h x w x all IFM channels) x burst factor; the
    burst factor is burst_bytes / min(burst_bytes, IFM-block depth in bytes): a burst carries at
    most one IFM-block depth of one pixel (Vela's NHWC read efficiency), so a shallow IFM wastes
    most of each burst."""
    fetch = getattr(blocks, "ifm_fetch", None) if blocks is not None else None
    if fetch is None or level not in fetch.burst_bytes:
        return None
    plan = ifm_fetch_plan(ev, blocks, ifm_bits)
    if plan is None:
        return None
    bh, bw, bd = plan["ifm_block"]
    elem_bytes = ifm_bits / 8
    burst = fetch.burst_bytes[level]
    factor = burst / min(burst, bd * elem_bytes)
    return plan["blocks"] * plan["repeats"] * bh * bw * plan["ifm_depth"] * elem_bytes * factor


def ifm_of(ev: OpEvent) -> TensorInfo | None:
    """The IFM of a conv-like event (None for other ops), for the pricer's IFM-fetch hook."""
    return _feature_maps(ev)[0] if ev.op in CONV_OPS else None


def last_block_outputs(ev: OpEvent, blocks) -> int | None:
    """OFM elements of one OFM block of a conv/depthwise/pool op (the block of `ifm_fetch_plan`,
    clipped to the OFM), or None without an `ifm_fetch` block or NHWC shapes.

    Why: the NPU pipelines the output stage of OFM block n with the MAC engine on block n + 1, so
    an op whose MAC engine is the bottleneck still waits for the output stage of its last block:
    Vela 5.2 adds one block's output cycles to the op (its debug database's mac_cycles = MAC
    cycles of all blocks + output cycles of one block, e.g. KWS's pointwise conv on ethos-u65-256:
    2,496 + 10 x 5 x 64 / 4 = 3,296)."""
    ifm = ifm_of(ev)
    if ifm is None:
        return None
    plan = ifm_fetch_plan(ev, blocks, ifm.bits)
    if plan is None:
        return None
    (bh, bw, bd), (oh, ow, oc) = plan["ofm_block"], _ofm_hwc(ev.writes[0].shape)
    return min(bh, oh) * min(bw, ow) * min(bd, oc)
