"""Report presentation: unique readable layer labels, axis units from the data's magnitude,
annotations inside the axes, bar head room, and sweep bit-diff rows that carry every budget."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from hwsim.report.plots import axis_unit, layer_breakdown, memory_timeline  # noqa: E402
from hwsim.report.table import distinctive_name, layer_labels, render_table  # noqa: E402
from hwsim.sweep.views import bit_diffs, format_budget, write_report  # noqa: E402


# ---- (1) layer labels --------------------------------------------------------------------------

def _sim(model: str):
    from hwsim.cli.simulate import _model_trace
    from hwsim.cost.simulation import simulate_trace
    from hwsim.target import load_target

    target = load_target("stm32l4r5")
    _, trace = _model_trace(model, target)
    return simulate_trace(trace, target, name=model)


# MobileNetV1-style MLPerf Tiny models: Keras names the n-th depthwise layer depthwise_conv2d_<n-1>
@pytest.mark.parametrize("model,n_depthwise", [("vww", 13), ("kws", 4)])
def test_layer_labels_unique_and_name_the_layer(model, n_depthwise):
    sim = _sim(model)
    ops, layers = sim.cost.ops, list(sim.cost.by_layer.index)
    labels = layer_labels(ops)
    assert set(labels) == set(layers)
    assert len(set(labels.values())) == len(layers)              # unique
    for layer, label in labels.items():
        first = ops.index[ops["layer"] == layer][0]
        pos = ops.index.get_loc(first)
        assert label.startswith(f"#{pos} ")                        # first op index, as in ops.csv
        assert "ReadVariableOp" not in label and ";" not in label and len(label) <= 40
    dw = [labels[l] for l in layers if set(ops.loc[ops["layer"] == l, "op"]) == {"depthwise_conv2d"}]
    assert len(dw) == n_depthwise
    names = {re.sub(r"^#\d+ ", "", s) for s in dw}
    assert names == {"depthwise_conv2d"} | {f"depthwise_conv2d_{k}" for k in range(1, n_depthwise)}
    table = render_table(sim)
    assert "ReadVariableOp/resource1" not in table and f"#{len(ops) - 1} softmax" not in table.split("top")[0]


def test_layer_names_stay_complete_in_summary(tmp_path):
    from hwsim.report import write_report as write_sim_report

    sim = _sim("kws")
    files = write_sim_report(sim, tmp_path / "r")
    summary = json.loads(files["summary.json"].read_text())
    full = [r["layer"] for r in summary["by_layer"]]
    assert any(name.endswith("BiasAdd/ReadVariableOp/resource1") for name in full)
    assert set(pd.read_csv(files["ops.csv"])["layer"]) == set(full)


def test_zoqo_query_prefixes_are_readable():
    assert distinctive_name("-l20") == "l20 (θ−)"
    assert distinctive_name("+l16") == "l16 (θ+)"
    assert distinctive_name("loss-") == "loss (θ−)"
    ops = pd.DataFrame({"layer": ["+l0", "+l0", "-l0", "-l0", "sigma"],
                        "op": ["layernorm", "matmul", "layernorm", "matmul", "compare_losses"]})
    assert layer_labels(ops) == {"+l0": "#0 l0 (θ+), 2 ops", "-l0": "#2 l0 (θ−), 2 ops",
                                 "sigma": "#4 compare_losses sigma"}


# ---- (2) units, (3) annotations, (4) bar margin ---------------------------------------------------

@pytest.mark.parametrize("value,dim,unit,scale", [
    (3.2e-9, "time", "ns", 1e-9), (2.5e-7, "time", "ns", 1e-9), (2.5e-6, "time", "µs", 1e-6), (4.5e-3, "time", "ms", 1e-3),
    (4.5, "time", "s", 1.0), (7e-8, "energy", "nJ", 1e-9), (6.5e-5, "energy", "µJ", 1e-6),
    (1.2e3, "energy", "kJ", 1e3), (3e6, "energy", "MJ", 1e6), (500, "size", "B", 1.0),
    (47696, "size", "KiB", 1024.0), (1738106240, "size", "GiB", 2.0 ** 30),
    (0.0, "size", "B", 1.0), (0.0, "time", "s", 1.0)])
def test_axis_unit_follows_magnitude(value, dim, unit, scale):
    assert axis_unit(value, dim) == (unit, scale)


@pytest.fixture
def captured(monkeypatch):
    """The last figure a plot function saved (the functions close nothing we need)."""
    from matplotlib.figure import Figure

    figs = []
    real = Figure.savefig

    def save(self, *a, **kw):
        figs.append(self)
        return real(self, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", save)
    return figs


def _render(fig):
    """Draw on an Agg canvas (the plots use a canvas-less Figure) and return its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _fake_sim(scale_s: float, scale_j: float, live: list[float], cap: float):
    n = 6
    ops = pd.DataFrame({
        "layer": [f"+l{i}" for i in range(n)], "op": ["matmul"] * n,
        "compute_s": [scale_s * (i + 1) for i in range(n)], "memory_s": [0.0] * n,
        "overhead_s": [0.0] * n, "repeat": [1] * n,
        "compute_energy_j": [scale_j * (i + 1) for i in range(n)], "memory_energy_j": [0.0] * n,
        "static_energy_j": [0.0] * n})
    tl = pd.DataFrame({"live_hbm": live})
    mem = SimpleNamespace(timeline=tl, peak_step={"hbm": int(pd.Series(live).idxmax())},
                          peak_tensors={"hbm": [("+logits", 0, 205914112), ("embed_tokens", 0, 102957056)]})
    target = SimpleNamespace(name="dev", memories={"hbm": SimpleNamespace(capacity_bytes=cap)})
    return SimpleNamespace(name="w", target=target, memory=mem, cost=SimpleNamespace(ops=ops, engine="analytic"))


