"""Price one OpEvent on one Target: which unit runs it, compute time, bytes per memory level.

Why: the analytic model and the discrete-event model must agree op by op, so both call this one
function and only differ in how they combine the parts in time. Every number used here is read
from the Target; nothing about hardware is written in this file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hwsim.cost import npu_blocks, npu_weight_codec  # NPU block/codec hooks (see price())
from hwsim.cost import mcu_kernels  # MCU kernel-library hook (see price())
from hwsim.errors import ModelError, ProfileError
from hwsim.trace import OpEvent, TensorInfo


@dataclass(slots=True)
class WorkPart:
    """One (op class, format) slice of an op's work and what it costs on the chosen unit."""

    op_class: str
    fmt: str            # format named by the trace
    run_fmt: str        # format the unit runs it in (after promotion)
    count: int
    seconds: float
    energy_j: float


@dataclass(slots=True)
class OpPrice:
    """The parts of one op's cost; the engines combine them in time."""

    unit: str
    compute_s: float
    compute_energy_j: float
    parts: list[WorkPart]
    read_bytes: dict[str, float]        # memory level -> bytes read
    write_bytes: dict[str, float]       # memory level -> bytes written
    weight_read_bytes: dict[str, float]  # the part of read_bytes that is weights/biases (streamable)
    memory_s_by_level: dict[str, float]
    memory_s: float
    memory_energy_j: float
    overhead_s: float
    flags: list[str] = field(default_factory=list)
    stall_s: float = 0.0                # memory time of levels that stall the core (included in compute_s)

    @property
    def work(self) -> int:
        return sum(p.count for p in self.parts)


