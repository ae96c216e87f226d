"""Built-in model names → .tflite files (the MLPerf Tiny int8 reference models).

Why: workloads and the CLI say `model: resnet8` instead of a path. The files ship in the
repository (`tests/data/mlperf_tiny/`, Apache-2.0, see LICENSE/NOTICE there);
`$HWSIM_MODELS_PATH` (os.pathsep-separated folders) is searched first for overrides.
"""
from __future__ import annotations

import os
from pathlib import Path

from hwsim.errors import ModelError

#: canonical name → (file name, aliases, description)
BUILTIN_MODELS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ad01": ("ad01_int8.tflite", ("ad", "anomaly-detection", "fc-autoencoder"),
             "MLPerf Tiny AD: FC auto-encoder (ToyADMOS), 10 FULLY_CONNECTED"),
    "kws": ("kws_ref_model.tflite", ("ds-cnn", "keyword-spotting"),
            "MLPerf Tiny KWS: DS-CNN (Speech Commands, 12 classes)"),
    "resnet8": ("pretrainedResnet_quant.tflite", ("ic", "resnet-8", "image-classification"),
                "MLPerf Tiny IC: ResNet-8 (CIFAR-10)"),
    "vww": ("vww_96_int8.tflite", ("mobilenet", "visual-wake-words", "mobilenetv1-0.25"),
            "MLPerf Tiny VWW: MobileNetV1 alpha 0.25, 96x96 RGB"),
    "sww": ("str_ww_ref_model.tflite", ("str_ww", "streaming-wakeword"),
            "MLPerf Tiny SWW: 1-D DS-CNN streaming wake word"),
}


def _search_dirs() -> list[Path]:
    import hwsim

    dirs = [Path(p) for p in os.environ.get("HWSIM_MODELS_PATH", "").split(os.pathsep) if p]
    dirs.append(hwsim.REPO_ROOT / "tests" / "data" / "mlperf_tiny")
    return dirs


def canonical(name: str) -> str | None:
    """The canonical builtin name for `name` or an alias (case-insensitive), else None."""
    key = name.strip().lower().replace("_", "-")
    for canon, (fname, aliases, _) in BUILTIN_MODELS.items():
        names = {canon, Path(fname).stem.lower(), *aliases}
        if key in {n.replace("_", "-") for n in names}:
            return canon
    return None


def resolve(name: str) -> Path | None:
    """Path of a builtin model, or None if `name` is not a builtin name.

    Raises ModelError if the name is builtin but its file is missing."""
    canon = canonical(name)
    if canon is None:
        return None
    fname = BUILTIN_MODELS[canon][0]
    for d in _search_dirs():
        if (d / fname).is_file():
            return d / fname
    raise ModelError(f"builtin model {name!r} ({fname}) not found in "
                     f"{', '.join(str(d) for d in _search_dirs())}; set HWSIM_MODELS_PATH")


def model_path(name_or_path: str | Path) -> Path:
    """A .tflite path given either a path or a builtin name (ModelError if neither)."""
    p = Path(name_or_path)
    if p.suffix == ".tflite" or p.is_file():
        if not p.is_file():
            raise ModelError(f"{p}: model file not found")
        return p
    got = resolve(str(name_or_path))
    if got is None:
        raise ModelError(f"model {str(name_or_path)!r} is neither a .tflite file nor a builtin "
                         f"name; builtin: {', '.join(BUILTIN_MODELS)}")
    return got


def list_models() -> list[str]:
    return list(BUILTIN_MODELS)
