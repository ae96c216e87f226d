"""Load a `.tflite` flatbuffer into a plain-Python graph the emulator runs (no interpreter).

Why: the emulator must see exactly what the runtime sees — float32 scales, int8 weights, int32
biases, per-channel quantization, op options — so it can reproduce the integer arithmetic bit for
bit. The flatbuffer is parsed with the `tflite` package's generated schema; nothing executes it.

`load_tflite(path) -> TFLiteGraph`. Raises `ModelError` for a missing / corrupt / truncated /
non-tflite file, multi-subgraph control flow, or sparse tensors. Unsupported *ops* are rejected by
the emulator (it knows its kernels), naming the op and the model.
"""
from __future__ import annotations

import importlib
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.errors import ModelError

#: TensorType enum value → (numpy dtype, hwsim fmt name, bits)
TENSOR_TYPES: dict[int, tuple[Any, str, int]] = {
    0: (np.float32, "fp32", 32), 1: (np.float16, "fp16", 16), 2: (np.int32, "int32", 32),
    3: (np.uint8, "uint8", 8), 4: (np.int64, "int64", 64), 6: (np.bool_, "bool", 8),
    7: (np.int16, "int16", 16), 9: (np.int8, "int8", 8), 10: (np.float64, "fp64", 64),
    12: (np.uint64, "uint64", 64), 15: (np.uint32, "uint32", 32), 16: (np.uint16, "uint16", 16),
    17: (np.int8, "int4", 4),
}


