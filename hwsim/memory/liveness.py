"""Tensor lifetimes from a trace's AllocEvent/FreeEvent stream, and live bytes per memory over time.

Why: every memory figure in hwsim (peaks, arena plans, spills) must come from the emulator's own
alloc/free events, never from a second reading of the model. Time is measured in *op steps*: a
tensor allocated before op i and freed after op j is live during ops i..j inclusive — exactly the
(first_created, last_used) convention TFLite-Micro's planner uses, so an op's inputs and outputs
always overlap (no in-place reuse is assumed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.trace import AllocEvent, FreeEvent, OpEvent, TensorInfo, Trace


@dataclass(slots=True)
class Lifetime:
    """One buffer: a tensor from its AllocEvent to its FreeEvent (or the end of the trace)."""

    name: str
    kind: str
    fmt: str
    bits: int
    shape: tuple[int, ...]
    memory: str
    nbytes: int          # storage bytes on the target (containers applied when it does not pack)
    first: int           # first op step it is live in
    last: int            # last op step it is live in (inclusive)
    order: int           # allocation order in the trace (tie-break for planners)
    phase: str
    freed: bool          # False: never freed (live until the end: graph outputs, weights, state)
    written: bool = False  # some op writes it while it is live (False: a constant / read-only tensor)


def storage_bytes(t: TensorInfo, *, packing: bool, container_bits: int) -> int:
    """Bytes a tensor occupies on a target.

    Why: a target that does not pack sub-byte values stores each element in the smallest
    container that holds it (a 4-bit weight costs a byte on an 8-bit container); with packing the
    densely packed size `TensorInfo.nbytes` is what is stored.
    """
    if packing or t.bits % container_bits == 0:
        return t.nbytes
    per_elem_bits = -(-t.bits // container_bits) * container_bits
    return (t.numel * per_elem_bits + 7) // 8


@dataclass(slots=True)
class OpStep:
    """What the timeline needs to know about one op step."""

    index: int
    op: str
    name: str
    layer: str
    phase: str
    step: int


def lifetimes(trace: Trace, memory_for, *, packing: bool, container_bits: int,
              problems: list[str] | None = None) -> tuple[list[Lifetime], list[OpStep]]:
    """Walk the trace once and return every buffer's lifetime plus the list of op steps.

    `memory_for(kind) -> memory name` maps a tensor kind to where it lives (Target.memory_for).
    Inconsistent events (a free of a tensor that is not live, a second alloc of a live name) are
    recorded in `problems` and skipped rather than raised: a memory report should still come out
    of a slightly sloppy trace, with the sloppiness stated.
    """
    live: dict[str, Lifetime] = {}
    done: list[Lifetime] = []
    steps: list[OpStep] = []
    n_ops = 0
    order = 0
    for ev in trace.events:
        if isinstance(ev, OpEvent):
            steps.append(OpStep(n_ops, ev.op, ev.name, ev.layer, ev.phase, ev.step))
            n_ops += 1
            for t in ev.writes:
                lt_w = live.get(t.name)
                if lt_w is not None:
                    lt_w.written = True
        elif isinstance(ev, AllocEvent):
            t = ev.tensor
            if t.name in live:
                if problems is not None:
                    problems.append(f"tensor {t.name!r} allocated again while live; second alloc ignored")
                continue
            live[t.name] = Lifetime(
                name=t.name, kind=t.kind, fmt=t.fmt, bits=t.bits, shape=tuple(t.shape),
                memory=memory_for(t.kind),
                nbytes=storage_bytes(t, packing=packing, container_bits=container_bits),
                first=n_ops, last=-1, order=order, phase=ev.phase, freed=False)
            order += 1
        elif isinstance(ev, FreeEvent):
            lt = live.pop(ev.tensor.name, None)
            if lt is None:
                if problems is not None:
                    problems.append(f"tensor {ev.tensor.name!r} freed but not live; free ignored")
                continue
            lt.last = n_ops - 1
            lt.freed = True
            done.append(lt)
    end = max(n_ops, 1) - 1
    for lt in live.values():
        lt.last = end
        done.append(lt)
    out: list[Lifetime] = []
    for lt in done:
        lt.first = min(lt.first, end)
        if lt.last < lt.first:
            # allocated and freed with no op in between: never live at any op step
            if problems is not None:
                problems.append(f"tensor {lt.name!r} freed before any op used it; not counted")
            continue
        out.append(lt)
    out.sort(key=lambda x: x.order)
    return out, steps


def live_bytes(buffers: list[Lifetime], n_steps: int) -> np.ndarray:
    """Live bytes at every op step (int64 array of length n_steps), by a difference array."""
    n = max(n_steps, 1)
    diff = np.zeros(n + 1, dtype=np.int64)
    if buffers:
        first = np.fromiter((b.first for b in buffers), dtype=np.int64, count=len(buffers))
        last = np.fromiter((b.last for b in buffers), dtype=np.int64, count=len(buffers))
        size = np.fromiter((b.nbytes for b in buffers), dtype=np.int64, count=len(buffers))
        np.add.at(diff, first, size)
        np.add.at(diff, last + 1, -size)
    return np.cumsum(diff[:n])
