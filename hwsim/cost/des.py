"""Discrete-event (simpy) cost model: weight streaming overlapped with compute, port contention.

Why: the analytic model assumes one memory interface and perfect compute/memory overlap inside
an op, and none across ops. Real parts stream the next layer's weights by DMA into a double
buffer while the current layer computes, and two transfers on one memory port queue. This model
runs the same priced ops (`hwsim.cost.pricing`) at layer/tile granularity with compute units, DMA
channels and memory ports as simpy resources; its total minus the analytic one is the overlap gain
(or contention loss) the report shows.

Model:
- ops run in trace order (a single-stream executor such as TFLM or Vela's command stream);
- an op holds its compute unit for launch/per-op overhead, then its work;
- on a target with `dma` compute units, an op's weight/bias reads are fetched by DMA in
  `tiles_per_op` tiles into `buffers` slots (double buffering), prefetching across ops; the op
  processes tile k once it has arrived, with its other memory traffic on the other ports;
- without DMA units an op's transfers and compute overlap only inside the op: then the DES equals
  the analytic model exactly;
- identical steps are simulated once and twice back to back and extrapolated linearly
  (T(N) = T1 + (N-1)(T2-T1)), so 20,000 training steps cost about as much as two.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import simpy

from hwsim.cost.pricing import OpPrice
from hwsim.trace import OpEvent, Trace

#: Modelling granularity (not hardware numbers): tiles per streamed op and buffer slots.
DEFAULT_TILES_PER_OP = 4
DEFAULT_BUFFERS = 2


@dataclass
class _Plan:
    """How one op position is simulated."""

    tiles: int
    weight_tile_s: dict[str, float]    # per tile, per source level (DMA side)
    weight_first_extra_s: dict[str, float]   # level latency paid on the first tile
    other_tile_s: dict[str, float]     # per tile, per level (non-weight traffic, compute side)
    other_first_extra_s: dict[str, float]


def _plan(p: OpPrice, target, streamed: bool, tiles: int) -> _Plan:
    # weights already in the activation memory gain nothing from a DMA copy into that memory
    local = target.memory_for("activation")
    if not streamed or not any(v for lvl, v in p.weight_read_bytes.items() if lvl != local):
        return _Plan(0, {}, {}, {}, {})
    weight_tile, weight_first, other_tile, other_first = {}, {}, {}, {}
    for level in p.memory_s_by_level:
        m = target.memories[level]
        wr = p.weight_read_bytes.get(level, 0.0)
        other = (p.read_bytes.get(level, 0.0) - wr) / m.read_bw_Bps + p.write_bytes.get(level, 0.0) / m.write_bw_Bps
        if wr:
            weight_tile[level] = wr / m.read_bw_Bps / tiles
            weight_first[level] = m.latency_s
        if other:
            other_tile[level] = other / tiles
            other_first[level] = 0.0 if wr else m.latency_s
    return _Plan(tiles, weight_tile, weight_first, other_tile, other_first)


class _Simulation:
    """One simpy run of a sequence of priced ops, repeated `copies` times."""

    def __init__(self, target, prices: list[OpPrice], tiles: int, buffers: int) -> None:
        self.target = target
        self.prices = prices
        self.dma_channels = sum(u.count for u in target.compute.values() if u.kind == "dma")
        self.tiles = max(1, int(tiles))
        self.buffers = max(1, int(buffers))
        self.plans = [_plan(p, target, self.dma_channels > 0, self.tiles) for p in prices]
        self.n_events = 0

    def run(self, seq: list[int], copies: int, unit_overhead_s: float) -> tuple[float, list[float]]:
        """Simulate; returns total time and each position's end time."""
        env = simpy.Environment()
        ports = {lvl: simpy.Resource(env, 1) for lvl in self.target.memories}
        units = {name: simpy.Resource(env, 1) for name in self.target.compute}
        full = [i for _ in range(copies) for i in seq]
        ready: list[list[simpy.Event] | None] = [
            [env.event() for _ in range(self.plans[i].tiles)] if self.plans[i].tiles else None for i in full]
        slot_reqs: dict[tuple[int, int], simpy.resources.resource.Request] = {}
        ends: list[float] = []
        counter = [0]

        def hold(level: str, secs: float):
            with ports[level].request() as req:
                yield req
                counter[0] += 2
                yield env.timeout(secs)

        def transfers(parts: dict[str, float], extra: dict[str, float] | None = None):
            for level, secs in parts.items():
                total = secs + (extra.get(level, 0.0) if extra else 0.0)
                if total > 0:
                    yield from hold(level, total)

        if self.dma_channels:
            slots = simpy.Resource(env, self.buffers)
            channels = simpy.Resource(env, self.dma_channels)

            def fetch(k: int, t: int, plan: _Plan):
                with channels.request() as ch:
                    yield ch
                    counter[0] += 1
                    yield from transfers(plan.weight_tile_s, plan.weight_first_extra_s if t == 0 else None)
                ready[k][t].succeed()
                counter[0] += 1

            def dma():
                for k, i in enumerate(full):
                    plan = self.plans[i]
                    for t in range(plan.tiles):
                        req = slots.request()
                        yield req
                        counter[0] += 1
                        slot_reqs[(k, t)] = req
                        env.process(fetch(k, t, plan))

            env.process(dma())

        def compute():
            for c in range(copies):
                if unit_overhead_s:
                    yield env.timeout(unit_overhead_s)
                for j, i in enumerate(seq):
                    k = c * len(seq) + j
                    p, plan = self.prices[i], self.plans[i]
                    with units[p.unit].request() as u:
                        yield u
                        if p.overhead_s:
                            yield env.timeout(p.overhead_s)
                        if plan.tiles:
                            for t in range(plan.tiles):
                                yield ready[k][t]
                                work = env.timeout(p.compute_s / plan.tiles)
                                mem = env.process(transfers(plan.other_tile_s,
                                                            plan.other_first_extra_s if t == 0 else None))
                                yield env.all_of([work, mem])
                                slots.release(slot_reqs.pop((k, t)))
                                counter[0] += 4
                        else:
                            work = env.timeout(p.compute_s)
                            mem = env.process(transfers(p.memory_s_by_level))
                            yield env.all_of([work, mem])
                            counter[0] += 4
                    ends.append(env.now)

        main = env.process(compute())
        env.run(until=main)
        # simpy numbers every scheduled event; fall back to our own count if that ever changes
        eid = getattr(env, "_eid", None)
        self.n_events += next(eid) if eid is not None else counter[0]
        return env.now, ends


