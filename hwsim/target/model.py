"""The typed device profile (`Target`) — every hardware number hwsim uses comes from here.

Why: one pydantic v2 schema both validates YAML profiles (keys as written in YAML: `capacity`,
`read_bw`, `clock`, ...; quantities with units) and gives Python callers SI floats under explicit
names (`capacity_bytes`, `read_bw_Bps`, `clock_hz`, ...). Unit parsing happens in the field
validators, so a wrong dimension is reported at the exact field. Python callers may construct a
Target directly with SI numbers; YAML (validation context `{"yaml": True}`) must write units.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from hwsim.trace import OP_CLASSES, TENSOR_KINDS
from hwsim.units import DIMENSIONS, parse_quantity, parse_size_bytes

# ---------------------------------------------------------------------------------------------
# vocabulary

OpClass = Literal["mac", "dw_mac", "elementwise", "compare", "lookup", "rng"]
assert set(OpClass.__args__) == set(OP_CLASSES), "keep OpClass in sync with hwsim.trace.OP_CLASSES"

#: Numeric formats a compute unit may price.
FORMATS: tuple[str, ...] = ("int2", "int4", "int8", "int16", "int32", "fp16", "bf16", "fp32", "fp64")
Fmt = Literal["int2", "int4", "int8", "int16", "int32", "fp16", "bf16", "fp32", "fp64"]
#: Integer formats in promotion order: a unit without native int4 runs int4 work as int8, etc.
INT_PROMOTION: tuple[str, ...] = ("int2", "int4", "int8", "int16", "int32")
#: Bit widths a profile may list as native weight/activation widths.
ALLOWED_BITS: tuple[int, ...] = (2, 4, 8, 16, 32)
ALLOWED_ACCUMULATOR_BITS: tuple[int, ...] = (16, 24, 32, 48, 64)
ALLOWED_CONTAINER_BITS: tuple[int, ...] = (8, 16, 32)

TargetKind = Literal["mcu", "npu", "gpu"]
MemoryKind = Literal["sram", "tcm", "cache", "flash", "dram", "hbm"]
UnitKind = Literal["cpu", "npu", "gpu", "dma"]
Runtime = Literal["tflm", "litert-ref", "cmsis-nn", "vendor"]

#: Placement roles and the tensor kinds (hwsim.trace.TENSOR_KINDS) each one holds.
PLACEMENT_ROLES: dict[str, tuple[str, ...]] = {
    "weights": ("weight",),
    "biases": ("bias",),
    "activations": ("activation",),
    "inputs": ("input",),
    "outputs": ("output",),
    "scratch": ("scratch",),
    "training_state": ("gradient", "optimizer", "noise", "param", "state"),
}
assert {k for ks in PLACEMENT_ROLES.values() for k in ks} == set(TENSOR_KINDS)
#: Roles whose tensors are written while the model runs (so they cannot live in flash).
WRITTEN_ROLES = ("activations", "outputs", "scratch", "training_state")


def op_key(name: str) -> str:
    """Canonical operator key: lower case, alphanumerics only, no trailing '2d' (CONV_2D == conv2d == conv)."""
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return key[:-2] if key.endswith("2d") and len(key) > 2 else key


# ---------------------------------------------------------------------------------------------
# quantity fields


def _quantity_schema(dim: str) -> dict[str, Any]:
    d = DIMENSIONS[dim]
    plain: dict[str, Any] = {"type": "string", "description": f"{d.label} with a unit, e.g. '{d.example}'"}
    choices: list[dict[str, Any]] = [plain]
    if d.bare_number_ok:
        choices.append({"type": "number"})
    return {
        "anyOf": choices
        + [
            {
                "type": "object",
                "properties": {"value": {"anyOf": choices}, "source": {"type": "string"}},
                "required": ["value"],
                "additionalProperties": False,
            }
        ],
        "description": f"{d.label}, e.g. '{d.example}' (or {{value: ..., source: ...}})",
    }


def _from_yaml(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("yaml"))


def Quantity(dim: str, minimum: str = "positive") -> Any:  # noqa: N802 - reads like a type
    """Annotated float parsed from a unit string (YAML) or taken as SI (Python)."""

    def parse(value: Any, info: ValidationInfo) -> float:
        return parse_quantity(value, dim, bare_number_means_si=not _from_yaml(info), minimum=minimum)

    return Annotated[float, BeforeValidator(parse), WithJsonSchema(_quantity_schema(dim))]


def Size(minimum: str = "positive") -> Any:  # noqa: N802
    """Annotated int of bytes parsed from `512 KiB` (exact binary prefixes)."""

    def parse(value: Any, info: ValidationInfo) -> int:
        return parse_size_bytes(value, bare_number_means_si=not _from_yaml(info), minimum=minimum)

    return Annotated[int, BeforeValidator(parse), WithJsonSchema(_quantity_schema("size"))]


def _add_source_property(schema: dict[str, Any]) -> None:
    schema.setdefault("properties", {})["source"] = {
        "type": "string",
        "description": "where the numbers in this block come from (datasheet, paper, 'estimate: ...')",
    }


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra=_add_source_property,
        validate_assignment=False,
    )


def _yaml(name: str, yaml_key: str, **kw: Any) -> Any:
    """A field with API name `name` written as `yaml_key` in YAML (both accepted)."""
    return Field(validation_alias=AliasChoices(yaml_key, name), **kw)


# ---------------------------------------------------------------------------------------------
# parts of a profile


class Memory(_Model):
    """One memory level (sram, tcm, cache, flash, dram, hbm)."""

    kind: MemoryKind
    description: str = ""
    capacity_bytes: Size() = _yaml("capacity_bytes", "capacity")
    read_bw_Bps: Quantity("bandwidth") = _yaml("read_bw_Bps", "read_bw")
    write_bw_Bps: Quantity("bandwidth") = _yaml("write_bw_Bps", "write_bw")
    latency_s: Quantity("time", "nonnegative") = _yaml("latency_s", "latency")
    read_energy_J_per_byte: Quantity("energy_per_byte", "nonnegative") = _yaml(
        "read_energy_J_per_byte", "read_energy"
    )
    write_energy_J_per_byte: Quantity("energy_per_byte", "nonnegative") = _yaml(
        "write_energy_J_per_byte", "write_energy"
    )
    stalls_compute: bool = Field(
        False,
        description="reads from this level stall the core (flash wait states on an in-order MCU with no "
        "DMA to hide them): their time adds to the op's compute time instead of overlapping it",
    )


class OpCost(_Model):
    """Throughput and energy of one (op class, numeric format) on one compute unit."""

    per_cycle: Quantity("per_cycle") = Field(description="ops per cycle per unit instance")
    energy_J: Quantity("energy", "nonnegative") = _yaml("energy_J", "energy")


class OutputStage(_Model):
    """An NPU's output pipeline, which requantises accumulators while the MAC engine computes the next block.

    Why: on Ethos-U the int32 -> int8 scaling of a conv/FC/depthwise output is not a separate
    elementwise op but the output stage, pipelined with the MAC engine (Vela: per block,
    max(MAC cycles, output cycles)). On a unit with an output stage, the int32 `elementwise`
    work of an op that also has `mac`/`dw_mac` work runs here at `per_cycle` elements per cycle,
    and the op's compute time is max(MAC-engine time, output-stage time).
    """

    per_cycle: Quantity("per_cycle") = Field(description="output elements requantised per cycle")
    energy_J: Quantity("energy", "nonnegative") = _yaml("energy_J", "energy")


class MicroBlock(_Model):
    """The OFM micro-block an NPU's MAC array computes at once (height x width x output channels)."""

    height: int = Field(ge=1)
    width: int = Field(ge=1)
    depth: int = Field(ge=1)


