"""The b-bit integer attack model against a pure-Python integer reference, and quick runs of the
`zoqo-attack` workload runner (table layout, artifacts, the one-query trace)."""
from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn as nn

from hwsim.algorithms.attack_qmodel import IntegerClassifier, quantize_multiplier, rounding_rshift
from hwsim.errors import WorkloadError
from hwsim.workloads import get_runner


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny matrices: one intra-op thread is ~40x faster than two on a busy 2-core box (measured)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---- pure-Python integer reference -------------------------------------------------------------


def _rshift_round(p: int, n: int) -> int:
    """round(p / 2^n), half away from zero, on Python ints."""
    if n == 0:
        return p
    mag = (abs(p) + (1 << (n - 1))) >> n
    return -mag if p < 0 else mag


def _ref_forward(q: IntegerClassifier, codes: list) -> list[float]:
    """Layer by layer on nested Python lists of ints (C×H×W or flat)."""
    x = codes
    for L in q.layers:
        if L.flatten_before:
            x = [v for ch in x for row in ch for v in row] if isinstance(x[0], list) else x
        w = L.w_codes.tolist()
        bias = L.b_codes.tolist() if L.b_codes is not None else None
        if L.kind == "linear":
            acc = [sum((xi - L.in_zero) * wi for xi, wi in zip(x, w[o])) + (bias[o] if bias else 0)
                   for o in range(len(w))]
        else:
            cin, hh, ww = len(x), len(x[0]), len(x[0][0])
            k, pad = len(w[0][0]), L.conv_args["padding"][0]

            def at(c, i, j):
                return x[c][i][j] - L.in_zero if 0 <= i < hh and 0 <= j < ww else 0
            acc = [[[sum(at(c, i + di - pad, j + dj - pad) * w[o][c][di][dj]
                         for c in range(cin) for di in range(k) for dj in range(k)) + (bias[o] if bias else 0)
                     for j in range(ww)] for i in range(hh)] for o in range(len(w))]
        if L.out_scale is None:
            s = (L.in_scale * L.w_scale).tolist()
            return [float(a) * s[o] for o, a in enumerate(acc)]
        m0, sh = L.m0.tolist(), L.shift.tolist()
        lo, hi = (L.out_zero if L.relu else 0), 2 ** L.out_bits - 1

        def rq(a, o):
            return min(max(L.out_zero + _rshift_round(a * m0[o], sh[o]), lo), hi)
        if L.kind == "linear":
            x = [rq(a, o) for o, a in enumerate(acc)]
        else:
            x = [[[rq(a, o) for a in row] for row in plane] for o, plane in enumerate(acc)]
            if L.pool is not None:
                x = [[[max(pl[2 * i][2 * j], pl[2 * i][2 * j + 1], pl[2 * i + 1][2 * j], pl[2 * i + 1][2 * j + 1])
                       for j in range(len(pl[0]) // 2)] for i in range(len(pl) // 2)] for pl in x]
    raise AssertionError("no final layer")


@pytest.mark.parametrize("bits", [8, 4])
def test_integer_mlp_and_cnn_match_python_reference(bits):
    torch.manual_seed(1)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8, 3))
    x = torch.rand(5, 1, 4, 4)
    for model in (mlp, cnn):
        q = IntegerClassifier(model, torch.rand(64, 1, 4, 4), bits=bits, lb=0.0, ub=1.0)
        codes = q.input_codes(x)
        got = q.logits_from_codes(codes)
        for n in range(x.shape[0]):
            ref = _ref_forward(q, codes[n].tolist())
            assert got[n].tolist() == ref          # same integer accumulators, same final scaling
        # sanity against the float model: argmax agrees on most inputs at 8 bits
        if bits == 8:
            with torch.no_grad():
                agree = (model(x).argmax(1) == got.argmax(1)).float().mean()
            assert agree >= 0.8


def test_quantize_multiplier_and_rounding_shift():
    for m in (0.0003, 0.0123, 0.5, 0.99999, 1.7):
        m0, n = quantize_multiplier(m)
        assert 2 ** 30 <= m0 < 2 ** 31
        assert abs(m0 * 2.0 ** -n - m) <= m * 2 ** -30
    p = torch.tensor([-7, -6, -5, -4, 5, 6, 7, 123456789], dtype=torch.int64)
    n = torch.tensor([1, 2, 1, 3, 1, 2, 0, 10], dtype=torch.int64)
    assert rounding_rshift(p, n).tolist() == [_rshift_round(a, b) for a, b in zip(p.tolist(), n.tolist())]


# ---- the workload runner -------------------------------------------------------------------------


def _quick_spec(**kw):
    spec = {"name": "t-attack", "algorithm": "zoqo-attack", "dataset": "digits", "bits": [4],
            "methods": ["signhunter", "randsign"], "models": ["natural", "adversarial"],
            "quick": {"examples": 8, "max_loss_queries": 60, "adv_epochs": 1, "train_epochs": 3}}
    spec.update(kw)
    return spec


def test_runner_quick_table_and_trace(tmp_path):
    run = get_runner("zoqo-attack")(_quick_spec(), None,
                                    {"quick": True, "out_dir": tmp_path / "out", "cache_dir": tmp_path / "c"})
    rows = run.metrics["rows"]
    assert [(r["dataset"], r["bits"], r["method"]) for r in rows] == [("digits", 4, "randsign"),
                                                                     ("digits", 4, "signhunter")]
    cols = [f"{m}_{e}" for m in ("natural", "adversarial")
            for e in ("fp", "quant_model", "post_quant", "zoqo")]
    counted = {(c["model"], c["method"], c["env"]): c["successes"] + c["failures"] for c in run.metrics["cells"]}
    for r in rows:
        for c in cols:
            model, env = c.split("_", 1)
            if counted[(model, r["method"], env)] == 0:     # no image correct at the start: rate undefined
                assert math.isnan(r[c]) and model == "adversarial"   # (the 1-epoch quick robust model)
            else:
                assert 0.0 <= r[c] <= 1.0
    with open(run.artifacts["table_csv"]) as fh:
        header = next(csv.reader(fh))
    assert header == ["dataset", "bits", "method"] + cols
    md = run.artifacts["table_md"].read_text()
    assert "nat. ZOQO" in md and "adv. Quant. Model" in md and md.count("\n") == 4
    # every cell's counts add up to the examples correctly classified at the start (≤ 8); the
    # natural model classifies most of them correctly
    for cell in run.metrics["cells"]:
        assert 0 <= cell["successes"] + cell["failures"] <= 8
        if cell["model"] == "natural":
            assert cell["successes"] + cell["failures"] >= 5
    # the trace of one ZOQO query: integer-only perturbation and forward, FP only in the loss
    trace = run.trace
    fl = trace.float_ops_by_phase()
    assert fl["perturb"] == 0 and fl["forward"] == 0 and fl["loss"] > 0
    weights = {e.tensor.name: math.prod(e.tensor.shape) for e in trace.events
               if type(e).__name__ == "AllocEvent" and e.tensor.kind == "weight"}
    macs = sum(e.macs for e in trace.ops())
    assert macs == sum(weights.values())          # an MLP: one MAC per weight per image
    assert all(fmt == "int4" for e in trace.ops() for (cls, fmt) in e.work if cls == "mac")


def test_runner_rejects_bad_fields(tmp_path):
    runner = get_runner("zoqo-attack")
    with pytest.raises(WorkloadError, match="epsilonn"):
        runner(_quick_spec(epsilonn=0.3), None, {"quick": True, "out_dir": tmp_path})
    with pytest.raises(WorkloadError, match="methods"):
        runner(_quick_spec(methods=["zoo"]), None, {"quick": True, "out_dir": tmp_path})
    with pytest.raises(WorkloadError, match="dataset"):
        runner(_quick_spec(dataset="svhn"), None, {"quick": True, "out_dir": tmp_path})