@dataclass
class TensorSpec:
    """One tensor of the graph. `shape` is the TFLite shape (batch dim included, usually 1)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: Any
    fmt: str
    bits: int
    scale: np.ndarray | None = None          # float32, one entry (per-tensor) or one per channel
    zero_point: np.ndarray | None = None     # int64
    quantized_dimension: int = 0
    data: np.ndarray | None = None           # constant buffer (weights, biases, shapes)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def per_channel(self) -> bool:
        return self.scale is not None and self.scale.size > 1

    @property
    def zp(self) -> int:
        """Per-tensor zero point (0 when unquantized)."""
        return int(self.zero_point[0]) if self.zero_point is not None and self.zero_point.size else 0

    @property
    def s(self) -> float:
        """Per-tensor scale as the float32 stored in the file (0.0 when unquantized)."""
        return float(self.scale[0]) if self.scale is not None and self.scale.size else 0.0


@dataclass
class OpSpec:
    """One operator: builtin name (e.g. CONV_2D), tensor indices (-1 = optional absent), options."""

    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    """The single subgraph of a TFLite model."""

    name: str
    path: str
    tensors: list[TensorSpec]
    ops: list[OpSpec]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_ENUM_CACHE: dict[str, dict[int, str]] = {}


def _enum_names(module: str) -> dict[int, str]:
    if module not in _ENUM_CACHE:
        cls = getattr(importlib.import_module(f"tflite.{module}"), module)
        _ENUM_CACHE[module] = {v: k for k, v in vars(cls).items()
                               if not k.startswith("_") and isinstance(v, int)}
    return _ENUM_CACHE[module]


def _read_options(op: Any) -> dict[str, Any]:
    """Read the builtin options table generically: every scalar getter, every vector as numpy."""
    opt_type = op.BuiltinOptionsType()
    if opt_type == 0:
        return {}
    cls_name = _enum_names("BuiltinOptions").get(opt_type)
    table = op.BuiltinOptions()
    if cls_name is None or table is None:
        return {}
    import inspect

    cls = getattr(importlib.import_module(f"tflite.{cls_name}"), cls_name)
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for attr, fn in vars(cls).items():
        if (attr.startswith("_") or attr.startswith("GetRootAs") or attr in ("Init",)
                or attr.endswith(("BufferHasIdentifier", "Length", "IsNone", "AsNumpy"))
                or not callable(fn)):
            continue
        params = list(inspect.signature(fn).parameters)
        if params == ["self"]:
            out[_snake(attr)] = fn(obj)
        elif params == ["self", "j"] and hasattr(cls, attr + "AsNumpy"):
            arr = getattr(obj, attr + "AsNumpy")()
            out[_snake(attr)] = np.asarray(arr) if not isinstance(arr, int) else np.zeros(0)
    return out


# ---- minimal flatbuffer reader ------------------------------------------------------------------
# Why: importing the `tflite` package executes ~200 generated modules (~0.2 s), more than the
# whole emulation of a small model. The structural tables the emulator needs are read here with
# `struct`; the generated schema is still used lazily for option tables not listed below and for
# the names of unknown operators.

class _Table:
    """A flatbuffer table: field i lives at vtable slot 4 + 2·i."""

    __slots__ = ("buf", "pos", "vt", "vt_len")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.vt = pos - _I32.unpack_from(buf, pos)[0]
        self.vt_len = _U16.unpack_from(buf, self.vt)[0]

    def _off(self, field: int) -> int:
        slot = 4 + 2 * field
        return _U16.unpack_from(self.buf, self.vt + slot)[0] if slot < self.vt_len else 0

    def scalar(self, field: int, fmt: struct.Struct, default: Any = 0) -> Any:
        o = self._off(field)
        return fmt.unpack_from(self.buf, self.pos + o)[0] if o else default

    def _deref(self, field: int) -> int | None:
        o = self._off(field)
        if not o:
            return None
        at = self.pos + o
        return at + _U32.unpack_from(self.buf, at)[0]

    def table(self, field: int) -> "_Table | None":
        at = self._deref(field)
        return None if at is None else _Table(self.buf, at)

    def string(self, field: int) -> str | None:
        at = self._deref(field)
        if at is None:
            return None
        n = _U32.unpack_from(self.buf, at)[0]
        return self.buf[at + 4:at + 4 + n].decode("utf-8", "replace")

    def vector(self, field: int, dtype: Any) -> np.ndarray | None:
        at = self._deref(field)
        if at is None:
            return None
        n = _U32.unpack_from(self.buf, at)[0]
        return np.frombuffer(self.buf, dtype=dtype, count=n, offset=at + 4)

    def tables(self, field: int) -> list["_Table"]:
        at = self._deref(field)
        if at is None:
            return []
        n = _U32.unpack_from(self.buf, at)[0]
        out = []
        for k in range(n):
            el = at + 4 + 4 * k
            out.append(_Table(self.buf, el + _U32.unpack_from(self.buf, el)[0]))
        return out


_I8, _U8, _I32, _U32, _U16, _U64, _F32 = (struct.Struct(f) for f in
                                          ("<b", "<B", "<i", "<I", "<H", "<Q", "<f"))

#: builtin operator codes the emulator may meet (others are named via the generated schema)
_BUILTIN_NAMES = {0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D",
                  4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC",
                  17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 21: "RELU6", 22: "RESHAPE",
                  25: "SOFTMAX", 28: "TANH", 32: "CUSTOM", 34: "PAD", 39: "TRANSPOSE",
                  40: "MEAN", 41: "SUB", 43: "SQUEEZE", 45: "STRIDED_SLICE", 55: "MAXIMUM",
                  57: "MINIMUM", 60: "PADV2", 70: "EXPAND_DIMS", 98: "LEAKY_RELU",
                  114: "QUANTIZE", 117: "HARD_SWISH"}

_B, _I, _F, _BOOL = "b", "i", "f", "?"
#: BuiltinOptions union type → (name, [(field name, kind, default)]) for the common option tables
_OPTION_SCHEMAS: dict[int, list[tuple[str, str, Any]]] = {
    1: [("padding", _B, 0), ("stride_w", _I, 0), ("stride_h", _I, 0),
        ("fused_activation_function", _B, 0), ("dilation_w_factor", _I, 1),
        ("dilation_h_factor", _I, 1), ("quantized_bias_type", _B, 0)],            # Conv2D
    2: [("padding", _B, 0), ("stride_w", _I, 0), ("stride_h", _I, 0),
        ("depth_multiplier", _I, 0), ("fused_activation_function", _B, 0),
        ("dilation_w_factor", _I, 1), ("dilation_h_factor", _I, 1)],              # DepthwiseConv2D
    5: [("padding", _B, 0), ("stride_w", _I, 0), ("stride_h", _I, 0), ("filter_width", _I, 0),
        ("filter_height", _I, 0), ("fused_activation_function", _B, 0)],          # Pool2D
    8: [("fused_activation_function", _B, 0), ("weights_format", _B, 0),
        ("keep_num_dims", _BOOL, False), ("asymmetric_quantize_inputs", _BOOL, False),
        ("quantized_bias_type", _B, 0)],                                          # FullyConnected
    9: [("beta", _F, 0.0)],                                                       # Softmax
    11: [("fused_activation_function", _B, 0), ("pot_scale_int16", _BOOL, True)],  # Add
    28: [("fused_activation_function", _B, 0), ("pot_scale_int16", _BOOL, True)],  # Sub
    21: [("fused_activation_function", _B, 0)],                                   # Mul
    17: [("new_shape", "vi", None)],                                              # Reshape
    30: [("squeeze_dims", "vi", None)],                                           # Squeeze
    10: [("axis", _I, 0), ("fused_activation_function", _B, 0)],                  # Concatenation
    27: [("keep_dims", _BOOL, False)],                                            # Reducer (MEAN)
    32: [("begin_mask", _I, 0), ("end_mask", _I, 0), ("ellipsis_mask", _I, 0),
         ("new_axis_mask", _I, 0), ("shrink_axis_mask", _I, 0), ("offset", _BOOL, False)],  # StridedSlice
    38: [], 89: [], 52: [], 22: [], 60: [],       # Dequantize, Quantize, ExpandDims, Pad, PadV2
}
_KIND_FMT = {_B: _I8, _I: _I32, _F: _F32, _BOOL: _U8}


def _fast_options(op: _Table, raw: bytes) -> dict[str, Any] | None:
    """Options of an operator table, or None when the union type is not in _OPTION_SCHEMAS."""
    opt_type = op.scalar(3, _U8)
    if opt_type == 0:
        return {}
    schema = _OPTION_SCHEMAS.get(opt_type)
    if schema is None:
        return None
    tab = op.table(4)
    if tab is None:
        return {}
    out: dict[str, Any] = {}
    for i, (name, kind, default) in enumerate(schema):
        if kind == "vi":
            v = tab.vector(i, "<i4")
            out[name] = np.zeros(0, np.int32) if v is None else np.array(v)
        else:
            val = tab.scalar(i, _KIND_FMT[kind], default)
            out[name] = bool(val) if kind == _BOOL else val
    return out


def _builtin_name(code: int) -> str:
    if code in _BUILTIN_NAMES:
        return _BUILTIN_NAMES[code]
    return _enum_names("BuiltinOperator").get(code, f"BUILTIN_{code}")


def _slow_options(raw: bytes, op_pos: int) -> dict[str, Any]:
    """Generic options via the generated schema (rare option tables)."""
    from tflite.Operator import Operator

    op = Operator()
    op.Init(raw, op_pos)
    return _read_options(op)


def load_tflite(path: str | Path) -> TFLiteGraph:
    """Parse a .tflite file; every structural problem becomes a ModelError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found; pass the path of a .tflite flatbuffer")
    raw = path.read_bytes()
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite flatbuffer (missing the 'TFL3' file identifier); "
                         "pass a .tflite model exported by the TFLite converter")
    try:
        return _parse(raw, path)
    except ModelError:
        raise
    except Exception as exc:  # a corrupt/truncated flatbuffer fails in many ways
        raise ModelError(f"{path}: corrupt or truncated TFLite flatbuffer ({type(exc).__name__}: "
                         f"{exc}); re-export the model") from None


