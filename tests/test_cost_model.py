"""Analytic cost model against hand arithmetic on a tiny synthetic profile and trace.

The oracle in every test is arithmetic written out here from the profile's numbers (not the
cost model's own helpers).
"""
from __future__ import annotations

import pytest

from hwsim.cost.analytic import cost_trace
from hwsim.errors import HwsimError, ProfileError
from hwsim.target import Target
from hwsim.trace import TensorInfo, Trace

# --- the tiny profile (SI numbers) ------------------------------------------------------------
CLOCK = 100e6
SRAM = dict(kind="sram", capacity_bytes=1024, read_bw_Bps=100e6, write_bw_Bps=50e6, latency_s=0.0,
            read_energy_J_per_byte=1e-12, write_energy_J_per_byte=2e-12)
FLASH = dict(kind="flash", capacity_bytes=1 << 20, read_bw_Bps=25e6, write_bw_Bps=1e6, latency_s=1e-6,
             read_energy_J_per_byte=5e-12, write_energy_J_per_byte=0.0)
DRAM = dict(kind="dram", capacity_bytes=1 << 24, read_bw_Bps=10e6, write_bw_Bps=10e6, latency_s=0.0,
            read_energy_J_per_byte=20e-12, write_energy_J_per_byte=20e-12)
CPU = dict(kind="cpu", launch_overhead_s=2e-6, ops={
    "mac": {"int8": dict(per_cycle=2, energy_J=3e-12), "int16": dict(per_cycle=1, energy_J=6e-12)},
    "elementwise": {"int8": dict(per_cycle=1, energy_J=1e-12), "fp32": dict(per_cycle=0.5, energy_J=4e-12)},
})
NPU = dict(kind="npu", launch_overhead_s=5e-6, supported_ops=["fully_connected"],
           ops={"mac": {"int8": dict(per_cycle=8, energy_J=1e-12)}})
DMA = dict(kind="dma", count=1)


def tiny_target(*, packing: bool = False, npu: bool = False, dram: bool = False, dma: bool = False,
                per_inference: float = 10e-6, per_op: float = 1e-6, static: float = 1e-3) -> Target:
    memories = {"sram": SRAM, "flash": FLASH}
    if dram:
        memories["dram"] = DRAM
    compute = {"cpu": CPU}
    if npu:
        compute["npu"] = NPU
    if dma:
        compute["dma"] = DMA
    return Target(
        name="tiny", kind="npu" if npu else "mcu", clock_hz=CLOCK, memories=memories, compute=compute,
        numerics=dict(weight_bits=[8], activation_bits=[8], packing=packing, accumulator_bits=32,
                      overflow="wrap", runtime="tflm", rounding="single"),
        placement=dict(weights="flash", biases="flash", activations="sram", inputs="sram", outputs="sram",
                       scratch="sram", training_state="sram"),
        runtime_efficiency=dict(compute={"mac": 0.5}, per_op_overhead_s=per_op,
                                per_inference_overhead_s=per_inference),
        power=dict(static_W=static))


def fc_relu_trace(wbits: int = 8) -> Trace:
    """fc1: x(100 int8 input) · W(50x100) -> y(50 int8); relu: y -> z(50 int8 output)."""
    tr = Trace()
    x = TensorInfo("x", (1, 100), 8, "input", "int8")
    w = TensorInfo("w", (50, 100), wbits, "weight", f"int{wbits}")
    y = TensorInfo("y", (1, 50), 8, "activation", "int8")
    z = TensorInfo("z", (1, 50), 8, "output", "int8")
    tr.alloc(w); tr.alloc(x); tr.alloc(y)
    tr.op("fully_connected", "fc1", [x, w], [y], {("mac", f"int{wbits}"): 5000})
    tr.alloc(z)
    tr.op("relu", "relu1", [y], [z], {("elementwise", "int8"): 50})
    tr.free(y)
    return tr


NO_SPILL = {"sram": 0, "flash": 0}   # peaks given explicitly so the test does not depend on hwsim.memory


