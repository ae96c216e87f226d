"""Bit-exact emulator of TFLite int8 / 16x8 models, vectorised over a batch, emitting a Trace.

Why: every cost hwsim reports comes from the events emitted here (docs/architecture.md). The
numerics reproduce TFLite-Micro (`runtime="tflm"`, = CMSIS-NN default build) or LiteRT's
reference kernels (`runtime="litert-ref"`) integer for integer; the events are the same in the
shapes-only mode (`trace_only`), which computes nothing.

Usage::

    em = Emulator.from_tflite("model.tflite", runtime="tflm")
    outputs, trace = em.run(x_batch)          # x_batch: (N, *input_shape), model input dtype
    trace = em.trace_only()                   # one inference, shapes only
    outputs = em.compute(x_batch)             # outputs only, no trace (what `hwsim emulate` runs)

Trace conventions: one OpEvent per op (`op` snake_case such as `conv2d`, `layer` = the op's
output tensor name), `work` counts ONE inference (per-sample; `trace.meta["batch"]` says how many
were run), `saturations` counts clamped values over the whole batch. Graph inputs are allocated
first, then every constant (kind weight / bias / param) once; before op i its outputs are
allocated, after it every tensor whose last use was op i is freed; graph outputs and constants
are never freed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hwsim.errors import HwsimError, ModelError
from hwsim.fixedpoint.kernels import BACKENDS, KERNELS, RUNTIMES
from hwsim.models.tflite_import import TFLiteGraph, load_tflite

if TYPE_CHECKING:  # hwsim.trace is imported when a trace is built (`compute` needs none)
    from hwsim.fixedpoint.kernels.base import Kernel
    from hwsim.trace import TensorInfo, Trace


class Emulator:
    """A prepared TFLite graph: kernels with their integer parameters, ready to run batches."""

    def __init__(self, graph: TFLiteGraph, runtime: str = "tflm", backend: str = "numpy") -> None:
        if runtime not in RUNTIMES:
            raise HwsimError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if backend not in BACKENDS:
            raise HwsimError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        missing = sorted({op.opcode for op in graph.ops if op.opcode not in KERNELS})
        if missing:
            raise ModelError(
                f"{graph.path}: model {graph.name!r} uses operator(s) the emulator lacks: "
                f"{', '.join(missing)}; supported: {', '.join(sorted(KERNELS))}")
        self.graph = graph
        self.runtime = runtime
        self.backend = backend
        self.kernels: list[Kernel] = [KERNELS[op.opcode](op, graph, runtime, backend)
                                      for op in graph.ops]
        self.intermediates: dict[str, np.ndarray] = {}
        self._plan()

    @classmethod
    def from_tflite(cls, path: str | Path, runtime: str = "tflm", backend: str = "numpy"
                    ) -> "Emulator":
        """Load a .tflite file (ModelError if corrupt or an op is unsupported) and prepare it.

        `backend`: "numpy" (torch-free exact kernels, fast start) or "intops" (the torch
        kernels of hwsim.fixedpoint.intops); both are bit-exact."""
        return cls(load_tflite(path), runtime, backend)

    # ---- static plan: tensor kinds, infos, last uses -----------------------------------------
    def _plan(self) -> None:
        g = self.graph
        kinds: dict[int, str] = {}
        for k in self.kernels:
            for pos, idx in enumerate(k.op.inputs):
                if idx < 0 or g.tensors[idx].data is None or idx in kinds:
                    continue
                kinds[idx] = ("weight" if pos in k.weight_inputs else
                              "bias" if pos in k.bias_inputs else "param")
        for idx in g.inputs:
            kinds[idx] = "input"
        for idx in g.outputs:
            kinds[idx] = "output"
        self.kinds = kinds
        self._infos: dict[int, TensorInfo] | None = None
        last_use: dict[int, int] = {}
        for i, op in enumerate(g.ops):
            for idx in op.inputs:
                if idx >= 0:
                    last_use[idx] = i
        keep = set(g.outputs) | {t.index for t in g.tensors if t.data is not None}
        self.frees: list[list[int]] = [[] for _ in g.ops]
        for idx, i in last_use.items():
            if idx not in keep:
                self.frees[i].append(idx)
        for i, op in enumerate(g.ops):  # outputs nobody reads die right after their op
            for idx in op.outputs:
                if idx not in last_use and idx not in keep:
                    self.frees[i].append(idx)
        self.constants = [t.index for t in g.tensors if t.data is not None
                          and any(t.index in op.inputs for op in g.ops)]

    @property
    def infos(self) -> dict[int, TensorInfo]:
        """TensorInfo of every tensor (what the trace events carry), built on first use."""
        if self._infos is None:
            from hwsim.trace import TensorInfo

            self._infos = {t.index: TensorInfo(t.name, tuple(t.shape), t.bits,
                                               self.kinds.get(t.index, "activation"), t.fmt)
                           for t in self.graph.tensors}
        return self._infos

    # ---- inputs ------------------------------------------------------------------------------
    def _check_inputs(self, x: Any) -> list[np.ndarray]:
        g = self.graph
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(g.inputs):
            raise HwsimError(f"model {g.name!r} has {len(g.inputs)} inputs, got {len(xs)} arrays")
        out = []
        for k, (a, idx) in enumerate(zip(xs, g.inputs)):
            spec = g.tensors[idx]
            a = np.asarray(a)
            if a.dtype != np.dtype(spec.dtype):
                raise HwsimError(f"input {k} ({spec.name!r}) has dtype {a.dtype}, the model wants "
                                 f"{np.dtype(spec.dtype)}; quantize the inputs to "
                                 f"{np.dtype(spec.dtype)} codes first")
            shape = tuple(spec.shape)
            if a.ndim == len(shape) + 1 and tuple(a.shape[1:]) == shape:
                pass
            elif shape and shape[0] == 1 and a.ndim == len(shape) and tuple(a.shape[1:]) == shape[1:]:
                a = a.reshape((a.shape[0],) + shape)
            else:
                raise HwsimError(f"input {k} ({spec.name!r}) has shape {a.shape}; expected "
                                 f"(N, {', '.join(map(str, shape))}): N inputs stacked on a new "
                                 "leading axis")
            out.append(a)
        if len({a.shape[0] for a in out}) > 1:
            raise HwsimError("all model inputs must have the same number N of stacked samples")
        return out

    # ---- running -----------------------------------------------------------------------------
    def _new_trace(self, batch: int) -> Trace:
        from hwsim.trace import Trace

        trace = Trace()
        trace.meta.update({"model": self.graph.name, "model_path": self.graph.path,
                           "runtime": self.runtime, "batch": batch, "rounding": "double",
                           "fully_connected_rounding": ("float64" if self.runtime == "litert-ref"
                                                        else "double"),
                           "saturations_scope": "batch", "backend": self.backend,
                           # TFLM allocates one TfLiteEvalTensor per flatbuffer tensor, used or not
                           "tflite_tensor_count": len(self.graph.tensors)})
        return trace

    def _execute(self, inputs: list[np.ndarray] | None, trace: Trace | None, capture: bool
                 ) -> list[np.ndarray] | None:
        """Run the ops in order. `inputs=None`: shapes only (nothing computed); `trace=None`:
        no events (the same arithmetic, without the bookkeeping)."""
        g = self.graph
        values: dict[int, np.ndarray] = {}
        infos = self.infos if trace is not None else None
        if trace is not None:
            for idx in g.inputs:
                trace.alloc(infos[idx])
            for idx in self.constants:
                trace.alloc(infos[idx])
        if inputs is not None:
            for k, idx in enumerate(g.inputs):
                values[idx] = inputs[k]
        self.intermediates = {}
        if capture and inputs is not None:
            for idx in g.inputs:
                self.intermediates[g.tensors[idx].name] = values[idx]
        outputs = set(g.outputs)
        for i, kernel in enumerate(self.kernels):
            op = kernel.op
            if trace is not None:
                for idx in op.outputs:
                    trace.alloc(infos[idx])
            sat = 0
            if inputs is not None:
                args = []
                for idx in op.inputs:
                    if idx < 0:
                        args.append(None)
                    elif idx in values:
                        args.append(values[idx])
                    else:  # constant used as a batch operand: broadcast over N
                        args.append(g.tensors[idx].data[None])
                outs, sat = kernel.run(args)
                for idx, arr in zip(op.outputs, outs):
                    values[idx] = arr
                    if capture:
                        self.intermediates[g.tensors[idx].name] = arr
            if trace is not None:
                out_name = g.tensors[op.outputs[0]].name if op.outputs else f"op{i}"
                trace.op(kernel.event_op, out_name,
                         reads=[infos[idx] for idx in op.inputs if idx >= 0],
                         writes=[infos[idx] for idx in op.outputs],
                         work=kernel.work(), saturations=sat, layer=out_name,
                         tflite_op=op.opcode, op_index=i)
            for idx in self.frees[i]:
                if trace is not None:
                    trace.free(infos[idx])
                if not capture and idx not in outputs:
                    values.pop(idx, None)
        if inputs is None:
            return None
        return [values[idx] for idx in g.outputs]

    def run(self, x_batch: Any, capture_intermediates: bool = False, payload: bool = True
            ) -> tuple[list[np.ndarray], Trace]:
        """Run N stacked inputs; returns (one (N, *shape) array per model output, trace).

        With `capture_intermediates=True`, `self.intermediates` maps every tensor name to its
        (N, *shape) batch array afterwards. With `payload=False` nothing is computed (shapes-only
        mode): the outputs list is empty and the trace is the same as a computing run's, with
        zero saturations."""
        inputs = self._check_inputs(x_batch)
        trace = self._new_trace(inputs[0].shape[0])
        if not payload:
            self._execute(None, trace, False)
            return [], trace
        outputs = self._execute(inputs, trace, capture_intermediates)
        assert outputs is not None
        return outputs, trace

    def compute(self, x_batch: Any, capture_intermediates: bool = False) -> list[np.ndarray]:
        """The outputs of `run` (bit for bit the same arithmetic) without building a trace:
        for callers that only want the numbers, such as `hwsim emulate`."""
        outputs = self._execute(self._check_inputs(x_batch), None, capture_intermediates)
        assert outputs is not None
        return outputs

    def trace_only(self) -> Trace:
        """Events of one inference without computing anything (shapes-only mode)."""
        trace = self._new_trace(1)
        self._execute(None, trace, False)
        return trace

    # ---- conveniences ------------------------------------------------------------------------
    @property
    def input_specs(self) -> Sequence:
        return [self.graph.tensors[i] for i in self.graph.inputs]

    @property
    def output_specs(self) -> Sequence:
        return [self.graph.tensors[i] for i in self.graph.outputs]

    def tensor_names(self) -> list[str]:
        return [t.name for t in self.graph.tensors]
