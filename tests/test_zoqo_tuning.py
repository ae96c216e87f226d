"""The zoqo-train selection protocol: per-variant hyper-parameters, validation holdout, grid choice."""
from __future__ import annotations

import pytest
import torch

from hwsim.algorithms import zoqo_experiment as ze
from hwsim.algorithms.zoqo_experiment import ExperimentSpec, holdout_split, run_experiment, variant_hparams
from hwsim.algorithms.zoqo_tuning import choose, grid_points, merge, point_hp
from hwsim.errors import HwsimError


def test_variant_hp_precedence_and_zoqo_seed():
    spec = ExperimentSpec(seed=3, zoqo={"lr": 0.003, "mu": 0.015, "range_mode": "minmax"},
                          sign={"lr": 0.003, "mu": 0.015}, baseline_range_mode="minmax",
                          variant_hp={"zoqo": {"mu": 0.05}, "zoqo@b4": {"range_mode": "2x_minmax"},
                                      "sign/q-post@b8": {"lr": 0.01}})
    z8, z4 = variant_hparams(spec, "zoqo", 8), variant_hparams(spec, "zoqo", 4)
    assert (z8["mu"], z8["range_mode"], z8["bits"], z8["seed"]) == (0.05, "minmax", 8, 3)
    assert (z4["mu"], z4["range_mode"], z4["bits"]) == (0.05, "2x_minmax", 4)
    assert variant_hparams(spec, "sign/q-post", 8)["lr"] == 0.01
    assert variant_hparams(spec, "sign/q-post", 4)["lr"] == 0.003
    bad = ExperimentSpec(variant_hp={"sign/fp": {"tie": "zero"}})
    with pytest.raises(HwsimError, match="tie"):
        variant_hparams(bad, "sign/fp", 8)


def test_holdout_is_a_stratified_partition_of_train():
    x = torch.arange(200, dtype=torch.float32).view(200, 1)
    y = torch.arange(200) % 4
    xa, ya, xv, yv = holdout_split(x, y, 0.2, seed=0)
    assert xv.shape[0] == 40 and xa.shape[0] == 160
    assert set(xa.view(-1).tolist()).isdisjoint(xv.view(-1).tolist())
    assert sorted(xa.view(-1).tolist() + xv.view(-1).tolist()) == list(range(200))
    assert torch.bincount(yv).tolist() == [10, 10, 10, 10]
    assert torch.equal(holdout_split(x, y, 0.2, seed=0)[2], xv)       # deterministic in the seed


def test_validation_run_never_reads_the_test_split(monkeypatch, tmp_path):
    real = ze.load_dataset

    def guarded(name, path, split, **kw):
        assert split != "test", "selection must not read the test split"
        return real(name, path, split, **kw)

    monkeypatch.setattr(ze, "load_dataset", guarded)
    spec = ExperimentSpec(steps=3, variants=("zoqo", "sign/fp"), bits=(8,), val_fraction=0.2,
                          cache_dir=str(tmp_path), zoqo={"lr": 0.003, "mu": 0.015},
                          sign={"lr": 0.003, "mu": 0.015})
    m = run_experiment(spec).metrics
    assert m["eval_split"] == "val" and m["val_size"] + m["train_size"] == 1437
    assert all("val_accuracy" in v and "test_accuracy" not in v for v in m["variants"].values())


def test_choose_takes_best_mean_and_lower_index_on_ties():
    scores = {"zoqo@b8": {0: [0.80, 0.90], 3: [0.86, 0.86], 5: [0.70, 0.95]},
              "sign/fp": {2: [0.5], 4: [0.5]}}
    res = choose({"seeds": [0, 1], "scores": scores})
    assert res["chosen"]["zoqo@b8"]["point"] == 3                     # means 0.85, 0.86, 0.825
    assert res["chosen"]["sign/fp"]["point"] == 2                     # tie: lower grid index
    assert res["chosen"]["zoqo@b8"]["hp"] == point_hp(grid_points()[3], "zoqo")
    assert "range_mode" not in res["chosen"]["sign/fp"]["hp"]         # FP has no grid
    both = merge([{"seeds": [0], "scores": {"zoqo@b8": {"0": [0.5]}}},
                  {"seeds": [0], "scores": {"zoqo@b8": {"1": [0.6]}}}])
    assert both["chosen"]["zoqo@b8"]["point"] == 1


def test_variant_hp_key_typo_is_a_workload_error():
    from hwsim.algorithms.zoqo_experiment import spec_from_dict
    with pytest.raises(HwsimError, match="variant_hp key 'sign/qpost@b8'"):
        spec_from_dict({"variant_hp": {"sign/qpost@b8": {"lr": 0.01}}})
    assert spec_from_dict({"variant_hp": {"zoqo@b4": {"mu": 0.05}}}).variant_hp == {"zoqo@b4": {"mu": 0.05}}