class Pricer:
    """Prices ops on one target; caches per-(unit, class, format) lookups.

    `spill`: memory level -> (destination level, fraction of that level's runtime tensors that
    live in the destination); see `hwsim.cost.spill`.
    """

    def __init__(self, target, spill: dict[str, tuple[str, float]] | None = None, meta: dict | None = None) -> None:
        self.target = target
        self.meta = dict(meta or {})   # trace.meta: the model file an NPU weight codec reads values from
        self.spill = dict(spill or {})
        self.cpu = target.cpu_unit()
        self._accel = [n for n, u in target.compute.items() if u.kind in ("npu", "gpu")]
        self._promote_cache: dict[tuple[str, str, str], tuple[str, object] | None] = {}
        self._levels_cache: dict[str, list[tuple[str, float]]] = {}
        self.flags: list[dict] = []          # result-level flags (one per distinct event)
        self._seen_flags: set[tuple[str, str]] = set()

    # ---- flags ---------------------------------------------------------------------------
    def _flag(self, kind: str, key: str, message: str, op_flags: list[str]) -> None:
        op_flags.append(f"{kind}: {message}")
        if (kind, key) not in self._seen_flags:
            self._seen_flags.add((kind, key))
            self.flags.append({"kind": kind, "key": key, "message": message})

    # ---- compute unit ----------------------------------------------------------------------
    def _promote(self, unit: str, op_class: str, fmt: str):
        key = (unit, op_class, fmt)
        if key not in self._promote_cache:
            self._promote_cache[key] = self.target.compute[unit].promote(op_class, fmt)
        return self._promote_cache[key]

    def _staged(self, unit: str, ev: OpEvent, cls: str, fmt: str) -> bool:
        """Accumulator requantisation and its clamp (int32 elementwise/compare work of an op with
        MACs) run in the unit's output stage, when it has one (Ethos-U: scale + clamp per output)."""
        return (self.target.compute[unit].output_stage is not None and cls in ("elementwise", "compare")
                and fmt == "int32" and any(n and c in ("mac", "dw_mac") for (c, _), n in ev.work.items()))

    def _can_run(self, unit: str, ev: OpEvent) -> bool:
        return all(self._staged(unit, ev, cls, fmt) or self._promote(unit, cls, fmt) is not None
                   for (cls, fmt), n in ev.work.items() if n)

    def choose_unit(self, ev: OpEvent, op_flags: list[str]) -> str:
        """An accelerator that lists the op and has its formats, else the CPU (flagged fallback)."""
        tflite_op = str(ev.attrs.get("tflite_op", ev.op))
        for name in self._accel:
            unit = self.target.compute[name]
            if (unit.runs(ev.op) or unit.runs(tflite_op)) and self._can_run(name, ev):
                return name
        if self._accel:
            why = ("not in supported_ops" if not any(self.target.compute[a].runs(ev.op)
                                                     or self.target.compute[a].runs(tflite_op) for a in self._accel)
                   else "formats " + ", ".join(sorted({f for (_, f) in ev.work})) + " not available")
            fallback = self.cpu or self._accel[0]
            self._flag("fallback", f"{ev.op}->{fallback}",
                       f"{ev.op} runs on {fallback} ({', '.join(self._accel)}: {why})", op_flags)
            return fallback
        if self.cpu is not None:
            return self.cpu
        return next(iter(self.target.compute))

    def _any_unit_for(self, op_class: str, fmt: str) -> str | None:
        for name, unit in self.target.compute.items():
            if unit.kind != "dma" and self._promote(name, op_class, fmt) is not None:
                return name
        return None

    # ---- bytes -----------------------------------------------------------------------------
    def stored_bytes(self, t: TensorInfo, op_flags: list[str]) -> int:
        """Bytes a tensor occupies on this target: packed, or one container per value without packing."""
        num = self.target.numerics
        if num.packing or t.bits % num.container_bits == 0:
            return t.nbytes
        per_value = -(-t.bits // num.container_bits) * num.container_bits
        if t.bits < num.container_bits:
            self._flag("container", f"{t.bits}bit", f"{t.bits}-bit values stored in {per_value}-bit containers "
                       f"(numerics.packing is false)", op_flags)
        return (t.numel * per_value + 7) // 8

    def levels_for(self, kind: str) -> list[tuple[str, float]]:
        """(memory level, share) pairs holding tensors of `kind`, after any spill."""
        if kind not in self._levels_cache:
            try:
                home = self.target.memory_for(kind)
            except KeyError as err:
                raise ModelError(f"trace tensor kind {kind!r} is unknown: {err}") from None
            if home in self.spill and kind not in ("weight", "bias"):
                dest, frac = self.spill[home]
                self._levels_cache[kind] = [(home, 1.0 - frac), (dest, frac)]
            else:
                self._levels_cache[kind] = [(home, 1.0)]
        return self._levels_cache[kind]

    # ---- one op ----------------------------------------------------------------------------
    def price(self, ev: OpEvent) -> OpPrice:
        t = self.target
        op_flags: list[str] = []
        unit_name = self.choose_unit(ev, op_flags)
        parts: list[WorkPart] = []
        compute_s = 0.0
        compute_e = 0.0
        stage = t.compute[unit_name].output_stage
        staged_s = 0.0
        has_macs = any(n and cls in ("mac", "dw_mac") for (cls, _), n in ev.work.items())
        for (cls, fmt), n in ev.work.items():
            if not n:
                continue
            if stage is not None and has_macs and self._staged(unit_name, ev, cls, fmt):
                # requantisation of the accumulators: the unit's output stage, pipelined with the MACs
                unit = t.compute[unit_name]
                secs = n / (unit.count * stage.per_cycle * unit.clock_hz)
                energy = n * stage.energy_J
                parts.append(WorkPart(cls, fmt, fmt, n, secs, energy))
                staged_s += secs
                compute_e += energy
                continue
            if not fmt:
                raise ModelError(f"op {ev.name!r} ({ev.op}) has {cls} work without a numeric format; "
                                 "the emulator must name the format of every work item")
            run_unit = unit_name
            got = self._promote(run_unit, cls, fmt)
            if got is None:
                other = self._any_unit_for(cls, fmt)
                if other is None:
                    units = ", ".join(f"{k}: {sorted(v.ops.get(cls, {}))}" for k, v in t.compute.items())
                    raise ProfileError(
                        f"target {t.name!r} prices no '{cls}' op in {fmt} or a wider integer format "
                        f"(needed by op {ev.name!r}, {ev.op}); add compute.<unit>.ops.{cls}.{fmt} to "
                        f"{t.path or 'the profile'} ({units})")
                self._flag("fallback", f"{cls}:{fmt}->{other}", f"{cls} {fmt} runs on {other} "
                           f"({unit_name} has no such instruction)", op_flags)
                run_unit = other
                got = self._promote(run_unit, cls, fmt)
            run_fmt, opcost = got
            if run_fmt != fmt:
                self._flag("promotion", f"{cls}:{fmt}->{run_fmt}@{run_unit}",
                           f"{cls} {fmt} promoted to {run_fmt} on {run_unit}", op_flags)
            unit = t.compute[run_unit]
            rate = unit.count * opcost.per_cycle * t.runtime_efficiency.factor(cls) * unit.clock_hz
            secs = n / rate
            # -- NPU hook: MAC-array micro-block utilisation from the op's shapes (hwsim.cost.npu_blocks)
            if unit.blocks is not None:
                secs = npu_blocks.part_seconds(ev, unit, cls, run_fmt, secs, t.runtime_efficiency.factor(cls))
            # -- end NPU hook
            # -- MCU kernel hook: MAC work in the CPU kernel library's GEMM-loop equivalents (hwsim.cost.mcu_kernels)
            if unit.kernels is not None and t.runtime_efficiency.kernel_model and cls in ("mac", "dw_mac"):
                secs *= mcu_kernels.mac_factor(ev, unit.kernels)
            # -- end MCU kernel hook
            energy = n * opcost.energy_J
            parts.append(WorkPart(cls, fmt, run_fmt, n, secs, energy))
            compute_s += secs
            compute_e += energy
        compute_s = max(compute_s, staged_s)
        # -- NPU hook: the output stage of the last OFM block does not overlap the MAC engine (hwsim.cost.npu_blocks)
        npu = t.compute[unit_name]
        if stage is not None and npu.blocks is not None and npu.blocks.ifm_fetch is not None:
            drain = npu_blocks.last_block_outputs(ev, npu.blocks)
            if drain:
                compute_s += drain / (npu.count * stage.per_cycle * npu.clock_hz)
        # -- end NPU hook
        # -- MCU kernel hook: per-output requantise/clamp/store of a MAC op on a CPU (runtime_efficiency)
        if t.runtime_efficiency.per_output_overhead_s and t.compute[unit_name].kind == "cpu":
            compute_s += mcu_kernels.output_elements(ev) * t.runtime_efficiency.per_output_overhead_s
        # -- end MCU kernel hook

        reads: dict[str, float] = {}
        writes: dict[str, float] = {}
        weight_reads: dict[str, float] = {}
        codec = t.compute[unit_name].weight_compression
        cpu_kernels = t.compute[unit_name].kernels if t.runtime_efficiency.kernel_model else None
        for tensor in ev.reads:
            nbytes = self.stored_bytes(tensor, op_flags)
            # -- MCU kernel hook: the CPU kernel reads the filter once per group of output pixels (hwsim.cost.mcu_kernels)
            if cpu_kernels is not None and tensor.kind == "weight":
                nbytes *= mcu_kernels.weight_passes(ev, cpu_kernels)
            # -- end MCU kernel hook
            # -- NPU hook: encoded weights and bias/scale records (hwsim.cost.npu_weight_codec)
            if codec is not None and tensor.kind in ("weight", "bias"):
                nbytes = npu_weight_codec.stored_bytes(self, tensor, codec, nbytes, op_flags)
            # -- end NPU hook
            for level, share in self.levels_for(tensor.kind):
                level_bytes = nbytes
                # -- NPU hook: IFM re-fetched per OFM block, in bursts, from an off-chip level (hwsim.cost.npu_blocks)
                blocks = t.compute[unit_name].blocks
                if blocks is not None and blocks.ifm_fetch is not None and tensor is npu_blocks.ifm_of(ev):
                    fetched = npu_blocks.ifm_fetch_bytes(ev, blocks, level, tensor.bits)
                    level_bytes = nbytes if fetched is None else fetched
                # -- end NPU hook
                reads[level] = reads.get(level, 0.0) + level_bytes * share
                if tensor.kind in ("weight", "bias"):
                    weight_reads[level] = weight_reads.get(level, 0.0) + nbytes * share
        for tensor in ev.writes:
            nbytes = self.stored_bytes(tensor, op_flags)
            for level, share in self.levels_for(tensor.kind):
                writes[level] = writes.get(level, 0.0) + nbytes * share
        mem_s_by_level: dict[str, float] = {}
        stall_s = 0.0
        mem_e = 0.0
        for level in sorted(set(reads) | set(writes)):
            m = t.memories[level]
            r, w = reads.get(level, 0.0), writes.get(level, 0.0)
            eff = t.runtime_efficiency.memory_factor(level)
            secs = (r / m.read_bw_Bps + w / m.write_bw_Bps) / eff + m.latency_s
            mem_e += r * m.read_energy_J_per_byte + w * m.write_energy_J_per_byte
            if m.stalls_compute and t.compute[unit_name].kind == "cpu":
                # wait states: the core itself waits for these reads, so they cannot overlap its work
                stall_s += secs
            else:
                mem_s_by_level[level] = secs
        overhead = t.compute[unit_name].launch_overhead_s + t.runtime_efficiency.per_op_overhead_s
        return OpPrice(unit_name, compute_s + stall_s, compute_e, parts, reads, writes, weight_reads,
                       mem_s_by_level, sum(mem_s_by_level.values()), mem_e, overhead, op_flags, stall_s)