class NpuBlocks(_Model):
    """MAC-array geometry of an Ethos-U style NPU, for utilisation from an op's shapes.

    Why: the array computes whole OFM micro-blocks, each a fixed-width dot product per step, so
    an op whose output width, output channels, IFM depth or kernel size are not multiples of the
    granules wastes lanes (a 1-channel IFM uses 1/8 of the part-kernel lanes). The cost model
    (`hwsim.cost.npu_blocks`) counts steps from the trace event's shapes with these granules.
    """

    ofm_micro_block: MicroBlock
    step_cycles: int = Field(ge=1, description="cycles one micro-block step takes")
    min_step_cycles: int = Field(
        ge=1, description="floor per step of an OFM block (accumulator write-back); binds on tiny OFMs"
    )
    dot_product_bits: int = Field(
        ge=8, description="IFM bits per output one step consumes (depth-first: channels x 1 kernel tap)"
    )
    part_kernel_depth: int = Field(ge=1, description="IFM channels per step in part-kernel-first traversal")
    depthwise_taps: int = Field(ge=1, description="kernel taps per depthwise step at 8-bit IFM")
    sub_kernel: list[int] = Field(min_length=2, max_length=2, description="largest kernel [height, width] run at once")
    pool_tap_cycles: int = Field(
        1, ge=1, description="cycles per kernel tap per micro-block of a pooling op at 8-bit IFM (x2 at 16-bit)"
    )
    ifm_fetch: Optional["NpuIfmFetch"] = Field(
        None, description="IFM re-fetch per OFM block and burst length of off-chip levels (hwsim.cost.npu_blocks)"
    )


