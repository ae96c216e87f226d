"""Encoded size of an NPU's compressed weights, estimated from the model's actual weight values.

Why: Ethos-U NPUs read their weights from flash/DRAM in an encoded form and decode them on the
fly, so the bytes a flash-bound layer waits for are the encoded bytes, which depend on the
values: MLPerf Tiny's weights encode to 0.23 (VWW, many zeros and few distinct values) up to
1.09 (KWS) of their raw int8 size. One profile-level ratio cannot serve both, so the cost model
estimates each weight tensor's encoded size from its values with the codec's scheme, learned
from Vela's weight codec (`ethosu.mlw_codec`): values are zig-zag mapped to unsigned symbols
(or, with few distinct values, to palette indices ranked by frequency), then Golomb-Rice coded
with the best parameter k <= `max_rice_k` (or as fixed-width symbols when shorter); when the stream has zeros the encoder may instead
code the non-zero symbols and the lengths of the zero runs between them; the stream is padded
to `stream_align_bytes`. Per output channel the NPU also reads a bias + requantisation record of
`scale_bias_bytes_per_channel` bytes in place of the int32 bias. All numbers come from the
profile's `weight_compression` block; `tests/test_npu_weight_codec.py` checks the estimate
against `ethosu.mlw_codec.encode` and Vela's reported totals.

Weight values come from the model file the trace names (`trace.meta["model_path"]`, written by
the TFLite emulator); traces without one keep raw bytes (flagged by the pricer).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np


def _rice_bits(symbols: np.ndarray, max_k: int) -> int:
    """Fewest bits of a Golomb-Rice code of non-negative `symbols` over k = 0..max_k."""
    if symbols.size == 0:
        return 0
    return min(int(np.sum(symbols >> k)) + symbols.size * (1 + k) for k in range(max_k + 1))


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def encoded_bytes(values: np.ndarray, wc) -> int:
    """Estimated encoded size in bytes of one weight tensor (zero point already removed)."""
    v = np.asarray(values, dtype=np.int64).ravel()
    if v.size == 0:
        return 0
    uniq, counts = np.unique(v, return_counts=True)
    header_bits = 0
    if len(uniq) <= wc.palette_max:
        order = np.argsort(-counts, kind="stable")
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[order] = np.arange(len(uniq))
        symbols = rank[np.searchsorted(uniq, v)]
        header_bits = len(uniq) * wc.palette_entry_bits
        zero_symbol = int(rank[np.searchsorted(uniq, 0)]) if 0 in uniq else None
    else:
        symbols = _zigzag(v)
        zero_symbol = 0 if 0 in uniq else None
    # Golomb-Rice coded, or fixed-width symbols when that is shorter (uniform-looking values)
    bits = min(_rice_bits(symbols, wc.max_rice_k), symbols.size * max(1, int(symbols.max()).bit_length()))
    if zero_symbol == 0:
        nonzero = symbols != 0
        idx = np.flatnonzero(nonzero)
        runs = np.diff(np.concatenate(([-1], idx, [v.size]))) - 1
        bits = min(bits, _rice_bits(symbols[nonzero] - 1, wc.max_rice_k) + _rice_bits(runs, wc.max_rice_k))
    nbytes = -(-(bits + header_bits) // 8)
    return -(-nbytes // wc.stream_align_bytes) * wc.stream_align_bytes


@lru_cache(maxsize=16)
def _model_weights(model_path: str, mtime: float) -> dict[str, np.ndarray]:
    """Constant tensors of a .tflite model by name, zero point removed (cached per file version)."""
    from hwsim.models.tflite_import import load_tflite

    graph = load_tflite(model_path)
    out: dict[str, np.ndarray] = {}
    for t in graph.tensors:
        if t.data is not None and t.fmt.startswith("int") and t.bits <= 8:
            out[t.name] = np.asarray(t.data, dtype=np.int64) - t.zp
    return out


def _model_key(meta: dict | None) -> tuple[str, float] | None:
    path = (meta or {}).get("model_path")
    if not path or not str(path).endswith(".tflite"):
        return None
    p = Path(path)
    if not p.is_file():
        return None
    return str(p.resolve()), p.stat().st_mtime


def model_weights(meta: dict | None) -> dict[str, np.ndarray] | None:
    """Weight values of the model a trace came from, or None when the trace names no readable model."""
    key = _model_key(meta)
    return _model_weights(*key) if key is not None else None


@lru_cache(maxsize=4096)
def _encoded_cached(model_path: str, mtime: float, name: str, params: tuple) -> int | None:
    """Encoded size of one tensor of one model version under one codec parameter set (sweeps re-price
    the same model many times; encoding is the costly part)."""
    from types import SimpleNamespace

    vals = _model_weights(model_path, mtime).get(name)
    return encoded_bytes(vals, SimpleNamespace(**dict(params))) if vals is not None else None


class WeightBytes:
    """Per-tensor encoded sizes for one trace, as the pricer asks for them."""

    def __init__(self, meta: dict | None) -> None:
        self._key = _model_key(meta)

    @property
    def available(self) -> bool:
        return self._key is not None

    def weight(self, name: str, wc) -> int | None:
        """Encoded bytes of weight tensor `name`, or None when its values are unknown."""
        if self._key is None:
            return None
        params = tuple(sorted(wc.model_dump().items()))
        return _encoded_cached(*self._key, name, params)


def bias_bytes(shape: tuple[int, ...], wc) -> int:
    """Bytes of the per-channel bias + scale records that replace an int32 bias of `shape`."""
    channels = shape[-1] if shape else 1
    return channels * wc.scale_bias_bytes_per_channel


def stored_bytes(pricer, tensor, wc, raw_bytes: float, op_flags: list[str]) -> float:
    """Bytes the NPU reads for weight/bias `tensor` when its unit declares `weight_compression`:
    the encoded weight size and the per-channel bias/scale records; `raw_bytes` when the values
    are unknown (flagged once)."""
    cache = getattr(pricer, "_npu_weight_bytes", None)
    if cache is None:
        cache = pricer._npu_weight_bytes = WeightBytes(getattr(pricer, "meta", None))
    if tensor.kind == "bias":
        return float(bias_bytes(tensor.shape, wc))
    encoded = cache.weight(tensor.name, wc)
    if encoded is None:
        pricer._flag("note", "weight-compression", "weight compression not applied: the trace names no "
                     ".tflite model with the weight values (trace.meta['model_path']), raw bytes priced", op_flags)
        return raw_bytes
    return float(encoded)
