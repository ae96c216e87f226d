"""The TFLite-Micro wheel as a memory oracle for tests: its RecordingMicroAllocator's report.

Why a subprocess: the C++ allocator prints to the process's stderr, so one child process runs every
model and the parent parses its report.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

_TFLM_SCRIPT = r"""
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
for path in sys.argv[1:]:
    it = runtime.Interpreter.from_file(path, arena_size=1 << 21)
    d = it.get_input_details(0)
    it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
    it.invoke()
    print("MODEL", path, file=sys.stderr, flush=True)
    it.print_allocations()
"""


def tflm_allocations(paths: list[str]) -> dict[str, dict[str, int]]:
    """Per model file stem: 'total', 'head' (non-persistent arena), 'tail' (persistent) and each
    recorded category's used bytes."""
    out = subprocess.run([sys.executable, "-c", _TFLM_SCRIPT, *paths], capture_output=True, text=True,
                         timeout=120, check=True).stderr
    rec: dict[str, dict[str, int]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("MODEL "):
            current = Path(line.split(" ", 1)[1]).stem
            rec[current] = {}
            continue
        m = re.search(r"Arena allocation (total|head|tail) (\d+) bytes", line)
        if m and current:
            rec[current][m.group(1)] = int(m.group(2))
        m = re.search(r"'([^']+)' used (\d+) bytes", line)
        if m and current:
            rec[current][m.group(1)] = int(m.group(2))
    assert sorted(rec) == sorted(Path(p).stem for p in paths), out
    return rec