def _parse(raw: bytes, path: Path) -> TFLiteGraph:
    model = _Table(raw, _U32.unpack_from(raw, 0)[0])
    subgraphs = model.tables(2)
    if len(subgraphs) != 1:
        raise ModelError(f"{path}: {len(subgraphs)} subgraphs; the emulator runs "
                         "single-subgraph models only (no control flow)")
    g = subgraphs[0]
    buffer_tables = model.tables(4)
    opcodes = model.tables(1)

    def buffer_bytes(idx: int) -> np.ndarray | None:
        if idx >= len(buffer_tables):
            raise ModelError(f"{path}: buffer index {idx} out of range (corrupt model)")
        buf = buffer_tables[idx]
        off, size = buf.scalar(1, _U64), buf.scalar(2, _U64)
        if off > 1:  # large models keep buffers after the flatbuffer
            if off + size > len(raw):
                raise ModelError(f"{path}: buffer {idx} lies past the end of the file "
                                 "(truncated model)")
            return np.frombuffer(raw, dtype=np.uint8, count=size, offset=off)
        data = buf.vector(0, np.uint8)
        return data if data is not None and data.size else None

    tensors: list[TensorSpec] = []
    seen_names: set[str] = set()
    for i, t in enumerate(g.tables(0)):
        ttype = t.scalar(1, _I8)
        if ttype not in TENSOR_TYPES:
            raise ModelError(f"{path}: tensor {i} has unsupported TFLite type {ttype}")
        dtype, fmt, bits = TENSOR_TYPES[ttype]
        if t.table(6) is not None:
            raise ModelError(f"{path}: tensor {i} is sparse; sparse tensors are not supported")
        name = t.string(3) or f"tensor_{i}"
        if name in seen_names:
            name = f"{name}#{i}"
        seen_names.add(name)
        shp = t.vector(0, "<i4")
        shape = tuple(int(d) for d in shp) if shp is not None else ()
        scale = zp = None
        qdim = 0
        q = t.table(4)
        if q is not None:
            sc = q.vector(2, "<f4")
            if sc is not None and sc.size:
                scale = np.array(sc, dtype=np.float32)
                zpv = q.vector(3, "<i8")
                zp = (np.array(zpv, dtype=np.int64) if zpv is not None and zpv.size
                      else np.zeros(scale.shape, np.int64))
                qdim = int(q.scalar(6, _I32))
        data = None
        raw_buf = buffer_bytes(t.scalar(2, _U32))
        if raw_buf is not None:
            if fmt == "int4":
                raise ModelError(f"{path}: tensor {name!r} holds packed int4 data; not supported")
            itemsize = np.dtype(dtype).itemsize
            if raw_buf.size % itemsize:
                raise ModelError(f"{path}: tensor {name!r} buffer size {raw_buf.size} is not a "
                                 f"multiple of {itemsize} (corrupt model)")
            data = np.frombuffer(raw_buf.tobytes(), dtype=np.dtype(dtype).newbyteorder("<"))
            data = data.astype(dtype, copy=False)
            if data.size != int(np.prod(shape, dtype=np.int64)):
                raise ModelError(f"{path}: tensor {name!r} buffer holds {data.size} values but its "
                                 f"shape {shape} needs {int(np.prod(shape))} (corrupt model)")
            data = data.reshape(shape)
        tensors.append(TensorSpec(i, name, shape, dtype, fmt, bits, scale, zp, qdim, data))

    ops: list[OpSpec] = []
    for i, op in enumerate(g.tables(3)):
        oc_index = op.scalar(0, _U32)
        if oc_index >= len(opcodes):
            raise ModelError(f"{path}: operator {i} uses opcode {oc_index} of {len(opcodes)} "
                             "(corrupt model)")
        code = opcodes[oc_index]
        builtin = max(int(code.scalar(0, _I8)), int(code.scalar(3, _I32)))
        opname = _builtin_name(builtin)
        if opname == "CUSTOM":
            opname = "CUSTOM:" + (code.string(1) or "?")
        ins_v, outs_v = op.vector(1, "<i4"), op.vector(2, "<i4")
        ins = tuple(int(x) for x in ins_v) if ins_v is not None else ()
        outs = tuple(int(x) for x in outs_v) if outs_v is not None else ()
        for idx in ins + outs:
            if idx >= len(tensors):
                raise ModelError(f"{path}: operator {i} ({opname}) references tensor {idx} but the "
                                 f"model has {len(tensors)} tensors (corrupt model)")
        options = _fast_options(op, raw)
        if options is None:
            options = _slow_options(raw, op.pos)
        ops.append(OpSpec(i, opname, ins, outs, options))

    in_v, out_v = g.vector(1, "<i4"), g.vector(2, "<i4")
    inputs = tuple(int(x) for x in in_v) if in_v is not None else ()
    outputs = tuple(int(x) for x in out_v) if out_v is not None else ()
    for idx in inputs + outputs:
        if not 0 <= idx < len(tensors):
            raise ModelError(f"{path}: graph input/output tensor {idx} out of range (corrupt model)")
    name = g.string(4) or ""
    return TFLiteGraph(path.stem if not name or name == "main" else name, str(path), tensors, ops,
                       inputs, outputs)