def test_fc_relu_hand_computed():
    res = cost_trace(fc_relu_trace(), tiny_target(), memory=NO_SPILL)
    # fc1: compute 5000 / (1 * 2 * 0.5 * 100e6) = 50 us
    #      memory sram read 100/100e6 = 1 us, write 50/50e6 = 1 us; flash 5000/25e6 = 200 us + 1 us latency
    #      latency = max(50, 203) + 2 (launch) + 1 (per-op) = 206 us
    fc = res.ops.iloc[0]
    assert fc["unit"] == "cpu"
    assert fc["compute_s"] == pytest.approx(50e-6, rel=1e-12)
    assert fc["memory_s"] == pytest.approx(203e-6, rel=1e-12)
    assert fc["overhead_s"] == pytest.approx(3e-6, rel=1e-12)
    assert fc["latency_s"] == pytest.approx(206e-6, rel=1e-12)
    assert fc["bytes_flash"] == 5000 and fc["bytes_sram"] == 150
    # energy: 5000*3 pJ + (100*1 + 50*2) pJ + 5000*5 pJ + 1 mW * 206 us
    assert fc["energy_j"] == pytest.approx(15e-9 + 0.2e-9 + 25e-9 + 206e-9, rel=1e-12)
    # relu: compute 50/1e8 = 0.5 us; memory 50/100e6 + 50/50e6 = 1.5 us; + 3 us overhead
    relu = res.ops.iloc[1]
    assert relu["latency_s"] == pytest.approx(4.5e-6, rel=1e-12)
    assert relu["energy_j"] == pytest.approx(50e-12 + 50e-12 + 100e-12 + 4.5e-9, rel=1e-12)
    assert res.latency_s == pytest.approx(206e-6 + 4.5e-6 + 10e-6, rel=1e-12)
    assert res.energy_j == pytest.approx(246.2e-9 + 4.7e-9 + 10e-9, rel=1e-12)
    assert res.flags == []
    assert list(res.by_layer.index) == ["fc1", "relu1"]
    assert res.by_phase.loc["forward", "latency_s"] == pytest.approx(210.5e-6, rel=1e-12)


def test_int4_weights_without_packing_cost_a_container_and_promote():
    res = cost_trace(fc_relu_trace(wbits=4), tiny_target(packing=False), memory=NO_SPILL)
    fc = res.ops.iloc[0]
    assert fc["bytes_flash"] == 5000          # 5000 values x one 8-bit container
    assert fc["fmt"] == "int8"                # int4 MAC promoted to the cpu's int8 MAC
    assert fc["compute_s"] == pytest.approx(50e-6, rel=1e-12)
    kinds = {f["kind"] for f in res.flags}
    assert {"container", "promotion"} <= kinds
    packed = cost_trace(fc_relu_trace(wbits=4), tiny_target(packing=True), memory=NO_SPILL)
    assert packed.ops.iloc[0]["bytes_flash"] == 2500
    # flash time halves: 2500/25e6 = 100 us + 1 us latency + 2 us sram
    assert packed.ops.iloc[0]["memory_s"] == pytest.approx(103e-6, rel=1e-12)


def test_npu_runs_supported_ops_and_cpu_fallback_is_flagged():
    res = cost_trace(fc_relu_trace(), tiny_target(npu=True), memory=NO_SPILL)
    fc, relu = res.ops.iloc[0], res.ops.iloc[1]
    assert fc["unit"] == "npu" and relu["unit"] == "cpu"
    # npu: 5000 / (8 * 0.5 * 100e6) = 12.5 us compute; overhead 5 + 1 us
    assert fc["compute_s"] == pytest.approx(12.5e-6, rel=1e-12)
    assert fc["overhead_s"] == pytest.approx(6e-6, rel=1e-12)
    assert fc["latency_s"] == pytest.approx(203e-6 + 6e-6, rel=1e-12)
    assert "fallback" in relu["flags"]
    assert any(f["kind"] == "fallback" and "relu" in f["message"] for f in res.flags)


