"""`hwsim emulate`: outputs equal the LiteRT BUILTIN_REF oracle, --dump writes every tensor,
bad inputs exit 2 with one message."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.models.tflite_import import load_tflite

MODELS_DIR = Path(__file__).resolve().parent / "data" / "mlperf_tiny"
KWS = MODELS_DIR / "kws_ref_model.tflite"


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def _litert_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    ys = []
    for row in x:
        it.set_tensor(i, row)
        it.invoke()
        ys.append(it.get_tensor(o).copy())
    return np.stack(ys)


def test_emulate_matches_litert_and_dumps(tmp_path: Path) -> None:
    x = np.random.default_rng(7).integers(-128, 128, (6, 1, 49, 10, 1)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    rc = _run(["emulate", str(KWS), "--inputs", str(tmp_path / "x.npy"), "--out",
               str(tmp_path / "y.npy"), "--runtime", "litert-ref", "--dump", str(tmp_path / "d")])
    assert rc == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (6, 1, 12) and y.dtype == np.int8
    assert np.array_equal(y, _litert_outputs(KWS, x))
    index = json.loads((tmp_path / "d" / "index.json").read_text())
    files = {e["name"]: e["file"] for e in index["tensors"]}
    assert len(files) == len(load_tflite(KWS).tensors)  # every tensor, constants included
    out_name = [e for e in index["tensors"] if e["kind"] == "output"][0]
    assert np.array_equal(np.load(tmp_path / "d" / out_name["file"]), y)
    for e in index["tensors"]:
        assert "/" not in e["file"] and (tmp_path / "d" / e["file"]).is_file()


def test_builtin_name_and_leading_batch_of_one(tmp_path: Path) -> None:
    x = np.random.default_rng(8).integers(-128, 128, (3, 49, 10, 1)).astype(np.int8)  # no model batch dim
    np.save(tmp_path / "x.npy", x)
    assert _run(["emulate", "kws", "--inputs", str(tmp_path / "x.npy"), "--out",
                 str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").shape == (3, 1, 12)


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((2, 1, 49, 10, 1), np.float32), "dtype float32"),
    (np.zeros((2, 1, 49, 11, 1), np.int8), "shape"),
    (np.zeros((49, 10), np.int8), "shape"),
])
def test_wrong_inputs_exit_2(tmp_path: Path, capsys, bad: np.ndarray, msg: str) -> None:
    np.save(tmp_path / "x.npy", bad)
    rc = _run(["emulate", str(KWS), "--inputs", str(tmp_path / "x.npy"), "--out",
               str(tmp_path / "y.npy")])
    assert rc == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_corrupt_model_exit_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "m.tflite").write_bytes(KWS.read_bytes()[:5000])
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 49, 10, 1), np.int8))
    rc = _run(["emulate", str(tmp_path / "m.tflite"), "--inputs", str(tmp_path / "x.npy"),
               "--out", str(tmp_path / "y.npy")])
    assert rc == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_cli_path_never_imports_torch_or_pandas(tmp_path: Path) -> None:
    """Start-up time is part of the benchmark: the numpy backend must not pull in torch (seconds)
    or pandas. Checked in a fresh interpreter."""
    import subprocess
    import sys

    np.save(tmp_path / "x.npy", np.zeros((2, 1, 30, 1, 40), np.int8))
    code = ("import sys\nfrom hwsim.cli import main\ntry:\n    main(['emulate', 'sww', '--inputs', "
            f"{str(tmp_path / 'x.npy')!r}, '--out', {str(tmp_path / 'y.npy')!r}])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "bad = [m for m in ('torch', 'pandas', 'tflite') if m in sys.modules]\n"
            "assert not bad, bad\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert np.load(tmp_path / "y.npy").shape == (2, 1, 3)