def test_layers_plot_units_no_offset_and_head_room(tmp_path, captured):
    sim = _fake_sim(0.75, 2e2, [1.0], 1.0)          # 4.5 s and 1.2 kJ per layer at most
    layer_breakdown(sim, tmp_path / "l.png")
    fig = captured[-1]
    a1, a2 = fig.axes[:2]
    _render(fig)
    assert a1.get_xlabel() == "latency (s)" and a2.get_xlabel() == "energy (kJ)"
    for ax, top in ((a1, 4.5), (a2, 1.2)):
        assert ax.xaxis.get_offset_text().get_text() == ""
        assert all("e" not in t.get_text() for t in ax.get_xticklabels())
        assert ax.get_xlim()[1] > top * 1.03                   # the longest bar leaves a gap
    labels = [t.get_text() for t in a1.get_yticklabels()]
    assert "#5 matmul l5 (θ+)" in labels


def test_memory_plot_gib_and_annotation_inside(tmp_path, captured):
    live = [1.29e9] * 10 + [1.5e9] * 9 + [1.74e9, 1.3e9]       # peak next to the right edge
    memory_timeline(_fake_sim(1e-3, 1e-3, live, 80 * 2 ** 30), tmp_path / "m.png")
    fig = captured[-1]
    ax = fig.axes[0]
    renderer = _render(fig)
    assert ax.get_ylabel() == "GiB" and ax.yaxis.get_offset_text().get_text() == ""
    box = ax.get_window_extent(renderer)
    notes = [t for t in ax.texts if t.get_text().startswith("peak")]
    assert notes and "GiB" in notes[0].get_text()
    for note in notes:
        ext = note.get_window_extent(renderer)
        assert box.x0 <= ext.x0 and ext.x1 <= box.x1 and box.y0 <= ext.y0 and ext.y1 <= box.y1


def test_memory_plot_low_peak_label_stays_above_axis(tmp_path, captured):
    # bmpq-digits on stm32l4r5: sram peaks high early, flash peaks near the bottom mid-run
    sim = _fake_sim(1e-3, 1e-3, [180e3, 390e3, 230e3, 210e3, 380e3, 180e3], 640 * 1024)
    sim.memory.timeline["live_flash"] = [0.0, 5e3, 24e3, 24e3, 5e3, 0.0]
    sim.memory.peak_step["flash"] = 2
    sim.memory.peak_tensors["flash"] = [("conv3.weight.q", 0, 9216), ("fc1.weight.q", 0, 8192)]
    sim.target.memories["flash"] = SimpleNamespace(capacity_bytes=2 * 2 ** 20)
    memory_timeline(sim, tmp_path / "m.png")
    fig = captured[-1]
    ax = fig.axes[0]
    renderer = _render(fig)
    box = ax.get_window_extent(renderer)
    notes = [t for t in ax.texts if t.get_text().startswith("peak")]
    assert len(notes) == 2 and ax.get_ylabel() == "KiB"
    for note in notes:
        ext = note.get_window_extent(renderer)
        assert box.y0 <= ext.y0 and ext.y1 <= box.y1 and box.x0 <= ext.x0 and ext.x1 <= box.x1


# ---- (5) sweep bit diffs -------------------------------------------------------------------------

def _sweep_frame() -> pd.DataFrame:
    rows = []
    layers = ["a", "b"]
    # two latency budgets; along the weight axis the widths change differently in each
    for lat, widths in ((2.5e-4, [[2, 2], [4, 2]]), (1e-3, [[2, 2], [8, 8]])):
        for w, bits in zip((6946816.0, 11272192.0), widths):
            rows.append({"point_index": len(rows), "target": "t", "model": "m", "status": "ok",
                         "budget_weights": w, "budget_latency": lat, "bits": bits, "layers": layers,
                         "objective": float(sum(bits)), "total_weights": w * 0.9, "total_latency": lat * 0.9})
    return pd.DataFrame(rows)


def test_bit_diff_rows_carry_the_other_budgets():
    diffs = bit_diffs(_sweep_frame(), "budget_weights")
    assert len(diffs) == 2
    assert sorted(diffs["budget_latency"]) == [2.5e-4, 1e-3]
    by_lat = dict(zip(diffs["budget_latency"], diffs["changes"]))
    assert by_lat[2.5e-4] == "a: 2→4" and by_lat[1e-3] == "a: 2→8; b: 2→8"


def test_budgets_in_user_units():
    assert format_budget("weights", 6946816.0) == "6.625 MiB"
    assert format_budget("activations", 300 * 1024) == "300 KiB"
    assert format_budget("latency", 2.5e-4) == "0.25 ms"
    assert format_budget("energy", 1.2e-3) == "1.2 mJ"
    assert format_budget("latency", float("nan")) == ""


def test_sweep_report_shows_budgets_in_user_units(tmp_path):
    frame = _sweep_frame()
    for col in ("bits", "layers"):
        frame[col] = frame[col].map(json.dumps)
    frame.to_parquet(tmp_path / "results.parquet")
    md = write_report(tmp_path, "s").read_text()
    section = md.split("## Bit-width changes")[1]
    assert "0.25 ms" in section and "1 ms" in section and "6.625 MiB" in section and "10.75 MiB" in section
    assert "6946816" not in md and "0.00025" not in md
    csv = pd.read_csv(tmp_path / "bit_diffs.csv")
    assert "budget_latency" in csv.columns and csv["budget_latency"].notna().all()
