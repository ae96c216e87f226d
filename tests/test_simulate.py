"""`hwsim simulate`: JSON interface on every MLPerf Tiny model x shipped target, budgets, exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwsim.cli import main
from hwsim.target import list_targets, load_target

REPO = Path(__file__).resolve().parent.parent
MODELS = sorted((REPO / "tests" / "data" / "mlperf_tiny").glob("*.tflite"))
TARGETS = [e.name for e in list_targets() if not e.abstract]
RESNET8 = str(REPO / "tests" / "data" / "mlperf_tiny" / "pretrainedResnet_quant.tflite")
#: MACs per inference from tests/data/mlperf_tiny/README.md (static flatbuffer count, independent of hwsim)
PUBLISHED_MACS = {"ad01_int8.tflite": 264_192, "pretrainedResnet_quant.tflite": 12_501_632,
                  "kws_ref_model.tflite": 2_656_768, "vww_96_int8.tflite": 7_489_664,
                  "str_ww_ref_model.tflite": 826_368}


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def shapes_traces():
    from hwsim.emulator import Emulator

    return {m.name: Emulator.from_tflite(m).trace_only() for m in MODELS}


def test_every_model_and_target_is_covered():
    assert len(MODELS) == 5
    assert {"stm32l4r5", "ethos-u55-128", "h100-sxm"} <= set(TARGETS)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("model", [m.name for m in MODELS])
def test_json_interface(model, target, capsys, shapes_traces):
    code, out, err = run_cli(["simulate", "--model", str(REPO / "tests/data/mlperf_tiny" / model),
                              "--target", target, "--format", "json", "--no-report"], capsys)
    d = json.loads(out)
    tgt = load_target(target)
    for key in ("target", "latency_s", "energy_j", "peak_bytes", "arena_bytes", "compliance", "ops"):
        assert key in d, key
    assert d["target"] == target
    assert set(d["peak_bytes"]) == set(tgt.memories)
    # one row per op event of the model (the emulator's shapes-only trace is the oracle for the count)
    trace = shapes_traces[model]
    assert len(d["ops"]) == len(trace.ops())
    assert [r["name"] for r in d["ops"]] == [e.name for e in trace.ops()]
    # MACs in the report equal the published static count of the model file
    assert sum(r["macs"] for r in d["ops"]) == PUBLISHED_MACS[model]
    # total latency = per-op latencies + per-inference overhead from the profile
    per_inf = tgt.runtime_efficiency.per_inference_overhead_s
    assert d["latency_s"] == pytest.approx(sum(r["latency_s"] for r in d["ops"]) + per_inf, rel=1e-9)
    assert d["latency_s"] > 0 and d["energy_j"] > 0
    # the device capacities are always checked; exit code follows the verdicts
    caps = {c["budget"]: c for c in d["compliance"] if c["source"] == "device"}
    assert set(caps) == {f"{m} (capacity)" for m in tgt.memories}
    for c in d["compliance"]:
        assert c["margin"] == pytest.approx(c["limit"] - c["value"])
        assert c["pass"] == (c["value"] <= c["limit"])
    assert code == (0 if all(c["pass"] for c in d["compliance"]) else 1)


def test_budgets_pass_fail_and_exit_codes(capsys):
    base = ["simulate", "--model", RESNET8, "--target", "stm32l4r5", "--no-report"]
    code, out, _ = run_cli(base + ["--format", "json"], capsys)
    d = json.loads(out)
    assert code == 0
    lat, sram = d["latency_s"], d["compliance"][0]["value"]
    assert d["compliance"][0]["budget"] == "sram (capacity)"
    # a latency budget just above / below the figure
    code, out, _ = run_cli(base + ["--budget", f"latency={lat * 1e3 * 1.01}ms"], capsys)
    assert code == 0 and "RESULT: PASS" in out
    code, out, _ = run_cli(base + ["--budget", f"latency={lat * 1e3 * 0.99}ms"], capsys)
    assert code == 1 and "FAIL  latency" in out and "RESULT: FAIL (latency)" in out
    # a memory budget smaller than the SRAM the model needs fails; margins are limit - value
    code, out, _ = run_cli(base + ["--budget", f"sram={int(sram) - 1}B", "--format", "json"], capsys)
    d = json.loads(out)
    user = [c for c in d["compliance"] if c["source"] == "user"]
    assert code == 1 and user == [dict(user[0], budget="sram", limit=sram - 1, value=sram, margin=-1.0, **{"pass": False})]
    code, out, _ = run_cli(base + ["--budget", "energy=1J", "--budget", f"sram={int(sram)}B"], capsys)
    assert code == 0


@pytest.mark.parametrize("bad, words", [
    ("foo=1KiB", ["foo", "sram, flash, latency, energy"]),
    ("sram=12", ["sram=12", "no unit"]),
    ("latency=5KiB", ["latency=5KiB", "time"]),
    ("latency", ["KIND=VALUE"]),
])
def test_bad_budget_exits_2_with_message(bad, words, capsys):
    code, out, err = run_cli(["simulate", "--model", RESNET8, "--no-report", "--budget", bad], capsys)
    assert code == 2
    assert "Traceback" not in err
    for w in words:
        assert w in err


def test_bad_inputs_exit_2(tmp_path, capsys):
    code, _, err = run_cli(["simulate", "--model", str(tmp_path / "nope.tflite"), "--no-report"], capsys)
    assert code == 2 and "nope.tflite" in err
    code, _, err = run_cli(["simulate", "--model", RESNET8, "--workload", "w.yaml", "--no-report"], capsys)
    assert code == 2 and "not both" in err
    bad = tmp_path / "w.yaml"
    bad.write_text("name: x\nalgorithm: no-such-thing\n")
    code, _, err = run_cli(["simulate", "--workload", str(bad), "--no-report"], capsys)
    assert code == 2 and "no-such-thing" in err
    code, _, err = run_cli(["simulate", "--target", "no-such-board", "--no-report"], capsys)
    assert code == 2 and "no-such-board" in err


def test_inference_workload_runs_bit_accurately_and_reports_metrics(tmp_path, capsys):
    ad = REPO / "tests/data/mlperf_tiny/ad01_int8.tflite"
    w = tmp_path / "ad.yaml"
    w.write_text(f"name: ad-inference\nalgorithm: inference\nmodel: {ad}\ninputs: 3\nseed: 1\n"
                 "target: stm32u575\nbudgets: {{latency: 1 s, flash: 1 MiB}}\n".replace("{{", "{").replace("}}", "}"))
    code, out, _ = run_cli(["simulate", "--workload", str(w), "--format", "json", "--no-report"], capsys)
    d = json.loads(out)
    assert code == 0 and d["target"] == "stm32u575" and d["name"] == "ad-inference"
    assert d["metrics"]["inputs"] == 3 and len(d["metrics"]["argmax"]) == 3
    assert d["float_ops_by_phase"] == {"forward": 0}
    assert {c["budget"] for c in d["compliance"] if c["source"] == "workload"} == {"latency", "flash"}


def test_des_engine_reports_analytic_comparison(capsys):
    code, out, _ = run_cli(["simulate", "--model", RESNET8, "--target", "ethos-u55-128", "--engine", "des",
                            "--no-report", "--format", "json"], capsys)
    d = json.loads(out)
    assert d["engine"] == "des" and d["analytic_latency_s"] > 0
    assert d["des"]["overlap_gain_s"] == pytest.approx(d["analytic_latency_s"] - d["latency_s"])


def test_default_run_is_the_zoqo_workload_on_stm32h743(capsys):
    """No --model/--workload: the embedded ZOQO digits workload (quick setting here; CI runs the full one)."""
    code, out, _ = run_cli(["simulate", "--quick", "--format", "json", "--no-report"], capsys)
    d = json.loads(out)
    assert code == 0 and d["target"] == "stm32h743" and d["name"] == "zoqo-train-digits"
    assert d["source"]["algorithm"] == "zoqo-train"
    assert d["float_ops_by_phase"]["perturb"] == 0 and d["float_ops_by_phase"]["update"] == 0
    assert d["metrics"]["variants"] and d["latency_s"] > 0


def test_resnet8_model_json_has_published_macs(capsys):
    code, out, _ = run_cli(["simulate", "--model", "resnet8", "--target", "stm32l4r5", "--format", "json",
                            "--no-report"], capsys)
    d = json.loads(out)
    assert code == 0 and d["target"] == "stm32l4r5" and d["name"] == "resnet8"
    assert d["source"]["model"].endswith("pretrainedResnet_quant.tflite")
    assert sum(r["macs"] for r in d["ops"]) == PUBLISHED_MACS["pretrainedResnet_quant.tflite"]


def _register_synthetic_training_runner():
    """A stand-in training workload: one step with forward/perturb/update phases, repeated 20,000x."""
    from hwsim.trace import TensorInfo, Trace
    from hwsim.workloads import WorkloadRun, register_runner

    @register_runner("test-synthetic-train")
    def run(spec, target, options):
        tr = Trace()
        w = TensorInfo("w", (64, 64), 8, "param", "int8")
        x = TensorInfo("x", (8, 64), 8, "activation", "int8")
        y = TensorInfo("y", (8, 64), 32, "activation", "int32")
        tr.alloc(w)
        tr.alloc(x)
        with tr.phase("forward"):
            tr.alloc(y)
            tr.op("fully_connected", "fc", [x, w], [y], {("mac", "int8"): 8 * 64 * 64})
        with tr.phase("perturb"):
            tr.op("add", "perturb", [w], [w], {("elementwise", "int8"): 64 * 64})
        with tr.phase("update"):
            tr.op("add", "update", [w, y], [w], {("elementwise", "int32"): 64 * 64})
        return WorkloadRun(name=spec["name"], trace=tr, repeat={"step": int(spec["steps"]), "forward": 2},
                           metrics={"steps": int(spec["steps"])})


@pytest.mark.parametrize("engine", ["analytic", "des"])
def test_training_workload_repeats_and_phases(engine, tmp_path, capsys):
    import time

    _register_synthetic_training_runner()
    w = tmp_path / "train.yaml"
    w.write_text("name: synth\nalgorithm: test-synthetic-train\nsteps: 20000\n")
    t0 = time.perf_counter()
    code, out, _ = run_cli(["simulate", "--workload", str(w), "--target", "stm32l4r5", "--engine", engine,
                            "--format", "json", "--no-report"], capsys)
    assert time.perf_counter() - t0 < 20          # 20,000 steps are extrapolated, not simulated
    d = json.loads(out)
    tgt = load_target("stm32l4r5")
    assert d["metrics"] == {"steps": 20000} and d["float_ops_by_phase"] == {"forward": 0, "perturb": 0, "update": 0}
    phases = {r["phase"]: r for r in d["by_phase"]}
    assert phases["forward"]["n_ops"] == 40000 and phases["update"]["n_ops"] == 20000
    per_op = {r["name"]: r["latency_s"] for r in d["ops"]}
    step = 2 * per_op["fc"] + per_op["perturb"] + per_op["update"] + tgt.runtime_efficiency.per_inference_overhead_s
    # analytic: exactly 20,000 steps; DES on a target without DMA: the same figure
    assert d["latency_s"] == pytest.approx(20000 * step, rel=1e-9)
