"""Φ tables come from the memory and cost models of a real profile (no separate formula)."""
from __future__ import annotations

import math

import pytest

from hwsim.cost.analytic import cost_trace
from hwsim.errors import HwsimError
from hwsim.ilp import solve_allocation
from hwsim.memory import analyze
from hwsim.models.layer_specs import digits_cnn, resnet18_cifar
from hwsim.phi import layer_forward_trace, parse_budget, phi_table
from hwsim.target import load_target
from hwsim.trace import TensorInfo, Trace

BASE = "stm32h743"


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """The shipped MCU with `numerics.packing: true` (only that flag differs)."""
    folder = tmp_path_factory.mktemp("targets")
    path = folder / f"{BASE}-packed.yaml"
    path.write_text(f"name: {BASE}-packed\nextends: {BASE}\ndescription: test variant with dense "
                    "sub-byte packing\nnumerics:\n  packing: true\n")
    return load_target(path)


@pytest.fixture(scope="module")
def plain():
    return load_target(BASE)


def test_weight_bytes_follow_the_targets_storage_rule(packed, plain):
    model = resnet18_cifar(10)
    for target, is_packed in ((packed, True), (plain, False)):
        assert target.numerics.packing is is_packed
        phi = phi_table(model, target, bits=(2, 4, 8), resources=("weights",))
        cont = target.numerics.container_bits
        for spec in model.layers:
            for b in phi.candidates[spec.name]:
                if is_packed:
                    expect = math.ceil(spec.weight_count * b / 8)
                else:      # each value in the smallest container holding it
                    expect = spec.weight_count * math.ceil(b / cont) * cont // 8
                expect += 4 * spec.bias_count
                assert phi.values[spec.name][b]["weights"] == expect, (spec.name, b)
    # fixed first/last layers list only their width
    assert phi.candidates["conv1"] == (16,) and phi.candidates["fc"] == (16,)


def test_latency_and_energy_equal_the_cost_model_on_the_layer_alone(plain):
    model = digits_cnn()
    phi = phi_table(model, plain, bits=(2, 4, 8), resources=("latency", "energy"))
    for spec in model.layers:
        for b in phi.candidates[spec.name]:
            res = cost_trace(layer_forward_trace(spec, b), plain)
            overhead = plain.runtime_efficiency.per_inference_overhead_s
            assert phi.values[spec.name][b]["latency"] == pytest.approx(res.latency_s - overhead, rel=1e-12)
            assert phi.values[spec.name][b]["energy"] == pytest.approx(
                res.energy_j - plain.power.static_W * overhead, rel=1e-12)


def test_weight_total_equals_memory_peak_of_the_deployed_model(packed):
    """Σ Φ_weights of an ILP assignment = peak bytes of all weights held at once (memory model)."""
    model = resnet18_cifar(10)
    phi = phi_table(model, packed, bits=(2, 4, 8), resources=("weights",))
    hi = phi.total({n: max(phi.candidates[n]) for n in phi.layers}, "weights")
    alloc = solve_allocation(phi, {n: 1.0 for n in phi.layers}, {"weights": 0.5 * hi})
    trace = Trace()
    for spec in model.layers:
        b = alloc.bits[spec.name]
        trace.alloc(TensorInfo(f"{spec.name}.w", spec.weight_shape, b, "weight", f"int{b}"))
        if spec.bias:
            trace.alloc(TensorInfo(f"{spec.name}.b", (spec.out_channels,), 32, "bias", "int32"))
    trace.op("noop", "noop", [], [], {})
    peak = analyze(trace, packed).peak_bytes[packed.placement.weights]
    assert alloc.totals["weights"] == peak <= 0.5 * hi


def test_activation_peak_is_a_per_layer_max(packed):
    model = digits_cnn()
    phi = phi_table(model, packed, bits=(2, 4), resources=("activations",))
    assert phi.aggregate["activations"] == "max"
    conv2 = model.layer("conv2")
    # input and output of conv2 at 4 bits, packed: (16 + 32) channels × 8 × 8 × 4 bits
    assert phi.values["conv2"][4]["activations"] == (16 + 32) * 64 * 4 // 8
    bits = {"conv1": 16, "conv2": 2, "conv3": 4, "fc1": 4, "fc2": 16}
    assert phi.total(bits, "activations") == max(phi.values[n][bits[n]]["activations"] for n in bits)
    assert conv2.macs == 16 * 32 * 9 * 64


def test_budget_parsing_and_errors(packed):
    phi = phi_table(digits_cnn(), packed, bits=(2, 4), resources=("weights", "latency", "compression"))
    assert parse_budget("weights", "12KiB", phi) == 12 * 1024
    assert parse_budget("latency", "2ms", phi) == pytest.approx(2e-3)
    assert parse_budget("compression", "10x", phi) == pytest.approx(32 * 22800 / 10)
    with pytest.raises(HwsimError, match="latency"):
        parse_budget("latency", "2 KiB", phi)
    with pytest.raises(HwsimError, match="unknown resource"):
        phi_table(digits_cnn(), packed, resources=("bandwidth",))
    with pytest.raises(HwsimError, match="needs a target"):
        phi_table(digits_cnn(), None, resources=("weights",))
