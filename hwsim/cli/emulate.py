"""`hwsim emulate`: run a TFLite int8 model bit-exactly on a batch of inputs.

Why: the user-facing proof that the emulator reproduces the runtime (compare Y.npy with the
device or interpreter output), and a way to dump every intermediate tensor for debugging.
Imports stay inside the command so `hwsim --help` stays fast; the default numpy backend never
imports torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


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


def emulate(
    model: str = typer.Argument(..., help="TFLite model (.tflite, int8 / uint8 / 16x8 quantized) "
                                         "or a builtin name (ad01, kws, resnet8, vww, sww)."),
    inputs: Path = typer.Option(..., "--inputs", "-i",
                                help="X.npy: N inputs stacked on a new leading axis, in the model's "
                                     "input dtype (e.g. int8 codes)."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="Y.npy to write: the N outputs stacked on a new leading axis."),
    runtime: str = typer.Option("tflm", "--runtime", "-r",
                                help="Arithmetic to reproduce: tflm (= cmsis-nn default build) or "
                                     "litert-ref (LiteRT BUILTIN_REF kernels; differs on "
                                     "FULLY_CONNECTED)."),
    dump: Optional[Path] = typer.Option(None, "--dump",
                                        help="Folder to write every tensor (one .npy each, "
                                             "stacked over N) plus index.json."),
    backend: str = typer.Option("numpy", "--backend",
                                help="Integer product kernels: numpy (fast start) or intops (torch)."),
) -> None:
    """Emulate MODEL on the inputs in X.npy and write the outputs to Y.npy."""
    import json
    import os
    import sys

    if "numpy" not in sys.modules:
        # The kernels stream cache-sized slices through many small GEMMs; BLAS worker threads
        # only add synchronisation there (and fight for the cores), so use one thread.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")

    import numpy as np

    from hwsim.emulator import Emulator
    from hwsim.errors import HwsimError

    from hwsim.cli._paths import output_dir, output_file

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
    try:
        x = np.load(inputs, allow_pickle=False)
    except Exception as exc:  # not an .npy / pickled object arrays
        raise HwsimError(f"--inputs {inputs}: cannot read as a numpy .npy array ({exc}); save it "
                         "with numpy.save") from None
    from hwsim.models.registry import model_path

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
    outputs, trace = em.run(x, capture_intermediates=dump is not None)
    y = outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=1)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(out_path, y)
    except OSError as err:
        from hwsim.cli._paths import os_error

        raise os_error(err, "--out", out_path) from None
    if dump is not None:
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
                          "kind": em.infos[t.index].kind, "constant": t.data is not None,
                          "scale": None if t.scale is None else [float(v) for v in t.scale],
                          "zero_point": None if t.zero_point is None
                          else [int(v) for v in t.zero_point]})
        (dump / "index.json").write_text(json.dumps(
            {"model": str(model_file), "runtime": runtime, "batch": int(x.shape[0]),
             "tensors": index}, indent=1))
    typer.echo(f"{model_file.name}: {y.shape[0]} inference(s), runtime {runtime} -> {out_path} "
               f"{tuple(y.shape)} {y.dtype}", err=True)


def register(app: typer.Typer) -> None:
    """Register `hwsim emulate` on the main app."""
    app.command("emulate")(emulate)
