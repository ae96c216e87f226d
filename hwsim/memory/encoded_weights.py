"""Stored sizes of constants that an NPU keeps encoded (Ethos-U weight streams).

Why: when a compute unit declares `weight_compression`, the pricer reads the *encoded* weight
stream and the per-channel bias/scale records (`hwsim.cost.npu_weight_codec`). The model image in
flash holds those same bytes, so the memory figures must count them too — one size per tensor for
latency and for "does it fit", not raw bytes in one place and encoded bytes in the other.
"""
from __future__ import annotations

from typing import Any

from hwsim.trace import OpEvent, Trace


def encoded_constant_bytes(trace: Trace, target: Any) -> dict[str, int]:
    """tensor name -> stored bytes, for every weight/bias that only compressing units read.

    A constant also read by an op that runs elsewhere (e.g. a CPU fallback) keeps its raw size:
    that unit needs the plain values. Weights whose values are unknown (no `model_path` in the
    trace meta) are left out, i.e. counted raw — the pricer flags that case.
    """
    units = {n: u for n, u in target.compute.items() if getattr(u, "weight_compression", None) is not None}
    if not units:
        return {}
    from hwsim.cost import npu_weight_codec
    from hwsim.cost.pricing import Pricer

    pricer = Pricer(target, meta=trace.meta)
    codec_of: dict[str, Any] = {}
    raw_reader: set[str] = set()
    kinds: dict[str, Any] = {}
    for ev in trace.events:
        if not isinstance(ev, OpEvent):
            continue
        consts = [t for t in ev.reads if t.kind in ("weight", "bias")]
        if not consts:
            continue
        unit = pricer.choose_unit(ev, [])
        for t in consts:
            kinds[t.name] = t
            if unit in units:
                codec_of.setdefault(t.name, units[unit].weight_compression)
            else:
                raw_reader.add(t.name)
    sizes = npu_weight_codec.WeightBytes(trace.meta)
    out: dict[str, int] = {}
    for name, wc in codec_of.items():
        if name in raw_reader:
            continue
        t = kinds[name]
        if t.kind == "bias":
            out[name] = int(npu_weight_codec.bias_bytes(tuple(t.shape), wc))
        else:
            encoded = sizes.weight(name, wc)
            if encoded is not None:
                out[name] = int(encoded)
    return out
