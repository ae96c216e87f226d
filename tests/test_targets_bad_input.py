"""Malformed device profiles: each gives exit code 2 and one message per problem naming the file,
the line (taken from a `# BAD` marker written in the fixture, not from the loader), the field path
and the bad value — never a traceback.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hwsim.cli import main
from hwsim.errors import ProfileError
from hwsim.target import load_target

BAD = Path(__file__).resolve().parent / "data" / "bad_profiles"


def marked_lines(path: Path) -> list[int]:
    """1-based line numbers carrying a `# BAD` marker (the independent oracle for locations)."""
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if "# BAD" in line]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    code = exc.value.code if isinstance(exc.value.code, int) else 1
    return code, out.out + out.err


# (fixture stem, file holding the marker, field path, value as written)
CASES = [
    ("unknown_top_field", None, "clok", "clok"),
    ("unknown_nested_field", None, "memories.sram.capacty", "capacty"),
    ("missing_read_bw", None, "memories.sram.read_bw", "missing"),
    ("missing_power", None, "power", "missing"),
    ("negative_capacity", None, "memories.sram.capacity", "-640 KiB"),
    ("zero_capacity", None, "memories.sram.capacity", "0 B"),
    ("clock_wrong_dimension", None, "clock", "25 GB/s"),
    ("bandwidth_is_frequency", None, "memories.sram.read_bw", "480 MHz"),
    ("capacity_without_unit", None, "memories.sram.capacity", "655360"),
    ("ambiguous_KB", None, "memories.sram.capacity", "640 KB"),
    ("fractional_bytes", None, "memories.sram.capacity", "1.5 B"),
    ("mhz_lowercase", None, "clock", "120 mhz"),
    ("placement_unknown_memory", None, "placement.activations", "'dram'"),
    ("placement_written_in_flash", None, "placement.scratch", "'flash'"),
    ("extends_unknown_parent", None, "extends", "no-such-family"),
    ("cycle_a", "cycle_b", "extends", "cycle_a -> cycle_b -> cycle_a"),
    ("child_of_bad_parent", "_bad_parent", "memories.sram.latency", "8 MHz"),
    ("weight_bits_not_allowed", None, "numerics.weight_bits", "3"),
    ("weight_bits_not_on_device", None, "numerics.weight_bits[0]", "int4"),
    ("op_format_not_allowed", None, "compute.cpu.ops.mac.int3", "int3"),
    ("op_class_unknown", None, "compute.cpu.ops.matmul", "matmul"),
    ("kind_invalid", None, "kind", "fpga"),
    ("name_not_stem", None, "name", "some-other-name"),
    ("overflow_invalid", None, "numerics.overflow", "clamp"),
    ("quantity_extra_key", None, "clock.sourc", "sourc"),
    ("efficiency_above_one", None, "runtime_efficiency.compute.mac", "1.5"),
    ("negative_energy", None, "compute.cpu.ops.mac.int8.energy", "-127 pJ"),
    ("count_zero", None, "compute.cpu.count", "0"),
    ("accumulator_not_allowed", None, "numerics.accumulator_bits", "33"),
    ("duplicate_key", None, "duplicate key", "latency"),
    ("unsourced_number", None, "power.static", "10 mW"),
    ("dangling_citation", None, "power.static.source", "@nosuch"),
    ("not_a_mapping", None, "YAML mapping", "a list"),
]


@pytest.mark.parametrize("stem,marker_stem,field,value", CASES, ids=[c[0] for c in CASES])
def test_validate_reports_file_line_field_value(stem, marker_stem, field, value, capsys):
    path = BAD / f"{stem}.yaml"
    marker_file = BAD / f"{marker_stem or stem}.yaml"
    (line,) = marked_lines(marker_file)[:1]
    code, text = run_cli(["targets", "validate", str(path)], capsys)
    assert code == 2, text
    problem_lines = [ln for ln in text.splitlines() if f"{marker_file.name}:{line}:" in ln]
    assert problem_lines, f"no problem at {marker_file.name}:{line} in:\n{text}"
    assert any(field in ln and value in ln for ln in problem_lines), text
    assert "Traceback" not in text


def test_yaml_syntax_error_names_file_and_line(capsys):
    path = BAD / "yaml_syntax_error.yaml"
    (line,) = marked_lines(path)
    code, text = run_cli(["targets", "validate", str(path)], capsys)
    assert code == 2
    assert "yaml_syntax_error.yaml:" in text and "YAML syntax error" in text
    # PyYAML notices the unclosed '[' on the next line; the message names where it started.
    assert f"started at line {line}" in text
    assert "Traceback" not in text


def test_one_message_per_problem(capsys):
    path = BAD / "many_problems.yaml"
    lines = marked_lines(path)
    assert len(lines) == 3
    code, text = run_cli(["targets", "validate", str(path)], capsys)
    assert code == 2
    assert "3 problems" in text
    for line in lines:
        assert f"many_problems.yaml:{line}:" in text
    for value in ("'3 ns'", "'-1 KiB'", "'dram'"):
        assert value in text


@pytest.mark.parametrize("stem", ["zero_capacity", "extends_unknown_parent", "placement_unknown_memory"])
def test_show_exits_2_with_rendered_error(stem, capsys):
    path = BAD / f"{stem}.yaml"
    (line,) = marked_lines(path)
    code, text = run_cli(["targets", "show", str(path)], capsys)
    assert code == 2
    assert text.startswith("error: invalid device profile")
    assert f"{stem}.yaml:{line}:" in text


def test_load_target_raises_profile_error_with_problems():
    with pytest.raises(ProfileError) as exc:
        load_target(BAD / "many_problems.yaml")
    assert len(exc.value.problems) == 3
    assert all("many_problems.yaml:" in p for p in exc.value.problems)


def test_unknown_target_name_and_missing_file(capsys):
    code, text = run_cli(["targets", "show", "no-such-board"], capsys)
    assert code == 2 and "unknown target 'no-such-board'" in text and "stm32l4r5" in text
    code, text = run_cli(["targets", "show", "nowhere/none.yaml"], capsys)
    assert code == 2 and "nowhere/none.yaml" in text and "does not exist" in text


def test_sources_rule_can_be_relaxed(capsys):
    code, text = run_cli(["targets", "validate", "--no-require-sources", str(BAD / "unsourced_number.yaml")], capsys)
    assert code == 0, text
    assert "OK" in text


def test_abstract_profile_cannot_be_loaded():
    with pytest.raises(ProfileError, match="abstract"):
        load_target("_cortex-m7")


@pytest.mark.parametrize("stem", ["clock_wrong_dimension", "yaml_syntax_error", "cycle_a"])
def test_real_process_exit_2_without_traceback(stem):
    proc = subprocess.run(
        [sys.executable, "-m", "hwsim", "targets", "show", str(BAD / f"{stem}.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{stem}.yaml" in proc.stderr or "cycle_b.yaml" in proc.stderr
