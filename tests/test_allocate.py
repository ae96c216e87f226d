"""`hwsim allocate` end to end (JSON contract, exit codes, sensitivity files)."""
from __future__ import annotations

import json

import pytest

from hwsim.cli import main
from hwsim.models.layer_specs import resnet18_cifar


def _run(capsys, *args):
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_contract_resnet18_compression(capsys, tmp_path):
    spec = resnet18_cifar(10)
    sens_file = tmp_path / "sens.csv"
    sens = {s.name: float(i % 5 + 1) for i, s in enumerate(spec.layers)}
    sens_file.write_text("layer,value\n" + "".join(f"{k},{v}\n" for k, v in sens.items()))
    code, out, err = _run(capsys, "allocate", "--model", "resnet18-cifar10", "--budget",
                          "compression=12x", "--bits", "2,4,8", "--sensitivity", str(sens_file),
                          "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    layers = {row["name"]: row for row in doc["layers"]}
    assert list(layers) == [s.name for s in spec.layers]
    assert layers["conv1"]["bits"] == 16 and list(layers["conv1"]["phi"]) == ["16"]
    assert list(layers["layer1.0.conv1"]["phi"]) == ["2", "4", "8"]
    # ties: shortcuts share their block conv1's width
    for s in spec.layers:
        if s.tie:
            assert layers[s.name]["bits"] == layers[s.tie]["bits"]
    # objective = Σ sensitivity × rank (1-based in the layer's ascending candidate list)
    obj = sum(sens[n] * (sorted(int(b) for b in row["phi"]).index(row["bits"]) + 1)
              for n, row in layers.items())
    assert doc["objective"] == pytest.approx(obj, rel=1e-12)
    # compression resource = Σ p·q (eqs. 10-12), and the ratio meets the budget
    total_bits = sum(s.weight_count * layers[s.name]["bits"] for s in spec.layers)
    assert doc["totals"]["compression"] == total_bits
    assert 32 * sum(s.weight_count for s in spec.layers) / total_bits >= 12
    assert doc["binding"] == ["compression"]
    assert doc["duals"]["compression"] > 0


def test_infeasible_budget_exits_1_with_smallest_value(capsys):
    code, out, err = _run(capsys, "allocate", "--model", "vgg16-cifar10", "--budget",
                          "compression=20x", "--bits", "2,4")
    assert code == 1
    assert "Traceback" not in err
    assert "smallest feasible 15.95x" in err


def test_bad_inputs_exit_2(capsys):
    code, _, err = _run(capsys, "allocate", "--model", "vgg16-cifar10", "--budget", "compression")
    assert code == 2 and "KIND=VALUE" in err
    code, _, err = _run(capsys, "allocate", "--model", "nosuchnet", "--budget", "compression=2x")
    assert code == 2 and "unknown built-in model" in err
    code, _, err = _run(capsys, "allocate", "--model", "vgg16-cifar10", "--budget", "weights=1MiB")
    assert code == 2 and "--target is required" in err


def test_table_says_where_sensitivity_came_from(capsys):
    code, out, err = _run(capsys, "allocate", "--model", "vgg16-cifar10", "--budget",
                          "compression=10x", "--bits", "2,4")
    assert code == 0, err
    assert "sensitivity: uniform" in out
    assert "BINDING" in out or "free" in out


def test_target_budgets_weights_and_latency(capsys, tmp_path):
    prof = tmp_path / "stm32h743-packed.yaml"
    prof.write_text("name: stm32h743-packed\nextends: stm32h743\ndescription: test variant with dense "
                    "sub-byte packing\nnumerics:\n  packing: true\n")
    code, out, err = _run(capsys, "allocate", "--model", "resnet18-cifar10", "--target", str(prof),
                          "--budget", "weights=3MiB", "--budget", "latency=2s", "--bits", "2,4,8",
                          "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["target"] == "stm32h743-packed"
    row = next(r for r in doc["layers"] if r["name"] == "layer1.0.conv1")
    assert set(row["phi"]) == {"2", "4", "8"} and set(row["phi"]["4"]) == {"weights", "latency"}
    assert row["phi"]["4"]["weights"] == 36864 * 4 // 8                 # packed 4-bit weights
    assert doc["totals"]["weights"] == sum(r["phi"][str(r["bits"])]["weights"] for r in doc["layers"])
    assert doc["totals"]["weights"] <= 3 * 2 ** 20
    assert "weights" in doc["binding"] and doc["duals"]["weights"] > 0
    code, out, err = _run(capsys, "allocate", "--model", "resnet18-cifar10", "--target", str(prof),
                          "--budget", "weights=1MiB", "--bits", "2,4,8")
    assert code == 1 and "Traceback" not in err
    assert "weights: budget 1 MiB, smallest feasible 2.6" in err           # all-2-bit + 16-bit ends


def test_tflite_model_layers(capsys):
    path = "/work/shared/models/mlperf_tiny/kws_ref_model.tflite"
    code, out, err = _run(capsys, "allocate", "--model", path, "--budget", "compression=6x",
                          "--bits", "2,4,8", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    # DS-CNN (KWS): conv + 4 × (depthwise + pointwise) + FC = 10 weighted layers, 22,016 weights
    assert len(doc["layers"]) == 10
    assert doc["layers"][0]["bits"] == 16 and doc["layers"][-1]["bits"] == 16
    total_w = sum(r["phi"][str(r["bits"])]["compression"] / r["bits"] for r in doc["layers"])
    assert total_w == 22016
    assert 32 * total_w / doc["totals"]["compression"] >= 6