class NpuIfmFetch(_Model):
    """How an Ethos-U style NPU fetches an IFM that lives off chip (DRAM/flash), block by block.

    Why: the NPU reads the IFM block (OFM block grown by the kernel halo) anew for every OFM block,
    in AXI bursts of at most one IFM-block depth of contiguous NHWC bytes, and an off-chip memory
    moves whole bursts of `burst_bytes[level]`: a 3-channel camera image in DRAM costs far more than
    its size. The OFM block is the one with the least IFM + weight fetch per output element whose
    double-buffered IFM block and accumulators fit the shared buffer (SHRAM) banks.
    `hwsim.cost.npu_blocks.ifm_fetch_bytes` prices these bytes for IFMs held in a level listed in
    `burst_bytes`; IFMs in on-chip SRAM keep their plain size.
    """

    ofm_block_max: MicroBlock = Field(description="largest OFM block (height, width, channels)")
    ofm_split_depth: int = Field(ge=1, description="OFM block depths below the OFM depth are multiples of this")
    ifm_micro_block: MicroBlock = Field(description="granule the IFM block height/width/depth are rounded up to")
    part_kernel_ifm_block_depth: int = Field(
        ge=1, description="IFM channels one IFM block holds in part-kernel-first traversal (depth-first: "
        "dot_product_bits / IFM bits)"
    )
    shram_banks: int = Field(ge=1, description="shared-buffer banks usable for IFM + accumulators + reserved")
    shram_bank_bytes: int = Field(ge=1)
    shram_reserved_banks: int = Field(ge=0, description="banks reserved at the start (output) plus the end (LUT)")
    ifm_bank_granule: int = Field(ge=1, description="IFM bank count granule (8-bit IFM)")
    acc_bank_granule: int = Field(ge=1, description="accumulator bank count granule (32-bit accumulators)")
    acc_bits: int = Field(ge=8, description="accumulator width in bits")
    burst_bytes: dict[str, int] = Field(description="memory level -> burst length in bytes (off-chip levels only)")


class WeightCompression(_Model):
    """Weights stored encoded in memory and decoded by the NPU (Ethos-U weight codec).

    Why: the bytes streamed from flash are the encoded ones, which depend on the weight values
    (0.23 to 1.09 of raw int8 on MLPerf Tiny), so `hwsim.cost.npu_weight_codec` estimates the
    encoded size from the model's actual values with these codec parameters.
    """

    codec: Literal["golomb-rice"] = "golomb-rice"
    max_rice_k: int = Field(ge=0, le=16, description="largest Golomb-Rice parameter the codec uses")
    palette_max: int = Field(ge=0, description="at most this many distinct values are coded as palette indices")
    palette_entry_bits: int = Field(ge=1, description="bits per palette entry in the stream header")
    stream_align_bytes: int = Field(ge=1, description="an encoded stream is padded to a multiple of this")
    scale_bias_bytes_per_channel: int = Field(
        ge=0, description="per output channel bias + requantisation scale record read with the weights"
    )


