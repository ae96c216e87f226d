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
