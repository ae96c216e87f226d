"""`hwsim emulate`: run a TFLite int8 model bit-exactly on a batch of inputs.

Why: the user-facing proof that the emulator reproduces the runtime (compare Y.npy with the
device or interpreter output), and a way to dump every intermediate tensor for debugging.

Start-up is part of what this command is benchmarked on (the whole process against a LiteRT
script, benchmarks/bench_e2e_inference.py), so it is a stdlib argparse command that `hwsim.cli.main`
runs without importing typer; the Typer app only carries a pass-through entry so `hwsim --help`
lists it. The default numpy backend never imports torch (tests/test_emulate_cli.py checks).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

SUMMARY = "Emulate MODEL on the inputs in X.npy and write the outputs to Y.npy."


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse help with the same `Usage: hwsim ...` header as the Typer commands."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 (argparse's own convention, the same code as HwsimError)."""


def build_parser() -> argparse.ArgumentParser:
    """The one definition of the command's arguments (used by both entry paths)."""
    p = _Parser(prog="hwsim emulate", description=SUMMARY, formatter_class=_HelpFormatter,
                add_help=True)
    p.add_argument("model", metavar="MODEL",
                   help="TFLite model (.tflite, int8 / uint8 / 16x8 quantized) or a builtin name "
                        "(ad01, kws, resnet8, vww, sww).")
    p.add_argument("--inputs", "-i", type=Path, required=True, metavar="X.npy",
                   help="X.npy: N inputs stacked on a new leading axis, in the model's input "
                        "dtype (e.g. int8 codes).")
    p.add_argument("--out", "-o", type=Path, required=True, metavar="Y.npy",
                   help="Y.npy to write: the N outputs stacked on a new leading axis.")
    p.add_argument("--runtime", "-r", default="tflm", metavar="NAME",
                   help="Arithmetic to reproduce: tflm (= cmsis-nn default build) or litert-ref "
                        "(LiteRT BUILTIN_REF kernels; differs on FULLY_CONNECTED). "
                        "Default: tflm.")
    p.add_argument("--dump", type=Path, default=None, metavar="DIR",
                   help="Folder to write every tensor (one .npy each, stacked over N) plus "
                        "index.json.")
    p.add_argument("--backend", default="numpy", metavar="NAME",
                   help="Integer product kernels: numpy (fast start) or intops (torch). "
                        "Default: numpy.")
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse `argv` (the arguments after `emulate`) and run. HwsimError propagates to the caller
    (`hwsim.cli.main` prints it and exits 2); argparse usage errors exit 2 themselves."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    emulate(args.model, args.inputs, args.out, args.runtime, args.dump, args.backend)


def _safe_name(name: str, used: set[str]) -> str:
    import re

    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "tensor"
    base = base[:120]
    cand, k = base, 1
    while cand.lower() in used:
        k += 1
        cand = f"{base}_{k}"
    used.add(cand.lower())
    return cand


def emulate(model: str, inputs: Path, out: Path, runtime: str = "tflm", dump: Path | None = None,
            backend: str = "numpy") -> None:
    """Emulate `model` on the inputs in `inputs` (.npy) and write the outputs to `out` (.npy)."""
    from hwsim.cli._paths import output_dir, output_file
    from hwsim.errors import HwsimError

    if inputs.is_dir():
        raise HwsimError(f"--inputs {inputs}: is a directory, expected a file (an .npy of stacked inputs)")
    if not inputs.is_file():
        raise HwsimError(f"--inputs {inputs}: file not found; pass an .npy file of stacked inputs")
    # numpy.save appends .npy to a name without it: check (and later report) the real path
    out_path = out if out.suffix == ".npy" else out.with_name(out.name + ".npy")
    if out.is_dir():
        raise HwsimError(f"--out {out}: is a directory, expected a file name such as {out / 'Y.npy'}")
    output_file(out_path, "--out")
    if dump is not None:
        output_dir(dump, "--dump")

    if "numpy" not in sys.modules:
        # The kernels stream cache-sized slices through many small GEMMs; BLAS worker threads
        # only add synchronisation there (and fight for the cores), and starting OpenBLAS's
        # thread pool is a large part of `import numpy`. So use one thread.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    import numpy as np

    from hwsim.emulator import Emulator
    from hwsim.models.registry import model_path

    try:
        x = np.load(inputs, allow_pickle=False)
    except Exception as exc:  # not an .npy / pickled object arrays
        raise HwsimError(f"--inputs {inputs}: cannot read as a numpy .npy array ({exc}); save it "
                         "with numpy.save") from None
    model_file = model_path(model)
    em = Emulator.from_tflite(model_file, runtime=runtime, backend=backend)
    if len(em.graph.inputs) != 1:
        raise HwsimError(f"{model_file}: the CLI runs single-input models; this one has "
                         f"{len(em.graph.inputs)} inputs (use hwsim.emulator.Emulator from Python)")
    spec = em.input_specs[0]
    if x.dtype != np.dtype(spec.dtype):
        raise HwsimError(f"--inputs {inputs}: dtype {x.dtype}, but {model_file.name} expects "
                         f"{np.dtype(spec.dtype)} codes; quantize the inputs first "
                         f"(x_q = round(x / {spec.s:g}) + {spec.zp})")
    outputs = em.compute(x, capture_intermediates=dump is not None)
    y = outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=1)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(out_path, y)
    except OSError as err:
        from hwsim.cli._paths import os_error

        raise os_error(err, "--out", out_path) from None
    if dump is not None:
        _write_dump(em, dump, model_file, runtime, int(x.shape[0]))
    print(f"{model_file.name}: {y.shape[0]} inference(s), runtime {runtime} -> {out_path} "
          f"{tuple(y.shape)} {y.dtype}", file=sys.stderr)


def _write_dump(em: Any, dump: Path, model_file: Path, runtime: str, batch: int) -> None:
    """Every tensor of the last run as one .npy each, plus index.json describing them."""
    import json

    import numpy as np

    dump.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    index = []
    for t in em.graph.tensors:
        arr = em.intermediates.get(t.name)
        if arr is None:
            if t.data is None:
                continue
            arr = t.data
        fname = _safe_name(t.name, used) + ".npy"
        np.save(dump / fname, arr)
        index.append({"index": t.index, "name": t.name, "file": fname, "dtype": str(arr.dtype),
                      "shape": list(arr.shape), "tflite_shape": list(t.shape),
                      "kind": em.kinds.get(t.index, "activation"), "constant": t.data is not None,
                      "scale": None if t.scale is None else [float(v) for v in t.scale],
                      "zero_point": None if t.zero_point is None
                      else [int(v) for v in t.zero_point]})
    (dump / "index.json").write_text(json.dumps(
        {"model": str(model_file), "runtime": runtime, "batch": batch, "tensors": index},
        indent=1))


def register(app: "typer.Typer") -> None:
    """List `hwsim emulate` on the Typer app: a pass-through to the argparse command above, so
    its options are defined once (`hwsim emulate --help` shows them)."""
    import typer

    @app.command("emulate", help=SUMMARY, add_help_option=False,
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def emulate_cmd(ctx) -> None:  # type: ignore[no-untyped-def]
        main(list(ctx.args))

    # set as objects: typer evaluates string annotations in this module, which lacks `typer`
    emulate_cmd.__annotations__ = {"ctx": typer.Context, "return": None}