class CpuKernels(_Model):
    """Inner-loop instruction counts of a CPU's kernel library (e.g. CMSIS-NN's DSP path), per op shape.

    Why: on a Cortex-M the cycles a MAC costs depend on the kernel that runs it: an im2col
    convolution reuses each loaded weight for two output pixels, a fully-connected layer
    (matrix x vector) reuses nothing, a depthwise convolution multiplies one 16-bit pair per
    instruction, reduction elements that do not fill a SIMD step run a scalar loop, and im2col
    copies the input. `hwsim.cost.mcu_kernels` turns an op's shapes into instruction counts with
    these numbers; the convolution GEMM loop (`conv_mac`) is the reference that runs at the
    unit's peak MAC rate, so every other kernel costs its count relative to it. Used only when
    `runtime_efficiency.kernel_model` is true (calibrated profiles). The im2col convolution also
    re-reads the whole filter for every few output pixels (`conv_pixels_per_weight_pass`); with
    the weights in flash, those reads pay the wait states again.
    """

    simd_k: int = Field(ge=1, description="reduction elements one SIMD inner-loop step consumes")
    conv_mac: float = Field(gt=0, description="instructions per MAC in the im2col convolution GEMM loop (reference)")
    pointwise_mac: float = Field(gt=0, description="instructions per MAC in the 1x1 convolution loop")
    fc_mac: float = Field(gt=0, description="instructions per MAC in the fully-connected (matrix x vector) loop")
    depthwise_3x3_mac: float = Field(gt=0, description="instructions per MAC in the 3x3 depthwise loop")
    depthwise_mac: float = Field(gt=0, description="instructions per MAC in the general depthwise loop")
    scalar_mac: float = Field(gt=0, description="instructions per MAC for reduction elements left over by simd_k")
    im2col_element: float = Field(ge=0, description="instructions per element copied and widened into im2col")
    im2col_tap: float = Field(ge=0, description="instructions per kernel tap per output pixel (copy call, bounds)")
    conv_pixels_per_weight_pass: Optional[int] = Field(
        None, ge=1, description="output pixels the im2col convolution computes per pass over the whole filter "
        "(the filter is read again from its memory for every such group); None = weights read once per op"
    )


class ComputeUnit(_Model):
    """A compute engine (CPU core, NPU, GPU SMs/tensor cores, DMA) and what each op costs on it."""

    kind: UnitKind
    description: str = ""
    clock_hz: Optional[Quantity("frequency")] = _yaml(
        "clock_hz", "clock", default=None, description="defaults to the target clock"
    )
    count: int = Field(1, ge=1, description="number of instances (cores, SMs)")
    launch_overhead_s: Quantity("time", "nonnegative") = _yaml("launch_overhead_s", "launch_overhead", default=0.0)
    supported_ops: Optional[list[str]] = Field(
        None, description="TFLite-level ops this unit runs (None = all); others fall back to a cpu unit"
    )
    ops: dict[OpClass, dict[Fmt, OpCost]] = Field(default_factory=dict)
    output_stage: Optional[OutputStage] = Field(
        None, description="pipelined requantisation stage (NPUs); None = requantisation is ordinary elementwise work"
    )
    blocks: Optional[NpuBlocks] = Field(
        None, description="MAC-array micro-block geometry (NPUs); None = MACs run at the per_cycle peak"
    )
    kernels: Optional[CpuKernels] = Field(
        None, description="kernel-library instruction counts (CPUs), used when runtime_efficiency.kernel_model is true"
    )
    weight_compression: Optional[WeightCompression] = Field(
        None, description="weights are read encoded (NPU weight codec); None = raw bytes"
    )

    def cost(self, op_class: str, fmt: str) -> OpCost | None:
        """Native cost of `op_class` in `fmt`, or None when this unit has no such instruction."""
        return self.ops.get(op_class, {}).get(fmt)  # type: ignore[call-overload]

    def promote(self, op_class: str, fmt: str) -> tuple[str, OpCost] | None:
        """The format this unit actually runs `fmt` in, and its cost.

        Why: a Cortex-M has no int4 MAC; int4 work runs as int8 after unpacking. Integer formats
        promote to the next wider integer format the unit has; float formats do not promote.
        Returns None when nothing can run it.
        """
        native = self.cost(op_class, fmt)
        if native is not None:
            return fmt, native
        if fmt in INT_PROMOTION:
            for wider in INT_PROMOTION[INT_PROMOTION.index(fmt) + 1 :]:
                c = self.cost(op_class, wider)
                if c is not None:
                    return wider, c
        return None

    def runs(self, tflite_op: str) -> bool:
        """Whether this unit runs a TFLite-level op.

        Names match loosely so the spellings in use agree: TFLite builtins (`AVERAGE_POOL_2D`),
        trace event names (`average_pool2d`) and profile names (`average_pool`) are the same op.
        """
        return self.supported_ops is None or op_key(tflite_op) in {op_key(o) for o in self.supported_ops}


