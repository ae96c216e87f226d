"""Report folder: files exist, agree with each other, HTML is self-contained; table shows margins."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd

from hwsim.cli import main

REPO = Path(__file__).resolve().parent.parent
RESNET8 = str(REPO / "tests" / "data" / "mlperf_tiny" / "pretrainedResnet_quant.tflite")


def test_report_folder(tmp_path, capsys):
    out = tmp_path / "rep"
    try:
        main(["simulate", "--model", RESNET8, "--target", "stm32l4r5", "--out", str(out),
              "--budget", "sram=40KiB"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    table = capsys.readouterr().out
    for name in ("report.md", "report.html", "ops.csv", "summary.json", "layers.png", "memory.png",
                 "roofline.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in ("layers.png", "memory.png", "roofline.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    ops = pd.read_csv(out / "ops.csv")
    assert len(ops) == len(summary["ops"])
    assert abs(ops["latency_s"].sum() - sum(r["latency_s"] for r in summary["ops"])) < 1e-12
    # the 48 KiB arena does not fit a 40 KiB budget: FAIL with a negative margin, exit 1
    sram = [c for c in summary["compliance"] if c["budget"] == "sram"][0]
    assert not sram["pass"] and sram["margin"] == 40 * 1024 - sram["value"] < 0
    assert code == 1 and "FAIL  sram" in table and "RESULT: FAIL (sram)" in table
    html = (out / "report.html").read_text()
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 3
    assert base64.b64decode(imgs[0])[:4] == b"\x89PNG"
    assert 'src="http' not in html and "<link" not in html        # self-contained
    md = (out / "report.md").read_text()
    assert "FAIL" in md and "![memory.png](memory.png)" in md