def _step_groups(events: list[OpEvent]) -> tuple[list[int], int]:
    """Indices of one step and how many identical steps the trace holds (1 if they differ)."""
    by_step: dict[int, list[int]] = {}
    for i, ev in enumerate(events):
        by_step.setdefault(ev.step, []).append(i)
    if len(by_step) <= 1:
        return list(range(len(events))), 1

    def signature(idx: list[int]):
        return [(events[i].op, events[i].name, events[i].phase, tuple(sorted(events[i].work.items())),
                 events[i].bytes_read, events[i].bytes_written) for i in idx]

    groups = list(by_step.values())
    first = signature(groups[0])
    if all(signature(g) == first for g in groups[1:]):
        return groups[0], len(groups)
    return list(range(len(events))), 1


def _with_phase_repeats(events: list[OpEvent], seq: list[int], repeat: dict[str, int]) -> list[int]:
    """Repeat each contiguous block of a repeated phase in place (e.g. two forward passes)."""
    out: list[int] = []
    block: list[int] = []
    for i in seq + [-1]:
        if block and (i == -1 or events[i].phase != events[block[0]].phase):
            out.extend(block * int(repeat.get(events[block[0]].phase, 1)))
            block = []
        if i != -1:
            block.append(i)
    return out


def simulate(trace: Trace, target, *, analytic, events: list[OpEvent], prices: list[OpPrice],
             tiles_per_op: int = DEFAULT_TILES_PER_OP, buffers: int = DEFAULT_BUFFERS):
    """DES cost; returns a CostResult with engine="des" and the analytic figures kept for comparison."""
    from hwsim.cost.analytic import CostResult, aggregate, op_rows

    t0 = time.perf_counter()
    repeat = analytic.repeat
    step_seq, identical_steps = _step_groups(events)
    seq = _with_phase_repeats(events, step_seq, repeat)
    units_total = identical_steps * int(repeat.get("step", 1))
    n_steps_in_unit = 1 if identical_steps > 1 else len({ev.step for ev in events} or {0})
    unit_overhead = target.runtime_efficiency.per_inference_overhead_s * n_steps_in_unit

    sim = _Simulation(target, prices, tiles_per_op, buffers)
    latencies = [0.0] * len(events)
    counts = [0] * len(events)
    if seq:
        t1, ends1 = sim.run(seq, 1, unit_overhead)
        if units_total > 1:
            t2, ends2 = sim.run(seq, 2, unit_overhead)
            steady = t2 - t1
            total = t1 + (units_total - 1) * steady
            ends, start = ends2[len(seq):], t1 + unit_overhead
        else:
            total, ends, start = t1, ends1, unit_overhead
        prev = start
        for i, end in zip(seq, ends):
            latencies[i] += end - prev
            counts[i] += 1
            prev = end
        latencies = [lat / n if n else 0.0 for lat, n in zip(latencies, counts)]
    else:
        total = unit_overhead * units_total
    # per-position repeats were folded into `latencies` as an average; op_rows multiplies by repeat
    ops = op_rows(events, prices, target, repeat, latencies=latencies)
    dynamic = float(((ops["compute_energy_j"] + ops["memory_energy_j"]) * ops["repeat"]).sum()) if len(ops) else 0.0
    energy = dynamic + target.power.static_W * total
    handoffs = sum(1 for a, b in zip(seq, seq[1:]) if prices[a].unit != prices[b].unit)
    des = {
        "events": sim.n_events,
        "wall_s": time.perf_counter() - t0,
        "simulated_steps": 1 if units_total == 1 else 3,
        "extrapolated_steps": units_total,
        "dma_channels": sim.dma_channels,
        "tiles_per_op": tiles_per_op,
        "buffers": buffers,
        "handoffs_per_step": handoffs,
        "overlap_gain_s": analytic.latency_s - total,
    }
    return CostResult(target.name, "des", total, energy, ops, aggregate(ops, "phase"), aggregate(ops, "layer"),
                      analytic.flags, repeat, analytic.overhead_s, analytic.spills,
                      analytic_latency_s=analytic.latency_s, analytic_energy_j=analytic.energy_j, des=des)
