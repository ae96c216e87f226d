"""CLI start-up: wall and CPU time of short `hwsim` commands, each a fresh process.

Figure: median wall time (and median CPU time of the child, user + sys) of `hwsim --help`,
`hwsim emulate --help` (the argparse command that never imports typer), `hwsim targets list`
and `hwsim targets show stm32h743`. Baseline measured in the same run,
interleaved with the commands so machine load hits all alike: `python -c pass` (interpreter
start-up alone). The ratio says how many interpreter start-ups a command costs.

It also cross-checks the unit parser's regex fast path (hwsim/units.py) against pint on every
quantity in targets/*.yaml (all dimensions, both entry points), so a speed-up can never change a
parsed number or an error message unnoticed.

    python benchmarks/bench_startup.py [repeats]
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: `python -m hwsim` run in the repo root: the same code as the `hwsim` entry point, but always the
#: package next to this script (so a copy of the repo can be compared with this one).
HWSIM = [sys.executable, "-m", "hwsim"]
COMMANDS: dict[str, list[str]] = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "hwsim --help": HWSIM + ["--help"],
    "hwsim emulate --help": HWSIM + ["emulate", "--help"],
    "hwsim targets list": HWSIM + ["targets", "list"],
    "hwsim targets show stm32h743": HWSIM + ["targets", "show", "stm32h743"],
}


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_once(cmd: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one run; a failing command aborts the benchmark."""
    c0, t0 = _child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "COLUMNS": "100"})
    wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, cpu


def check_fast_path() -> int:
    """Parse every quantity string of every profile both ways; return how many were compared."""
    import yaml

    sys.path.insert(0, str(REPO))
    import hwsim.units as units

    if not hasattr(units, "_fast_parse"):
        return 0
    texts: set[str] = set()

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str) and units._NUMBER_RE.match(x):
            texts.add(x)

    for path in sorted((REPO / "targets").rglob("*.yaml")):
        walk(yaml.safe_load(path.read_text()))
    extra = {"512 KiB", "8 bit", "20 Gb/s", "3.35 TB/s", "2 /cycle", "10 µs", "10 μs", "1e-3 J", "-1 KiB",
             "1.5 B", "640 KB", "25 GB/s", "256KiB", "0.5 pJ/B", "1e999 B", "1e-999 s"}
    n = 0
    for text in sorted(texts | extra):
        for dim in units.DIMENSIONS:
            fast = _outcome(lambda: units.parse_quantity(text, dim))
            slow = _outcome(lambda: _via_pint(units, text, dim))
            if fast != slow:
                sys.exit(f"unit fast path disagrees with pint on {text!r} as {dim}: {fast} vs {slow}")
            n += 1
    return n


def _outcome(fn):
    try:
        return ("ok", fn())
    except Exception as err:  # noqa: BLE001 - the message is what is compared
        return (type(err).__name__, str(err))


def _via_pint(units, text: str, dim: str) -> float:
    saved = units._fast_parse
    units._fast_parse = lambda *_: None          # force the pint path
    try:
        return units.parse_quantity(text, dim)
    finally:
        units._fast_parse = saved


def main(repeats: int = 7) -> None:
    for cmd in COMMANDS.values():                # warm the OS file cache / .pyc files
        time_once(cmd)
    walls: dict[str, list[float]] = {k: [] for k in COMMANDS}
    cpus: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(repeats):
        for label, cmd in COMMANDS.items():      # interleaved: load drifts hit every command alike
            w, c = time_once(cmd)
            walls[label].append(w)
            cpus[label].append(c)
    base_w = statistics.median(walls["python -c pass (baseline)"])
    base_c = statistics.median(cpus["python -c pass (baseline)"])
    print(f"CLI start-up, median of {repeats} fresh processes (load avg {os.getloadavg()[0]:.1f})")
    print(f"  {'command':32s} {'wall':>9s} {'cpu':>9s}   wall/baseline  cpu/baseline")
    for label in COMMANDS:
        w, c = statistics.median(walls[label]), statistics.median(cpus[label])
        print(f"  {label:32s} {w * 1e3:7.0f}ms {c * 1e3:7.0f}ms   {w / base_w:9.1f}x   {c / base_c:9.1f}x")
    n = check_fast_path()
    print(f"unit fast path == pint on {n} (quantity, dimension) pairs from targets/*.yaml")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
