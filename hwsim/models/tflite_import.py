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
import inspect
import re
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
    from tflite.Model import Model

    model = Model.GetRootAs(raw, 0)
    if model.SubgraphsLength() != 1:
        raise ModelError(f"{path}: {model.SubgraphsLength()} subgraphs; the emulator runs "
                         "single-subgraph models only (no control flow)")
    g = model.Subgraphs(0)
    op_names = _enum_names("BuiltinOperator")
    buffers: dict[int, np.ndarray | None] = {}

    def buffer_bytes(idx: int) -> np.ndarray | None:
        if idx in buffers:
            return buffers[idx]
        buf = model.Buffers(idx)
        data = None
        if buf is not None:
            if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
                off, size = buf.Offset(), buf.Size()
                if off + size > len(raw):
                    raise ModelError(f"{path}: buffer {idx} lies past the end of the file "
                                     "(truncated model)")
                data = np.frombuffer(raw, dtype=np.uint8, count=size, offset=off)
            elif not buf.DataIsNone() and buf.DataLength() > 0:
                data = buf.DataAsNumpy()
        buffers[idx] = data
        return data

    tensors: list[TensorSpec] = []
    seen_names: set[str] = set()
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        ttype = t.Type()
        if ttype not in TENSOR_TYPES:
            raise ModelError(f"{path}: tensor {i} has unsupported TFLite type {ttype}")
        dtype, fmt, bits = TENSOR_TYPES[ttype]
        if t.Sparsity() is not None:
            raise ModelError(f"{path}: tensor {i} is sparse; sparse tensors are not supported")
        name = (t.Name() or b"").decode("utf-8", "replace") or f"tensor_{i}"
        if name in seen_names:
            name = f"{name}#{i}"
        seen_names.add(name)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        scale = zp = None
        qdim = 0
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32).copy()
            zp = (np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64).copy() if q.ZeroPointLength()
                  else np.zeros(scale.shape, np.int64))
            qdim = int(q.QuantizedDimension())
        data = None
        raw_buf = buffer_bytes(t.Buffer())
        if raw_buf is not None:
            if fmt == "int4":
                raise ModelError(f"{path}: tensor {name!r} holds packed int4 data; not supported")
            data = np.frombuffer(raw_buf.tobytes(), dtype=dtype)
            if data.size != int(np.prod(shape, dtype=np.int64)):
                raise ModelError(f"{path}: tensor {name!r} buffer holds {data.size} values but its "
                                 f"shape {shape} needs {int(np.prod(shape))} (corrupt model)")
            data = data.reshape(shape)
        tensors.append(TensorSpec(i, name, shape, dtype, fmt, bits, scale, zp, qdim, data))

    ops: list[OpSpec] = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        opname = op_names.get(builtin, f"BUILTIN_{builtin}")
        if opname == "CUSTOM":
            opname = "CUSTOM:" + (code.CustomCode() or b"?").decode("utf-8", "replace")
        ins = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        for idx in ins + outs:
            if idx >= len(tensors):
                raise ModelError(f"{path}: operator {i} ({opname}) references tensor {idx} but the "
                                 f"model has {len(tensors)} tensors (corrupt model)")
        ops.append(OpSpec(i, opname, ins, outs, _read_options(op)))

    inputs = tuple(int(x) for x in g.InputsAsNumpy())
    outputs = tuple(int(x) for x in g.OutputsAsNumpy())
    name = (g.Name() or b"").decode("utf-8", "replace") or path.stem
    return TFLiteGraph(path.stem if not name or name == "main" else name, str(path), tensors, ops,
                       inputs, outputs)
