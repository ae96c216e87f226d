"""Quick runs of the ZOQO workload runners and the memory accounting."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hwsim.errors import HwsimError
from hwsim.trace import TensorInfo, Trace
from hwsim.workloads import get_runner

ROOT = Path(__file__).resolve().parents[1]


def _spec(name: str) -> dict:
    return yaml.safe_load((ROOT / "workloads" / name).read_text())


def test_zoqo_train_quick(tmp_path, monkeypatch):
    monkeypatch.setenv("HWSIM_CACHE", str(tmp_path / "cache"))
    spec = _spec("zoqo-train-digits.yaml")
    run = get_runner("zoqo-train")(spec, None, {"quick": True, "out_dir": tmp_path, "progress": False})
    assert run.repeat == {"step": 20}
    v = run.metrics["variants"]
    assert {"zoqo@b8", "zoqo@b4", "sign/fp", "sign/q-post@b8", "sign/q-post@b4"} <= set(v)
    assert all(0.0 <= m["test_accuracy"] <= 1.0 for m in v.values())
    fl = run.trace.float_ops_by_phase()
    assert fl["perturb"] == 0 and fl["update"] == 0 and fl["compare"] > 0
    assert (tmp_path / "zoqo_train_metrics.json").is_file()
    assert "ZO-Sign" in run.metrics["table"]


def test_zoqo_train_bad_field():
    with pytest.raises(HwsimError, match="unknown"):
        get_runner("zoqo-train")({"algorithm": "zoqo-train", "learning_rate": 1}, None, {})


def test_zoqo_lora_quick():
    run = get_runner("zoqo-lora")(_spec("zoqo-lora-opt1.3b.yaml"), None, {"quick": True})
    fl = run.trace.float_ops_by_phase()
    assert fl["perturb"] == 0 and fl["update"] == 0 and fl["forward_plus"] == 0
    assert run.metrics["lora_params"] > 0 and run.repeat == {"step": 10}
    # every LoRA tensor gets exactly one update op
    upd = [e for e in run.trace.filter(phase="update").ops() if e.op == "update_codes"]
    lora_names = {e.tensor.name for e in run.trace.filter(phase="perturb").events
                  if getattr(e, "tensor", None) is not None and e.tensor.kind == "param"
                  and e.tensor.name.endswith((".lora_A", ".lora_B"))}
    assert len(lora_names) == 2 * 2 * 2          # tiny config: 2 layers × {q, v} × {A, B}
    assert sorted(e.reads[0].name for e in upd) == sorted(lora_names)


def test_zoqo_lora_opt13b_param_count():
    from hwsim.algorithms.lora import opt_lora_step_trace
    tr = opt_lora_step_trace(bits=8)
    # 24 layers × {q, v} × (A: 8×2048 + B: 2048×8)
    assert tr.meta["lora_params"] == 24 * 2 * 2 * 8 * 2048


def test_memory_quick_and_peak_walk(tmp_path):
    run = get_runner("zoqo-memory")(_spec("zoqo-memory.yaml"), None, {"quick": True, "out_dir": tmp_path})
    rows = {r["method"]: r for r in run.metrics["memory_table"]}
    assert set(rows) == {"FP", "QAT", "ZOQO"}
    assert rows["ZOQO"]["peak_bytes"] < rows["FP"]["peak_bytes"]
    assert (tmp_path / "zoqo_memory.png").is_file()


def test_peak_from_trace_hand_made():
    from hwsim.algorithms.zoqo_memory import peak_from_trace
    t = Trace()
    a, b, c = (TensorInfo("a", (10,), 8), TensorInfo("b", (4,), 32), TensorInfo("c", (3,), 4))
    t.alloc(a); t.alloc(b); t.free(a); t.alloc(c); t.free(b)
    pk = peak_from_trace(t)
    assert pk.peak_bits == 10 * 8 + 4 * 32          # a and b live together
    assert pk.peak_bytes == 26


def test_fp_backprop_trace_counts_gradients():
    from hwsim.algorithms.zoqo_memory import backprop_trace, peak_from_trace
    dims = [6, 5, 3]
    tr = backprop_trace(dims, 2, mode="fp")
    names = {t[0] for t in peak_from_trace(tr).tensors}
    assert {"dw0", "dw1", "db0", "db1", "w0", "w1"} <= names
    d = 6 * 5 + 5 + 5 * 3 + 3
    assert peak_from_trace(tr).peak_bits >= 2 * d * 32     # weights + gradients in fp32 at least


def test_lora_step_trace_allocates_each_tensor_once():
    """Frozen weights and adapters are allocated once; both queries reuse them (no double alloc)."""
    from hwsim.algorithms.lora import opt_lora_step_trace
    from hwsim.trace import AllocEvent, FreeEvent

    tr = opt_lora_step_trace(bits=8, config="tiny")
    live: set[str] = set()
    for e in tr.events:
        if isinstance(e, AllocEvent):
            assert e.tensor.name not in live, e.tensor.name
            live.add(e.tensor.name)
        elif isinstance(e, FreeEvent):
            live.discard(e.tensor.name)