class Numerics(_Model):
    """Native bit widths and the integer arithmetic conventions the runtime follows."""

    weight_bits: list[int] = Field(min_length=1)
    activation_bits: list[int] = Field(min_length=1)
    packing: bool = Field(description="sub-byte values packed densely; false = a 4-bit value costs a container")
    container_bits: int = 8
    accumulator_bits: int
    overflow: Literal["wrap", "saturate", "raise"]
    runtime: Runtime
    rounding: Literal["double", "single"]

    @field_validator("weight_bits", "activation_bits")
    @classmethod
    def _bits_allowed(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if b not in ALLOWED_BITS]
        if bad:
            raise ValueError(f"bit width {bad[0]!r} is not allowed; allowed: {list(ALLOWED_BITS)}")
        return v

    @field_validator("accumulator_bits")
    @classmethod
    def _acc_allowed(cls, v: int) -> int:
        if v not in ALLOWED_ACCUMULATOR_BITS:
            raise ValueError(f"accumulator width {v!r} is not allowed; allowed: {list(ALLOWED_ACCUMULATOR_BITS)}")
        return v

    @field_validator("container_bits")
    @classmethod
    def _container_allowed(cls, v: int) -> int:
        if v not in ALLOWED_CONTAINER_BITS:
            raise ValueError(f"container width {v!r} is not allowed; allowed: {list(ALLOWED_CONTAINER_BITS)}")
        return v


class Placement(_Model):
    """Default memory (by name) for each tensor role, plus the arena alignment."""

    weights: str
    biases: str
    activations: str
    inputs: str
    outputs: str
    scratch: str
    training_state: str
    alignment_bytes: Size() = _yaml("alignment_bytes", "alignment", default=16)


class RuntimeEfficiency(_Model):
    """What fraction of peak the kernel library reaches; fitted by calibration."""

    compute: dict[OpClass, Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=dict)
    memory: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=dict,
        description="fraction of a memory level's read/write bandwidth the kernels reach (by level name)",
    )
    per_op_overhead_s: Quantity("time", "nonnegative") = _yaml("per_op_overhead_s", "per_op_overhead", default=0.0)
    per_inference_overhead_s: Quantity("time", "nonnegative") = _yaml(
        "per_inference_overhead_s", "per_inference_overhead", default=0.0
    )
    per_output_overhead_s: Quantity("time", "nonnegative") = _yaml(
        "per_output_overhead_s", "per_output_overhead", default=0.0,
        description="time per output element of an op with MACs on a cpu unit (requantise, clamp, store)",
    )
    kernel_model: bool = Field(
        False, description="price MAC work with the cpu unit's `kernels` instruction counts (efficiency is then "
        "relative to the convolution GEMM loop at the unit's peak MAC rate)",
    )
    fitted_on: Optional[str] = None

    def factor(self, op_class: str) -> float:
        """Fraction of peak throughput for an op class (1.0 when not given)."""
        return self.compute.get(op_class, 1.0)  # type: ignore[call-overload]

    def memory_factor(self, level: str) -> float:
        """Fraction of a memory level's bandwidth reached (1.0 when not given)."""
        return self.memory.get(level, 1.0)


class Power(_Model):
    """Static (idle) power drawn whenever the device is on."""

    static_W: Quantity("power", "nonnegative") = _yaml("static_W", "static")


def _sources_list(value: Any) -> Any:
    """YAML may write `sources` as a mapping id → reference (cite as `@id`) or as a list."""
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in value.items()]
    return value


