"""Shipped device profiles, the Target API, `extends:` merging, the search path and the CLI.

Oracles: numbers written in datasheets / docs/device_specs.md (e.g. 640 KiB = 655360 B) and
binary-prefix arithmetic, never values computed by the loader itself.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwsim.cli import main
from hwsim.target import check_profile, list_targets, load_target
from hwsim.target.model import Target

REPO = Path(__file__).resolve().parent.parent
TARGETS = REPO / "targets"
SHIPPED = sorted(p for p in TARGETS.rglob("*.yaml"))
CONCRETE = [p for p in SHIPPED if not p.stem.startswith("_")]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return (exc.value.code if isinstance(exc.value.code, int) else 1), out.out, out.err


# --- shipped profiles -------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONCRETE, ids=[p.stem for p in CONCRETE])
def test_every_shipped_profile_loads(path):
    t = load_target(path)
    assert t.name == path.stem
    if path.parent.name in ("mcu", "npu", "gpu"):
        assert t.kind == path.parent.name  # targets/<kind>/<name>.yaml
    assert t.sources, "a shipped profile cites its references"
    for role in ("weights", "biases", "activations", "inputs", "outputs", "scratch", "training_state"):
        assert getattr(t.placement, role) in t.memories
    assert t.power.static_W > 0
    for unit in t.compute.values():
        assert unit.clock_hz and unit.clock_hz > 0
        for by_fmt in unit.ops.values():
            for cost in by_fmt.values():
                assert cost.per_cycle > 0 and cost.energy_J > 0


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_number_in_shipped_profiles_has_a_source(path):
    # The sourcing rule (hwsim/target/sources.py): every number has its own or an enclosing
    # `source:` note in the same file, and every `@id` citation resolves to a `sources:` entry.
    assert check_profile(path, require_sources=True) == []


def test_catalogue_counts_by_kind():
    kinds = [e.kind for e in list_targets()]
    assert kinds.count("mcu") >= 6 and kinds.count("npu") >= 3 and kinds.count("gpu") >= 2
    names = {e.name for e in list_targets()}
    for required in (
        "stm32l4r5", "stm32h7a3", "stm32h743", "stm32u575", "stm32f746", "nrf5340",
        "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "jetson-orin-nano-8gb", "h100-sxm",
    ):
        assert required in names
    assert not any(n.startswith("_") for n in names), "abstract family files are hidden by default"
    assert any(e.abstract for e in list_targets(include_abstract=True))


def test_mcus_follow_tflm_conventions():
    for e in list_targets("mcu"):
        t = load_target(e.name)
        assert t.numerics.runtime in ("tflm", "cmsis-nn")
        assert t.memories[t.placement.weights].kind == "flash"
        assert t.memories[t.placement.activations].kind in ("sram", "tcm")
        assert t.placement.alignment_bytes == 16
        assert t.compute["cpu"].cost("mac", "fp32") is not None, "all shipped MCUs have an FPU"


def test_datasheet_numbers_survive_parsing():
    # Literal values from docs/device_specs.md §1.1, §2, §3.3.
    l4 = load_target("stm32l4r5")
    assert l4.clock_hz == 120e6
    assert l4.memories["sram"].capacity_bytes == 640 * 1024
    assert l4.memories["flash"].capacity_bytes == 2 * 1024 * 1024
    u55 = load_target("ethos-u55-128")
    assert u55.clock_hz == 500e6
    assert u55.memories["sram"].read_bw_Bps == 4e9
    assert u55.memories["flash"].read_bw_Bps == 0.5e9
    assert u55.compute["npu"].cost("mac", "int8").per_cycle == 128
    assert load_target("ethos-u55-256").compute["npu"].cost("mac", "int8").per_cycle == 256
    h100 = load_target("h100-sxm")
    assert h100.memories["hbm"].read_bw_Bps == 3.35e12
    assert h100.memories["hbm"].capacity_bytes == 80 * 10**9
    assert h100.compute["sm"].count == 132


# --- Target API -------------------------------------------------------------------------------


def test_unit_clock_defaults_to_target_clock_and_can_differ():
    l4 = load_target("stm32l4r5")
    assert l4.compute["cpu"].clock_hz == l4.clock_hz
    u55 = load_target("ethos-u55-128")
    assert u55.compute["npu"].clock_hz == 500e6
    assert u55.compute["cpu"].clock_hz == 400e6


def test_npu_fallback_and_promotion():
    u55 = load_target("ethos-u55-128")
    assert u55.unit_for_op("conv2d") == "npu"
    assert u55.unit_for_op("gather") == "cpu"  # not in supported_ops → host CPU
    cpu = load_target("stm32l4r5").compute["cpu"]
    assert cpu.cost("mac", "int4") is None
    fmt, cost = cpu.promote("mac", "int4")
    assert fmt == "int8" and cost == cpu.cost("mac", "int8")
    assert cpu.promote("mac", "bf16") is None  # floats do not promote


def test_memory_for_maps_every_tensor_kind():
    from hwsim.trace import TENSOR_KINDS

    t = load_target("stm32h7a3")
    assert t.memory_for("weight") == "flash"
    assert t.memory_for("activation") == "sram"
    assert t.memory_for("optimizer") == t.placement.training_state
    for kind in TENSOR_KINDS:
        assert t.memory_for(kind) in t.memories
    with pytest.raises(KeyError):
        t.memory_for("nonsense")


def test_loaded_targets_are_independent_copies():
    a = load_target("stm32l4r5")
    a.memories["sram"].capacity_bytes = 1
    assert load_target("stm32l4r5").memories["sram"].capacity_bytes == 640 * 1024


def test_python_construction_takes_si_numbers():
    data = load_target("stm32l4r5").model_dump()
    again = Target.model_validate(data)
    assert again.memories["sram"].capacity_bytes == 655360
    assert again.clock_hz == 120e6


# --- extends and search path ------------------------------------------------------------------

PARENT = """\
name: fam
abstract: true
kind: mcu
sources: {p: "parent ref"}
clock: {value: 100 MHz, source: "@p"}
memories:
  source: "@p"
  sram: {kind: sram, capacity: 64 KiB, read_bw: 400 MB/s, write_bw: 400 MB/s, latency: 10 ns, read_energy: 1 pJ/B, write_energy: 1 pJ/B}
  flash: {kind: flash, capacity: 1 MiB, read_bw: 100 MB/s, write_bw: 1 MB/s, latency: 40 ns, read_energy: 2 pJ/B, write_energy: 1 nJ/B}
  tcm: {kind: tcm, capacity: 16 KiB, read_bw: 400 MB/s, write_bw: 400 MB/s, latency: 5 ns, read_energy: 1 pJ/B, write_energy: 1 pJ/B}
