"""CLI robustness: bad paths and bad data end in exit 2 and one clear message, never a traceback.

Each test reproduces a QA finding (a traceback, a silent success on bad data, or a misleading
message) and checks the exit code, that the message names the path/field/value and the fix,
and that no Python traceback reaches the user.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hwsim.cli import main

DATA = Path(__file__).parent / "data" / "mlperf_tiny"
SWEEP_TARGET = "jetson-orin-nano-8gb"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run `hwsim argv` in-process; returns (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and "Traceback" not in cap.out
    return code, cap.out, cap.err


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A working folder with an existing file, an existing folder and a non-YAML text file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "notes.txt").write_text("not a profile")
    return tmp_path


def _sweep_spec(tmp_path: Path, **overrides) -> Path:
    spec = {"name": "t", "targets": [SWEEP_TARGET], "models": ["resnet18-cifar10"], "bits": [[2, 4, 8]],
            "budgets": {"weights": ["10 MiB"]}}
    spec.update(overrides)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# ---- 1. tracebacks on bad output paths -----------------------------------------------------------
def test_simulate_out_is_an_existing_file(files, capsys):
    code, out, err = run_cli(["simulate", "--model", "kws", "--out", "afile"], capsys)
    assert code == 2
    assert "--out afile" in err and "is a file" in err and "choose another --out" in err


def test_simulate_unwritable_out_still_prints_results(files, capsys):
    # /proc refuses new folders; the check may only fire when the report is written, and then the
    # already computed results must still be on stdout.
    code, out, err = run_cli(["simulate", "--model", "kws", "--out", "/proc/hwsim-x"], capsys)
    assert code == 2
    assert "/proc/hwsim-x" in err and "--out" in err
    if "cannot write there" in err:      # failed at write time: results printed first
        assert "latency" in out


def test_report_write_failure_keeps_the_printed_results(files, capsys, monkeypatch):
    import hwsim.report

    def refuse(sim, out_dir, **kw):
        raise PermissionError(13, "Permission denied", str(out_dir))

    monkeypatch.setattr(hwsim.report, "write_report", refuse)
    code, out, err = run_cli(["simulate", "--model", "kws", "--out", "r"], capsys)
    assert code == 2
    assert "latency" in out and "energy" in out          # the computed results were printed
    assert "--out r" in err and "Permission denied" in err and "choose another --out" in err


def test_sweep_spec_is_a_directory(files, capsys):
    code, _, err = run_cli(["sweep", "adir"], capsys)
    assert code == 2 and "adir" in err and "is a directory, expected a file" in err


def test_sweep_out_is_an_existing_file(files, capsys):
    spec = _sweep_spec(files)
    code, _, err = run_cli(["sweep", str(spec), "--out", "afile", "--no-progress"], capsys)
    assert code == 2 and "--out afile" in err and "is a file" in err


@pytest.mark.parametrize("option", ["--chunk-size", "--workers"])
def test_sweep_chunk_size_and_workers_must_be_positive(files, capsys, option):
    spec = _sweep_spec(files)
    code, _, err = run_cli(["sweep", str(spec), option, "0", "--no-progress"], capsys)
    assert code == 2 and option in err


def test_calibrate_checks_out_before_fitting(files, capsys):
    meas = files / "meas.csv"
    meas.write_text(f"model,latency_ms\n{DATA / 'kws_ref_model.tflite'},75.06\n"
                    f"{DATA / 'vww_96_int8.tflite'},230.5\n")
    code, out, err = run_cli(["calibrate", "--target", "stm32l4r5", "--measurements", str(meas),
                              "--out", "adir"], capsys)
    assert code == 2 and "--out adir" in err and "is a directory" in err
    assert "efficiency" not in out          # refused before the fit
    code, out, err = run_cli(["calibrate", "--target", "stm32l4r5", "--measurements", str(meas),
                              "--out", "afile/x.yaml"], capsys)
    assert code == 2 and "afile" in err and "not a folder" in err
    assert "efficiency" not in out


def test_emulate_dump_is_an_existing_file(files, capsys):
    np.save(files / "X.npy", np.zeros((1, 49, 10, 1), np.int8))
    code, _, err = run_cli(["emulate", "kws", "--inputs", "X.npy", "--out", "Y.npy", "--dump", "afile"],
                           capsys)
    assert code == 2 and "--dump afile" in err and "is a file" in err
    assert not (files / "Y.npy").exists()     # refused before running


# ---- 2. sweeps: validate the spec up front; all-error exits 1; full infeasible message ----------
def test_sweep_unknown_budget_resource_fails_before_running(files, capsys):
    spec = _sweep_spec(files, budgets={"wieghts": ["1 MiB", "2 MiB"]})
    code, out, err = run_cli(["sweep", str(spec), "--out", "o", "--no-progress"], capsys)
    assert code == 2 and "wieghts" in err and "weights" in err
    assert not (files / "o").exists()         # nothing ran


def test_sweep_unknown_model_and_target_fail_before_running(files, capsys):
    spec = _sweep_spec(files, targets=["no-such-target"], models=["no-such-model"])
    code, _, err = run_cli(["sweep", str(spec), "--out", "o", "--no-progress"], capsys)
    assert code == 2 and "no-such-target" in err and "no-such-model" in err
    assert not (files / "o").exists()


def test_sweep_where_every_point_errors_exits_1(files, capsys):
    sens = files / "sens.csv"
    sens.write_text("layer,value\nno-such-layer,1\n")      # every family fails the same way
    spec = _sweep_spec(files, sensitivity=str(sens), budgets={"weights": ["8 MiB", "10 MiB"]})
    code, out, err = run_cli(["sweep", str(spec), "--out", "o", "--no-progress"], capsys)
    assert code == 1
    assert "all 2 evaluated points failed" in err
    frame = pd.read_parquet(files / "o" / "results.parquet")
    assert (frame["status"] == "error").all() and frame["error"].str.contains("no-such-layer").all()


def test_sweep_infeasible_point_keeps_the_whole_message(files, capsys):
    spec = _sweep_spec(files, budgets={"weights": ["1 B"]})
    code, _, _ = run_cli(["sweep", str(spec), "--out", "o", "--no-progress"], capsys)
    assert code == 0
    row = pd.read_parquet(files / "o" / "results.parquet").iloc[0]
    assert row["status"] == "infeasible"
    lines = row["error"].splitlines()
    assert "smallest feasible value" in lines[0]
    assert len(lines) >= 2 and any("weights" in ln for ln in lines[1:])   # the per-resource detail


# ---- 3. emulate: report the real output path; refuse a folder ------------------------------------
def test_emulate_prints_the_real_output_path_and_refuses_a_folder(files, capsys):
    np.save(files / "X.npy", np.zeros((1, 49, 10, 1), np.int8))
    code, _, err = run_cli(["emulate", "kws", "--inputs", "X.npy", "--out", "Yout"], capsys)
    assert code == 0 and (files / "Yout.npy").is_file()
    assert "-> Yout.npy" in err
    code, _, err = run_cli(["emulate", "kws", "--inputs", "X.npy", "--out", "adir"], capsys)
    assert code == 2 and "--out adir" in err and "is a directory" in err
    assert not (files / "adir.npy").exists()


# ---- 4. allocate --sensitivity: empty, missing layers, negative, non-finite ----------------------
ALLOC = ["allocate", "--model", "resnet18-cifar10", "--target", "stm32h743", "--budget", "weights=2MiB"]


@pytest.mark.parametrize("text, expect", [
    ("", "no layer,value rows"),
    ("layer,value\n", "no layer,value rows"),
    ("layer,value\nlayer1.0.conv1,-3\n", "finite value ≥ 0"),
    ("layer,value\nlayer1.0.conv1,nan\n", "finite value ≥ 0"),
    ("layer,value\nlayer1.0.conv1,inf\n", "finite value ≥ 0"),
])
def test_allocate_rejects_bad_sensitivity_values(files, capsys, text, expect):
    (files / "s.csv").write_text(text)
    code, _, err = run_cli(ALLOC + ["--sensitivity", "s.csv"], capsys)
    assert code == 2 and "s.csv" in err and expect in err


def test_allocate_lists_layers_missing_from_the_sensitivity_file(files, capsys):
    (files / "s.csv").write_text("layer,value\nlayer1.0.conv1,1\n")
    code, _, err = run_cli(ALLOC + ["--sensitivity", "s.csv"], capsys)
    assert code == 2
    assert "layer4.1.conv2" in err and "every non-fixed layer needs a value" in err
    assert "layer1.0.conv1," not in err        # the given layer is not listed as missing


# ---- 5. precise messages for folders, non-YAML targets, corrupt models ---------------------------
@pytest.mark.parametrize("argv, option", [
    (["simulate", "--workload", "adir", "--no-report"], "--workload adir"),
    (ALLOC + ["--sensitivity", "adir"], "--sensitivity adir"),
    (["emulate", "kws", "--inputs", "adir", "--out", "Y.npy"], "--inputs adir"),
])
def test_a_folder_where_a_file_is_expected(files, capsys, argv, option):
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and option in err and "is a directory, expected a file" in err


@pytest.mark.parametrize("command", [
    ["simulate", "--model", "kws", "--no-report"],
    ["allocate", "--model", "resnet18-cifar10", "--budget", "weights=2MiB"],
])
def test_target_that_is_a_text_file_is_not_an_unknown_target(files, capsys, command):
    code, _, err = run_cli(command + ["--target", "notes.txt"], capsys)
    assert code == 2 and "notes.txt" in err and "not a YAML device profile" in err
    assert "unknown target" not in err


def test_allocate_empty_tflite_gives_the_simulate_message(files, capsys):
    (files / "empty.tflite").write_bytes(b"")
    code_s, _, err_s = run_cli(["simulate", "--model", "empty.tflite", "--no-report"], capsys)
    code_a, _, err_a = run_cli(["allocate", "--model", "empty.tflite", "--budget", "compression=4x"],
                               capsys)
    assert code_s == code_a == 2
    assert "not a TFLite flatbuffer" in err_a and "TFL3" in err_a
    assert err_a == err_s


# ---- 6. calibrate: degenerate data, builtin names ------------------------------------------------
@pytest.mark.parametrize("rows, expect", [
    ([("kws_ref_model.tflite", "1e-9"), ("vww_96_int8.tflite", "230.5")], "below 1 µs"),
    ([("kws_ref_model.tflite", "0"), ("vww_96_int8.tflite", "230.5")], "positive"),
    ([("kws_ref_model.tflite", "75"), ("kws_ref_model.tflite", "20")], "one row per distinct model"),
])
def test_calibrate_rejects_degenerate_data(files, capsys, rows, expect):
    meas = files / "m.csv"
    meas.write_text("model,latency_ms\n" + "".join(f"{DATA / m},{v}\n" for m, v in rows))
    code, out, err = run_cli(["calibrate", "--target", "stm32l4r5", "--measurements", str(meas),
                              "--out", "p.yaml"], capsys)
    assert code == 2 and "m.csv" in err and expect in err
    assert not (files / "p.yaml").exists()


def test_calibrate_needs_as_many_distinct_models_as_parameters(files, capsys):
    meas = files / "m.csv"
    meas.write_text(f"model,latency_ms\n{DATA / 'kws_ref_model.tflite'},75.06\n"
                    f"{DATA / 'vww_96_int8.tflite'},230.5\n")
    code, _, err = run_cli(["calibrate", "--target", "stm32l4r5", "--measurements", str(meas),
                            "--out", "p.yaml", "--params", "mac,dw_mac,per_op"], capsys)
    assert code == 2 and "3 parameters" in err and "2 distinct models" in err


def test_calibrate_accepts_builtin_model_names(files, capsys):
    meas = files / "m.csv"
    meas.write_text("model,latency_ms\nkws,75.06\nvww,230.5\nresnet8,226.9\n")
    code, out, err = run_cli(["calibrate", "--target", "stm32l4r5", "--measurements", str(meas),
                              "--out", "p.yaml"], capsys)
    assert code == 0, err
    assert (files / "p.yaml").is_file() and "efficiency: mac=" in out


# ---- 7. -h everywhere; targets list header -------------------------------------------------------
@pytest.mark.parametrize("argv", [["-h"], ["simulate", "-h"], ["sweep", "-h"], ["targets", "-h"],
                                  ["targets", "list", "-h"]])
def test_dash_h_is_help(capsys, argv):
    code, out, _ = run_cli(argv, capsys)
    assert code == 0 and "Usage: hwsim" in out


def test_targets_list_has_a_header_row(capsys):
    code, out, _ = run_cli(["targets", "list"], capsys)
    header = out.splitlines()[0].split()
    assert code == 0 and header == ["NAME", "KIND", "PATH"]


# ---- 8. notes: --out with --no-report; user budget above the capacity ----------------------------
def test_no_report_with_out_says_out_is_ignored(files, capsys):
    code, _, err = run_cli(["simulate", "--model", "kws", "--no-report", "--out", "r"], capsys)
    assert code == 0 and "--out r is ignored with --no-report" in err
    assert not (files / "r").exists()


def test_budget_above_device_capacity_notes_the_tighter_limit(files, capsys):
    code, out, err = run_cli(["simulate", "--model", "kws", "--no-report", "--target", "stm32l4r5",
                              "--budget", "sram=100MiB"], capsys)
    assert code == 0
    assert "sram=100MiB" in err and "device capacity is the tighter limit" in err
    assert "sram (capacity)" in out            # the capacity check is still made


# ---- 9. default report folders never collide -----------------------------------------------------
def test_default_report_folder_gets_a_unique_suffix(files, monkeypatch):
    from hwsim.cli import simulate

    monkeypatch.setattr(simulate.time, "strftime", lambda fmt, *a: "20260101-000000")
    first = simulate._out_dir(None, "kws", "stm32l4r5")
    first.mkdir(parents=True)
    second = simulate._out_dir(None, "kws", "stm32l4r5")
    assert second != first and not second.exists()
    assert second.name.startswith(first.name + "-")


# ---- one end-to-end check through the real entry point --------------------------------------------
def test_subprocess_bad_out_has_no_traceback(files):
    proc = subprocess.run([sys.executable, "-m", "hwsim", "sweep", "adir"], capture_output=True,
                          text=True, timeout=120, cwd=files)
    assert proc.returncode == 2
    assert "is a directory, expected a file" in proc.stderr and "Traceback" not in proc.stderr
