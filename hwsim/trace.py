"""Typed events emitted by the emulator, and the Trace that collects them.

Why: every cost, memory peak and Φ value in hwsim is computed from these events and nothing else,
so numerics and costs cannot drift apart. Events are small slotted dataclasses (cheap to emit);
pandas views are built only on demand.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator, Union

if TYPE_CHECKING:  # pandas is imported on demand (to_dataframe): it costs ~0.5 s of start-up
    import pandas as pd

#: Operation classes a device profile prices (`compute.<unit>.ops.<class>.<format>`).
OP_CLASSES = ("mac", "dw_mac", "elementwise", "compare", "lookup", "rng")

#: Tensor roles; the target's `placement` maps each role to a memory level.
TENSOR_KINDS = (
    "input", "output", "activation", "weight", "bias", "scratch",
    "gradient", "optimizer", "noise", "param", "state",
)

FLOAT_FORMATS = ("fp16", "bf16", "fp32", "fp64")


@dataclass(slots=True, frozen=True)
class TensorInfo:
    """What an event says about one tensor: name, shape, element bit width, role, numeric format."""

    name: str
    shape: tuple[int, ...]
    bits: int
    kind: str = "activation"
    fmt: str = ""

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbits(self) -> int:
        return self.numel * self.bits

    @property
    def nbytes(self) -> int:
        """Densely packed size in bytes (a target without packing re-prices with its container)."""
        return (self.nbits + 7) // 8


@dataclass(slots=True)
class OpEvent:
    """One executed operation.

    `work` maps (op_class, numeric format) to a count: MACs for "mac"/"dw_mac", element
    operations for the others. Bytes read/written follow from `reads`/`writes`.
    """

    op: str
    name: str
    phase: str
    reads: tuple[TensorInfo, ...]
    writes: tuple[TensorInfo, ...]
    work: dict[tuple[str, str], int]
    saturations: int = 0
    layer: str = ""
    step: int = 0
    attrs: dict = field(default_factory=dict)

    @property
    def float_ops(self) -> int:
        return sum(n for (_, fmt), n in self.work.items() if fmt in FLOAT_FORMATS)

    @property
    def macs(self) -> int:
        return sum(n for (cls, _), n in self.work.items() if cls in ("mac", "dw_mac"))

    @property
    def bytes_read(self) -> int:
        return sum(t.nbytes for t in self.reads)

    @property
    def bytes_written(self) -> int:
        return sum(t.nbytes for t in self.writes)


@dataclass(slots=True)
class AllocEvent:
    """A tensor becomes live (memory accounting counts it from here)."""

    tensor: TensorInfo
    phase: str
    step: int = 0


@dataclass(slots=True)
class FreeEvent:
    """A tensor dies."""

    tensor: TensorInfo
    phase: str
    step: int = 0


Event = Union[OpEvent, AllocEvent, FreeEvent]


class Trace:
    """An ordered list of events plus the current phase/step context.

    Usage::

        trace = Trace()
        with trace.phase("perturb"):
            trace.op(...)            # or trace.emit(OpEvent(...))
    """

    __slots__ = ("events", "current_phase", "current_step", "meta", "enabled")

    def __init__(self, *, enabled: bool = True) -> None:
        self.events: list[Event] = []
        self.current_phase = "forward"
        self.current_step = 0
        self.meta: dict = {}
        self.enabled = enabled

    # ---- emitting -------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        if self.enabled:
            self.events.append(event)

    def op(self, op: str, name: str, reads: Iterable[TensorInfo], writes: Iterable[TensorInfo],
           work: dict[tuple[str, str], int], *, saturations: int = 0, layer: str = "",
           **attrs) -> None:
        if self.enabled:
            self.events.append(OpEvent(op, name, self.current_phase, tuple(reads), tuple(writes),
                                       dict(work), saturations, layer or name,
                                       self.current_step, attrs))

    def alloc(self, tensor: TensorInfo) -> None:
        if self.enabled:
            self.events.append(AllocEvent(tensor, self.current_phase, self.current_step))

    def free(self, tensor: TensorInfo) -> None:
        if self.enabled:
            self.events.append(FreeEvent(tensor, self.current_phase, self.current_step))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator["Trace"]:
        previous, self.current_phase = self.current_phase, name
        try:
            yield self
        finally:
            self.current_phase = previous

    @contextlib.contextmanager
    def step(self, index: int) -> Iterator["Trace"]:
        previous, self.current_step = self.current_step, index
        try:
            yield self
        finally:
            self.current_step = previous

    # ---- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def ops(self) -> list[OpEvent]:
        return [e for e in self.events if isinstance(e, OpEvent)]

    def filter(self, *, phase: str | Iterable[str] | None = None, layer: str | None = None,
               step: int | None = None) -> "Trace":
        phases = {phase} if isinstance(phase, str) else (set(phase) if phase is not None else None)
        out = Trace()
        out.meta = dict(self.meta)
        out.events = [e for e in self.events
                      if (phases is None or e.phase in phases)
                      and (step is None or e.step == step)
                      and (layer is None or (isinstance(e, OpEvent) and e.layer == layer))]
        return out

    def phases(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.events:
            seen.setdefault(e.phase, None)
        return list(seen)

    def float_ops_by_phase(self) -> dict[str, int]:
        out: dict[str, int] = {p: 0 for p in self.phases()}
        for e in self.ops():
            out[e.phase] += e.float_ops
        return out

    def work_totals(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for e in self.ops():
            for k, n in e.work.items():
                out[k] = out.get(k, 0) + n
        return out

    def to_dataframe(self) -> pd.DataFrame:
        """One row per op event: op, name, layer, phase, step, MACs, float ops, bytes, work by class/format."""
        rows = []
        for i, e in enumerate(self.ops()):
            row = {"index": i, "op": e.op, "name": e.name, "layer": e.layer, "phase": e.phase,
                   "step": e.step, "macs": e.macs, "float_ops": e.float_ops,
                   "bytes_read": e.bytes_read, "bytes_written": e.bytes_written,
                   "saturations": e.saturations}
            for (cls, fmt), n in e.work.items():
                row[f"{cls}:{fmt}"] = n
            rows.append(row)
        import pandas as pd

        return pd.DataFrame(rows)