def test_training_phases_and_repeats():
    tr = Trace()
    a = TensorInfo("a", (1000,), 8, "activation", "int8")
    b = TensorInfo("b", (1000,), 8, "activation", "int8")
    for phase in ("forward", "perturb", "update"):
        with tr.phase(phase):
            tr.op("add", f"{phase}_op", [a], [b], {("elementwise", "int8"): 1000})
    res = cost_trace(tr, tiny_target(per_inference=0.0, static=0.0), memory=NO_SPILL,
                     repeat={"step": 3, "forward": 2})
    # each op: compute 1000/1e8 = 10 us; memory 1000/100e6 + 1000/50e6 = 30 us; +3 us => 33 us
    per_op = 33e-6
    assert res.ops["latency_s"].tolist() == pytest.approx([per_op] * 3, rel=1e-12)
    assert res.latency_s == pytest.approx(3 * (2 + 1 + 1) * per_op, rel=1e-12)
    assert res.by_phase.loc["forward", "latency_s"] == pytest.approx(6 * per_op, rel=1e-12)
    assert res.by_phase.loc["perturb", "n_ops"] == 3
    # energy per op: 1000*1 pJ + 1000*1 pJ + 1000*2 pJ = 4 nJ (no static power)
    assert res.energy_j == pytest.approx(12 * 4e-9, rel=1e-12)


def test_activation_spill_to_next_level_is_priced_and_flagged():
    tr = fc_relu_trace()
    # pretend the activation arena peaks at 2048 B in a 1024 B SRAM: half its traffic moves to DRAM
    res = cost_trace(tr, tiny_target(dram=True), memory={"sram": 2048, "flash": 5000})
    relu = res.ops.iloc[1]
    assert relu["bytes_sram"] == pytest.approx(50.0)        # 100 B x 1/2
    assert relu["bytes_dram"] == pytest.approx(50.0)
    # sram 25/100e6 + 25/50e6 = 0.75 us; dram 25/10e6 + 25/10e6 = 5 us
    assert relu["memory_s"] == pytest.approx(0.75e-6 + 5e-6, rel=1e-12)
    assert [f["kind"] for f in res.flags if f["kind"] == "spill"] == ["spill"]
    assert res.spills[0].dest == "dram" and res.spills[0].overflow_bytes == 1024
    # without a writable level behind SRAM it cannot spill and says so
    res2 = cost_trace(tr, tiny_target(dram=False), memory={"sram": 2048, "flash": 5000})
    assert any(f["kind"] == "overflow" for f in res2.flags)


def test_unpriced_op_class_is_a_profile_error():
    tr = Trace()
    a = TensorInfo("a", (10,), 8, "activation", "int8")
    tr.op("random", "rng", [], [a], {("rng", "int32"): 10})
    with pytest.raises(ProfileError, match="rng"):
        cost_trace(tr, tiny_target(), memory=NO_SPILL)


def test_bad_engine_and_repeat_are_user_errors():
    with pytest.raises(HwsimError, match="engine"):
        cost_trace(fc_relu_trace(), tiny_target(), engine="magic", memory=NO_SPILL)
    with pytest.raises(HwsimError, match="repeat"):
        cost_trace(fc_relu_trace(), tiny_target(), repeat={"step": 0}, memory=NO_SPILL)


