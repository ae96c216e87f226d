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