class Target(_Model):
    """A resolved device profile: all quantities in SI units (see docs/profiles.md)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
    kind: TargetKind
    description: str = ""
    sources: Annotated[list[str], BeforeValidator(_sources_list)] = Field(default_factory=list)
    path: Optional[Path] = None
    abstract: bool = Field(False, description="a family/base profile other profiles extend")
    extends: Optional[str] = Field(None, description="name or relative path of the parent profile")
    clock_hz: Quantity("frequency") = _yaml("clock_hz", "clock")
    memories: dict[str, Memory] = Field(min_length=1)
    compute: dict[str, ComputeUnit] = Field(min_length=1)
    numerics: Numerics
    placement: Placement
    runtime_efficiency: RuntimeEfficiency = Field(default_factory=RuntimeEfficiency)
    power: Power
    #: field path → `source:` note that covers it (filled by the loader).
    provenance: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> "Target":
        for unit in self.compute.values():
            if unit.clock_hz is None:
                unit.clock_hz = self.clock_hz
        # The YAML loader runs these checks itself so it can point at file:line.
        if not (info.context and info.context.get("skip_cross_checks")):
            problems = cross_check(self)
            if problems:
                raise ValueError("; ".join(f"{'.'.join(map(str, p))}: {m}" for p, _, m in problems))
        return self

    # -- helpers used by the cost and memory models -------------------------------------------

    def memory_for(self, kind: str) -> str:
        """Memory name holding tensors of `kind` (hwsim.trace.TENSOR_KINDS or a placement role)."""
        if kind in PLACEMENT_ROLES:
            return getattr(self.placement, kind)
        for role, kinds in PLACEMENT_ROLES.items():
            if kind in kinds:
                return getattr(self.placement, role)
        raise KeyError(f"unknown tensor kind {kind!r}; known: {sorted(TENSOR_KINDS)}")

    def cpu_unit(self) -> str | None:
        """Name of the first `cpu` compute unit (where unsupported NPU ops fall back)."""
        return next((n for n, u in self.compute.items() if u.kind == "cpu"), None)

    def unit_for_op(self, tflite_op: str) -> str:
        """The compute unit that runs a TFLite-level op: the first non-CPU unit listing it, else the CPU."""
        for name, unit in self.compute.items():
            if unit.kind in ("npu", "gpu") and unit.runs(tflite_op):
                return name
        cpu = self.cpu_unit()
        return cpu if cpu is not None else next(iter(self.compute))

    def formats(self, op_class: str | None = None) -> set[str]:
        """Formats any unit prices (optionally for one op class)."""
        out: set[str] = set()
        for unit in self.compute.values():
            for cls, by_fmt in unit.ops.items():
                if op_class is None or cls == op_class:
                    out.update(by_fmt)
        return out


def cross_check(t: Target) -> list[tuple[tuple[Any, ...], Any, str]]:
    """Checks spanning fields: placement names real memories, widths exist on some unit, ...

    Returns (YAML field path, bad value, message) triples; empty when consistent.
    """
    problems: list[tuple[tuple[Any, ...], Any, str]] = []
    names = sorted(t.memories)
    for role in PLACEMENT_ROLES:
        mem = getattr(t.placement, role)
        if mem not in t.memories:
            problems.append(
                (("placement", role), mem, f"memory {mem!r} does not exist; defined memories: {names}")
            )
        elif role in WRITTEN_ROLES and t.memories[mem].kind == "flash":
            writable = sorted(n for n, m in t.memories.items() if m.kind != "flash")
            problems.append(
                (("placement", role), mem, f"{role} are written at run time but {mem!r} is flash; use one of {writable}")
            )
    for uname, unit in t.compute.items():
        fetch = unit.blocks.ifm_fetch if unit.blocks is not None else None
        for level in (fetch.burst_bytes if fetch is not None else {}):
            if level not in t.memories:
                problems.append((("compute", uname, "blocks", "ifm_fetch", "burst_bytes", level), level,
                                 f"memory {level!r} does not exist; defined memories: {names}"))
            elif t.memories[level].kind in ("sram", "tcm", "cache"):
                problems.append((("compute", uname, "blocks", "ifm_fetch", "burst_bytes", level), level,
                                 f"{level!r} is on-chip {t.memories[level].kind}; list only off-chip levels "
                                 "(dram, flash, hbm) whose bursts the IFM fetch is priced in"))
    for level, eff in t.runtime_efficiency.memory.items():
        if level not in t.memories:
            problems.append(
                (("runtime_efficiency", "memory", level), eff,
                 f"memory level {level!r} does not exist; defined memories: {names}")
            )
    mac_fmts = t.formats("mac")
    for field in ("weight_bits", "activation_bits"):
        for i, bits in enumerate(getattr(t.numerics, field)):
            if f"int{bits}" not in mac_fmts:
                problems.append(
                    (
                        ("numerics", field, i),
                        bits,
                        f"no compute unit has an int{bits} 'mac' op; formats with a mac: {sorted(mac_fmts)}",
                    )
                )
    if not any(u.kind in ("cpu", "gpu") for u in t.compute.values()) and any(
        u.supported_ops is not None for u in t.compute.values()
    ):
        problems.append((("compute",), sorted(t.compute), "an NPU lists supported_ops but there is no cpu unit to fall back to"))
    return problems