compute:
  source: "@p"
  cpu: {kind: cpu, ops: {mac: {int8: {per_cycle: 2, energy: 10 pJ}}}}
numerics: {source: "@p", weight_bits: [8], activation_bits: [8], packing: false, accumulator_bits: 32, overflow: wrap, runtime: tflm, rounding: double}
placement: {weights: flash, biases: flash, activations: sram, inputs: sram, outputs: sram, scratch: sram, training_state: sram}
power: {static: {value: 1 mW, source: "@p"}}
"""

CHILD = """\
name: board
extends: fam
sources: {c: "child ref"}
clock: {value: 200 MHz, source: "@c"}
memories:
  sram:
    capacity: {value: 128 KiB, source: "@c"}
  tcm: null
"""


def test_extends_deep_merges_and_null_deletes(tmp_path):
    (tmp_path / "fam.yaml").write_text(PARENT)
    (tmp_path / "board.yaml").write_text(CHILD)
    t = load_target(tmp_path / "board.yaml")
    assert t.clock_hz == 200e6
    assert t.memories["sram"].capacity_bytes == 128 * 1024  # overridden
    assert t.memories["sram"].read_bw_Bps == 400e6  # inherited sibling field
    assert "tcm" not in t.memories  # deleted by null
    assert t.compute["cpu"].cost("mac", "int8").energy_J == 10e-12
    assert t.provenance["memories.sram.capacity"] == "@c"
    assert t.provenance["clock"] == "@c"
    assert not t.abstract
    assert check_profile(tmp_path / "board.yaml") == []


def test_search_path_env(tmp_path, monkeypatch):
    (tmp_path / "fam.yaml").write_text(PARENT)
    (tmp_path / "board.yaml").write_text(CHILD)
    monkeypatch.setenv("HWSIM_TARGETS_PATH", str(tmp_path))
    entries = {e.name: e for e in list_targets()}
    assert entries["board"].kind == "mcu" and entries["board"].path == tmp_path / "board.yaml"
    assert "fam" not in entries
    assert load_target("board").clock_hz == 200e6
    assert "stm32l4r5" in entries  # repo targets/ still searched


# --- CLI --------------------------------------------------------------------------------------


def test_cli_validate_all_shipped(capsys):
    code, out, _ = run_cli(["targets", "validate", str(TARGETS)], capsys)
    assert code == 0, out
    assert out.count(": OK") == len(SHIPPED)


def test_cli_list_json(capsys):
    code, out, _ = run_cli(["targets", "list", "--format", "json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert {"name", "kind", "path"} <= set(rows[0])
    code, out, _ = run_cli(["targets", "list", "--kind", "npu", "--format", "json"], capsys)
    assert {r["kind"] for r in json.loads(out)} == {"npu"}
    code, out, _ = run_cli(["targets", "list", "--all"], capsys)
    assert "_cortex-m7" in out and "(abstract)" in out


def test_cli_show_json_and_yaml(capsys):
    code, out, _ = run_cli(["targets", "show", "stm32u575", "--format", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["clock_hz"] == 160e6 and data["memories"]["sram"]["capacity_bytes"] == 768 * 1024
    code, out, _ = run_cli(["targets", "show", str(TARGETS / "gpu" / "h100-sxm.yaml")], capsys)
    assert code == 0 and "read_bw_Bps: 3350000000000.0" in out


def test_cli_schema(capsys):
    code, out, _ = run_cli(["targets", "schema"], capsys)
    assert code == 0
    schema = json.loads(out)
    assert {"clock", "memories", "compute", "numerics", "placement", "power"} <= set(schema["properties"])
    assert "path" not in schema["properties"]
    assert "capacity" in schema["$defs"]["Memory"]["properties"]


@pytest.mark.parametrize("argv", [[], ["list"], ["show"], ["validate"], ["schema"]])
def test_cli_help_everywhere(argv, capsys):
    code, out, _ = run_cli(["targets", *argv, "--help"], capsys)
    assert code == 0 and "Usage" in out


def test_docs_example_profile_is_valid(tmp_path):
    text = (REPO / "docs" / "profiles.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "my-board.yaml"
    path.write_text(example)
    assert check_profile(path) == []
    t = load_target(path)
    assert t.memories["sram"].capacity_bytes == 640 * 1024
    assert t.runtime_efficiency.factor("mac") == 0.4 and t.runtime_efficiency.factor("rng") == 1.0
    assert t.runtime_efficiency.per_inference_overhead_s == 50e-6


def test_supported_ops_match_tflite_and_trace_spellings():
    npu = load_target("ethos-u55-256").compute["npu"]
    # TFLite BuiltinOperator names, trace event names and profile names denote the same op.
    for name in ("AVERAGE_POOL_2D", "average_pool2d", "average_pool", "CONV_2D", "conv2d",
                 "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"):
        assert npu.runs(name), name
    for name in ("GATHER", "lm_head", "SQRT"):
        assert not npu.runs(name), name
