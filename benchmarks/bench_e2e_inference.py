"""End-to-end emulated inference of the MLPerf Tiny models vs LiteRT's reference kernels.

Both sides are measured as whole processes (interpreter start, imports, model load, 512
inferences, writing the outputs): `hwsim emulate MODEL --inputs X.npy --out Y.npy --runtime
litert-ref` versus a Python process running LiteRT's interpreter with the BUILTIN_REF op resolver
on the same 512 inputs. The outputs of both are compared (they must be identical). Each side is
timed `--repeats` times, interleaved, and the best wall time and the best CPU time (user+sys of
the child, less sensitive to other load on a shared machine) are kept.

Which `hwsim`: the console script that belongs to the running interpreter
(`Path(sys.executable).parent / "hwsim"`, what a venv user runs), else `python -m hwsim`; never
`shutil.which("hwsim")`, which may be a pyenv bash shim that adds its own start-up.

Bytecode (default: both sides compiled): numpy and LiteRT load the .pyc files pip wrote at install
time; an editable hwsim install in an environment that sets `PYTHONDONTWRITEBYTECODE=1` (as this
sandbox does) would recompile hwsim's modules from source in every process (~40 ms). So by default
both children run as a default Python runs them — bytecode caching on, into a temporary
`PYTHONPYCACHEPREFIX` (the repository is not written), filled by one untimed warm-up run per side —
i.e. both sides with compiled bytecode. `--no-bytecode-cache` times the environment as it is
(hwsim from source, LiteRT compiled) and prints that condition in its header.

BLAS threads: `hwsim emulate` sets OPENBLAS_NUM_THREADS=1 (unless already set) before importing
numpy, so it never starts OpenBLAS's thread pool; the LiteRT script runs as written, and its
`import numpy` does start it (tens of ms on the 2-core dev machine). To give both sides one
thread, run with `OPENBLAS_NUM_THREADS=1` in the environment (ad01 is then at parity, ~1.0).

Run: python benchmarks/bench_e2e_inference.py [--n 512] [--repeats 9] [--models kws,vww]
     [--no-bytecode-cache]
Prints one line per model with both times and the ratios hwsim / LiteRT (target ≤ 1.0).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = {"ad01": "ad01_int8", "kws": "kws_ref_model", "resnet8": "pretrainedResnet_quant",
          "sww": "str_ww_ref_model", "vww": "vww_96_int8"}

LITERT_SCRIPT = r"""
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
model, xin, yout = sys.argv[1:4]
x = np.load(xin)
it = Interpreter(model_path=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
it.allocate_tensors()
i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
ys = []
for row in x:
    it.set_tensor(i, row)
    it.invoke()
    ys.append(it.get_tensor(o).copy())
np.save(yout, np.stack(ys))
"""


def hwsim_command() -> list[str]:
    """The `hwsim` console script of this interpreter, else `python -m hwsim`."""
    script = Path(sys.executable).parent / "hwsim"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "hwsim"]


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one child process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="stacked inputs per model")
    ap.add_argument("--repeats", type=int, default=9, help="timings per side (best is kept)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    ap.add_argument("--no-bytecode-cache", dest="bytecode_cache", action="store_false",
                    help="run the children as this environment has it (with "
                         "PYTHONDONTWRITEBYTECODE set, hwsim recompiles from source each run while "
                         "LiteRT loads pip's .pyc); default: both with compiled bytecode")
    args = ap.parse_args()
    hwsim_cmd = hwsim_command()
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        env = dict(os.environ)
        if args.bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(tmpd / "pycache")
        cache = ("on (temporary PYTHONPYCACHEPREFIX)" if args.bytecode_cache else
                 "off (PYTHONDONTWRITEBYTECODE set)" if env.get("PYTHONDONTWRITEBYTECODE") else
                 "as the environment has it")
        print(f"hwsim: {' '.join(hwsim_cmd)};  bytecode cache: {cache};  best of {args.repeats}",
              flush=True)
        script = tmpd / "litert_run.py"
        script.write_text(LITERT_SCRIPT)
        for short in args.models.split(","):
            model = REPO / "tests" / "data" / "mlperf_tiny" / f"{MODELS[short]}.tflite"
            from hwsim.models.tflite_import import load_tflite

            g = load_tflite(model)
            spec = g.tensors[g.inputs[0]]
            x = rng.integers(-128, 128, (args.n,) + spec.shape).astype(np.int8)
            np.save(tmpd / "x.npy", x)
            ours_cmd = hwsim_cmd + ["emulate", str(model), "--inputs", str(tmpd / "x.npy"),
                                    "--out", str(tmpd / "y_hwsim.npy"), "--runtime", "litert-ref"]
            ref_cmd = [sys.executable, str(script), str(model), str(tmpd / "x.npy"),
                       str(tmpd / "y_litert.npy")]
            _timed(ours_cmd, env)  # untimed warm-up: file cache, bytecode cache
            _timed(ref_cmd, env)
            ours, ref = [], []
            for _ in range(args.repeats):  # interleaved, so both sides see the same machine load
                ours.append(_timed(ours_cmd, env))
                ref.append(_timed(ref_cmd, env))
            same = np.array_equal(np.load(tmpd / "y_hwsim.npy"), np.load(tmpd / "y_litert.npy"))
            w_ours, w_ref = min(t[0] for t in ours), min(t[0] for t in ref)
            c_ours, c_ref = min(t[1] for t in ours), min(t[1] for t in ref)
            results.append((short, w_ours, w_ref, c_ours, c_ref))
            print(f"{short:8s} n={args.n}  wall: hwsim emulate {w_ours:6.2f} s, LiteRT BUILTIN_REF "
                  f"{w_ref:6.2f} s, ratio {w_ours / w_ref:5.2f}   CPU: {c_ours:6.2f} s vs "
                  f"{c_ref:6.2f} s, ratio {c_ours / c_ref:5.2f}   outputs identical: {same}",
                  flush=True)
    worst = max(r[1] / r[2] for r in results)
    total = sum(r[1] for r in results) / sum(r[2] for r in results)
    worst_cpu = max(r[3] / r[4] for r in results)
    print(f"wall: worst ratio {worst:.2f}, total-time ratio {total:.2f};  CPU: worst ratio "
          f"{worst_cpu:.2f}   (target <= 1.0)")


if __name__ == "__main__":
    main()
