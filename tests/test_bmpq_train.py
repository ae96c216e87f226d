"""BMPQ schedule: ENBG bookkeeping, ILP re-assignment under a budget, and a short digits run."""
from __future__ import annotations

import pytest
import yaml

from hwsim.algorithms.bmpq_train import EnbgTracker
from hwsim.errors import WorkloadError
from hwsim.workloads import get_runner


def test_enbg_is_mean_over_epochs_of_minibatch_means():
    t = EnbgTracker(["a"])
    for v in (1.0, 3.0):           # epoch 1: mean 2
        t.add_batch({"a": v})
    t.end_epoch()
    for v in (4.0, 4.0, 10.0):     # epoch 2: mean 6
        t.add_batch({"a": v})
    t.end_epoch()
    assert t.enbg() == {"a": 4.0}
    t.reset()
    assert t.enbg() == {"a": 0.0}


def test_short_digits_run_meets_budget_and_reassigns(tmp_path, repo_root):
    spec = yaml.safe_load((repo_root / "workloads" / "bmpq-digits.yaml").read_text())
    spec["bmpq"].update(epochs=3, warmup_epochs=1, interval_epochs=1, lr_milestones=[])
    spec["ilp_budgets"] = {"compression": "9x"}
    run = get_runner("bmpq-train")(spec, None, {"out_dir": tmp_path, "progress": False})
    m = run.metrics
    assert m["accuracy"] > 0.5                                   # 10 classes: chance is 0.1
    assert m["compression_ratio"] >= 9.0
    assert m["bits"]["conv1"] == 16 and m["bits"]["fc2"] == 16
    assert set(m["bits"].values()) <= {2, 4, 16}
    assert [iv["end_epoch"] for iv in m["intervals"]] == [1, 2]
    first = m["intervals"][0]
    assert first["bits_before"] == {"conv1": 16, "conv2": 4, "conv3": 4, "fc1": 4, "fc2": 16}
    assert all(v > 0 for v in first["enbg"].values())
    assert run.artifacts["enbg"].is_file() and run.artifacts["bits"].is_file()
    fwd = [e for e in run.trace.filter(phase="forward").ops() if e.op in ("conv2d", "fully_connected")]
    assert {e.layer: next(iter(e.work))[1] for e in fwd} == {k: f"int{v}" for k, v in m["bits"].items()}
    assert run.repeat["step"] > 0


def test_unknown_bmpq_field_is_a_workload_error():
    with pytest.raises(WorkloadError, match="bmpq.epoch"):
        get_runner("bmpq-train")({"algorithm": "bmpq-train", "model": "digits-cnn",
                                  "bmpq": {"epoch": 3}}, None, {})


def _short(spec: dict) -> dict:
    spec["bmpq"].update(epochs=2, warmup_epochs=1, interval_epochs=1, lr_milestones=[])
    return spec


def test_int32_accumulator_overflow_is_surfaced_with_target_accuracy(tmp_path, repo_root):
    from hwsim.target import load_target
    spec = _short(yaml.safe_load((repo_root / "workloads" / "bmpq-digits.yaml").read_text()))
    target = load_target("stm32h743")
    assert target.numerics.accumulator_bits == 32
    m = get_runner("bmpq-train")(spec, target, {"progress": False}).metrics
    assert m["accumulator_overflows"]["conv1"] > 0            # 16-bit x 16-bit codes, 9+ taps
    assert m["accuracy_wide"] == m["accuracy"]                 # the workload's mode is `wide`
    assert 0.0 <= m["accuracy_target"] <= 1.0
    note = m["accumulator_note"]
    assert "conv1" in note and "int32" in note and len(note) <= 100   # shown inline by the table
    assert any(f.startswith("[accumulator]") and "conv1" in f for f in m["flags"])
    assert set(m["inference_costs"]) == {"stm32h743", "ethos-u55-256"}
    assert all(c["fits"] for c in m["inference_costs"].values())


def test_no_overflow_with_a_64_bit_accumulator_means_equal_accuracies(repo_root):
    """Nothing overflows int64 here, so applying the target's accumulator changes nothing."""
    from hwsim.target import load_target
    spec = _short(yaml.safe_load((repo_root / "workloads" / "bmpq-digits.yaml").read_text()))
    spec["bmpq"]["epochs"] = 1
    spec["inference_targets"] = []
    target = load_target("stm32h743")
    target.numerics.accumulator_bits = 64
    m = get_runner("bmpq-train")(spec, target, {"progress": False}).metrics
    assert m["accuracy_target"] == m["accuracy_wide"]
    assert m["accumulator_note"] == "no int64 accumulator overflow" and "flags" not in m


def test_shipped_digits_batch_fits_h743_sram_and_batch_64_does_not(repo_root):
    """The shipped digits workload trains on the H743 at a batch whose traced step fits its SRAM."""
    from hwsim.algorithms.bmpq import train_step_trace
    from hwsim.algorithms.bmpq_workloads import build_net, load_digits_split
    from hwsim.cost.simulation import simulate_trace
    from hwsim.models.layer_specs import builtin_model
    from hwsim.target import load_target
    spec = yaml.safe_load((repo_root / "workloads" / "bmpq-digits.yaml").read_text())
    target = load_target(spec["target"])
    net = build_net(builtin_model(spec["model"]))
    net.set_bits({"conv1": 16, "conv2": 4, "conv3": 2, "fc1": 2, "fc2": 16})
    x, y, _, _ = load_digits_split(0)
    fits = {}
    for b in (spec["bmpq"]["batch_size"], 64):
        sim = simulate_trace(train_step_trace(net, x[:b], y[:b]), target)
        fits[b] = sim.passed
    assert fits == {spec["bmpq"]["batch_size"]: True, 64: False}


def test_shipped_vgg16_shapes_trains_on_jetson_and_reports_mcu_inference_fit(repo_root):
    from hwsim.cost.simulation import simulate_trace
    from hwsim.models.layer_specs import builtin_model
    from hwsim.target import load_target
    spec = yaml.safe_load((repo_root / "workloads" / "bmpq-vgg16-shapes.yaml").read_text())
    target = load_target(spec["target"])
    run = get_runner("bmpq-train")(spec, target, {})
    assert simulate_trace(run.trace, target, repeat=run.repeat).passed     # `simulate` exits 0
    fits = run.metrics["inference_fits"]
    # oracle: ≥ 1 byte per weight (8-bit containers, numerics.packing false) vs the MCU's flash
    weights = sum(s.weight_count for s in builtin_model(spec["model"]).layers)
    flash = load_target("stm32h743").memories["flash"].capacity_bytes
    assert weights > flash and fits["stm32h743"] is False
    assert fits["ethos-u55-256"] is True and fits[spec["target"]] is True
    assert "NOT fit stm32h743" in run.metrics["inference_note"]
    assert any("stm32h743" in f for f in run.metrics["flags"])