def test_real_profile_first_conv_of_resnet8_by_hand():
    """First conv of ResNet-8 on stm32l4r5: the arithmetic written out from the profile's fields."""
    from pathlib import Path

    from hwsim.emulator import Emulator
    from hwsim.target import load_target

    model = Path(__file__).parent / "data" / "mlperf_tiny" / "pretrainedResnet_quant.tflite"
    trace = Emulator.from_tflite(model).trace_only()
    t = load_target("stm32l4r5")
    res = cost_trace(trace, t, memory={"sram": 0, "flash": 0})
    ev = next(e for e in trace.ops() if e.op == "conv2d")
    cpu = t.compute["cpu"]
    compute = 0.0
    for (cls, fmt), n in ev.work.items():
        compute += n / (cpu.count * cpu.ops[cls][fmt].per_cycle * t.runtime_efficiency.compute.get(cls, 1.0)
                        * cpu.clock_hz)
    by_level: dict[str, list[float]] = {}
    for tensor in ev.reads:
        lvl = {"weight": t.placement.weights, "bias": t.placement.biases, "input": t.placement.inputs,
               "activation": t.placement.activations}[tensor.kind]
        by_level.setdefault(lvl, [0, 0])[0] += tensor.numel * tensor.bits // 8
    for tensor in ev.writes:
        lvl = {"activation": t.placement.activations, "output": t.placement.outputs}[tensor.kind]
        by_level.setdefault(lvl, [0, 0])[1] += tensor.numel * tensor.bits // 8
    def level_s(m: str) -> float:
        r, w = by_level[m]
        return r / t.memories[m].read_bw_Bps + w / t.memories[m].write_bw_Bps + t.memories[m].latency_s

    # flash wait states stall the core (stalls_compute): its time is part of compute, not memory
    assert t.memories["flash"].stalls_compute and not t.memories["sram"].stalls_compute
    stall = sum(level_s(m) for m in by_level if t.memories[m].stalls_compute)
    compute += stall
    memory = sum(level_s(m) for m in by_level if not t.memories[m].stalls_compute)
    overhead = cpu.launch_overhead_s + t.runtime_efficiency.per_op_overhead_s
    row = res.ops[res.ops["name"] == ev.name].iloc[0]
    assert stall > 0 and row["stall_s"] == pytest.approx(stall, rel=1e-12)
    assert row["compute_s"] == pytest.approx(compute, rel=1e-12)
    assert row["memory_s"] == pytest.approx(memory, rel=1e-12)
    assert row["latency_s"] == pytest.approx(max(compute, memory) + overhead, rel=1e-12)
    energy = sum(n * cpu.ops[c][f].energy_J for (c, f), n in ev.work.items())
    energy += sum(r * t.memories[m].read_energy_J_per_byte + w * t.memories[m].write_energy_J_per_byte
                  for m, (r, w) in by_level.items())
    energy += t.power.static_W * (max(compute, memory) + overhead)
    assert row["energy_j"] == pytest.approx(energy, rel=1e-12)


def test_spill_with_real_memory_analysis(tmp_path):
    """VWW needs ~100 KiB of arena; a synthetic 32 KiB-SRAM variant with a DRAM behind it spills."""
    from pathlib import Path

    from hwsim.cost.simulation import simulate_trace
    from hwsim.emulator import Emulator
    from hwsim.target import load_target

    (tmp_path / "l4r5-small-sram.yaml").write_text(
        "name: l4r5-small-sram\nextends: stm32l4r5\n"
        "memories:\n"
        "  sram: {kind: sram, capacity: {value: 32 KiB, source: 'synthetic test variant'}}\n"
        "  dram:\n    kind: dram\n    source: 'synthetic test variant'\n    capacity: 8 MiB\n"
        "    read_bw: 50 MB/s\n    write_bw: 50 MB/s\n    latency: 100 ns\n"
        "    read_energy: 100 pJ/B\n    write_energy: 100 pJ/B\n")
    t = load_target(tmp_path / "l4r5-small-sram.yaml")
    model = Path(__file__).parent / "data" / "mlperf_tiny" / "vww_96_int8.tflite"
    trace = Emulator.from_tflite(model).trace_only()
    sim = simulate_trace(trace, t)
    need = sim.memory.required_bytes["sram"]
    assert need > 32 * 1024
    (spill,) = sim.cost.spills
    assert spill.level == "sram" and spill.dest == "dram" and spill.overflow_bytes == need - 32 * 1024
    assert sim.cost.ops["bytes_dram"].sum() > 0
    # activation traffic splits in the spill ratio: dram share = overflow / need
    row = sim.cost.ops.iloc[0]
    assert row["bytes_dram"] / (row["bytes_dram"] + row["bytes_sram"]) == pytest.approx(spill.overflow_bytes / need)
    assert any(f["kind"] == "spill" for f in sim.cost.flags)
    caps = {v.budget: v for v in sim.verdicts}
    assert caps["sram (capacity)"].value == 32 * 1024 and caps["sram (capacity)"].passed
    assert caps["dram (capacity)"].value == spill.overflow_bytes
