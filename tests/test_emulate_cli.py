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


def test_emulate_process_imports_neither_typer_nor_torch(tmp_path: Path) -> None:
    """The real entry point (`python -m hwsim emulate`, as the console script runs it) is a
    stdlib-argparse command: its start-up is benchmarked against a LiteRT process, so it must
    not import typer (and click/pydantic behind it), torch, pandas or the tflite schema.
    Checked from `-X importtime`, which lists every module the process imported."""
    import subprocess
    import sys

    np.save(tmp_path / "x.npy", np.zeros((2, 1, 30, 1, 40), np.int8))
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "hwsim", "emulate", "sww",
                          "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines()
                if line.startswith("import time:")}
    assert "hwsim.emulator" in imported and "numpy" in imported   # the listing is complete
    heavy = sorted(m for m in imported
                   if m.split(".")[0] in {"typer", "click", "pydantic", "torch", "pandas", "tflite"})
    assert not heavy, heavy
    assert np.load(tmp_path / "y.npy").shape == (2, 1, 3)


def test_help_lists_emulate_and_emulate_help_shows_its_options(capsys) -> None:
    """`hwsim --help` (Typer) lists emulate; `hwsim emulate --help` / `-h` (argparse) shows every
    option with its help text and exits 0."""
    assert _run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "emulate" in out and "Emulate MODEL on the inputs in X.npy" in out
    for flag in ("--help", "-h"):
        assert _run(["emulate", flag]) == 0
        out = capsys.readouterr().out
        assert out.startswith("Usage: hwsim emulate")
        for opt in ("--inputs", "--out", "--runtime", "--dump", "--backend", "MODEL",
                    "litert-ref", "stacked on a new leading axis"):
            assert opt in out, opt


@pytest.mark.parametrize("argv, msg", [
    (["emulate"], "the following arguments are required"),
    (["emulate", "kws", "--inputs", "x.npy"], "--out"),
    (["emulate", "kws", "--inputs", "x.npy", "--out", "y.npy", "--bogus"], "unrecognized arguments"),
])
def test_usage_errors_exit_2_without_traceback(capsys, argv: list[str], msg: str) -> None:
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and "Usage: hwsim emulate" in err and "Traceback" not in err


def test_unknown_runtime_exits_2_with_the_choices(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 49, 10, 1), np.int8))
    rc = _run(["emulate", "kws", "--inputs", str(tmp_path / "x.npy"), "--out",
               str(tmp_path / "y.npy"), "--runtime", "tflite"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown runtime 'tflite'" in err and "litert-ref" in err and "Traceback" not in err


def test_typer_app_passes_emulate_through_to_the_same_command(tmp_path: Path) -> None:
    """`hwsim.cli.app` (the full Typer app) runs emulate through the one argparse definition:
    same outputs as the direct path, help from the same parser."""
    from typer.testing import CliRunner

    from hwsim.cli import app

    x = np.random.default_rng(9).integers(-128, 128, (4, 1, 49, 10, 1)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(app, ["emulate", "kws", "--inputs", str(tmp_path / "x.npy"),
                                   "--out", str(tmp_path / "y.npy"), "-r", "litert-ref"])
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.load(tmp_path / "y.npy"), _litert_outputs(KWS, x))
    res = CliRunner().invoke(app, ["emulate", "--help"])
    assert res.exit_code == 0 and "Usage: hwsim emulate" in res.output and "--inputs" in res.output


@pytest.mark.parametrize("mode", ["double", "float64", "int64"])
def test_fused_epilogue_equals_the_gemmlowp_reference(mode: str) -> None:
    """The fused requantization epilogue (float64 fast path, int64 fallback, wrapping left
    shifts, channels without a right shift, per-tensor and per-channel scales, reused constants)
    gives exactly `clamp(reference(acc + offset) + Z)` and the same saturation count, where the
    reference is the plain gemmlowp formula for the mode."""
    from hwsim.fixedpoint import gemmlowp as g
    from hwsim.fixedpoint.kernels.requant import Requantizer

    rng = np.random.default_rng(11)
    for trial in range(60):
        c = int(rng.choice([1, 7, 64]))
        s_w = rng.uniform(1e-4, 2e-2, c if trial % 2 else 1).astype(np.float32)
        if trial % 5 == 0:
            s_w *= np.float32(rng.uniform(20, 4000))     # effective scale > 1: left shifts
        if trial % 7 == 0 and s_w.size > 1:
            s_w[0] = np.float32(0.06)                   # scale in [0.5, 1): no right shift
        s_in, s_out = np.float32(0.05), np.float32(0.1)
        req = Requantizer.build(s_in, s_w, s_out, mode)
        big = int(rng.choice([2 ** 12, 2 ** 22, 2 ** 31 - 2 ** 21]))   # float path / int path
        dtype = np.float32 if big <= 2 ** 24 else np.int64
        for _ in range(2):                              # second call reuses the constants
            acc = rng.integers(-big, big, (int(rng.integers(1, 3000)), c)).astype(dtype)
            offset = rng.integers(-2 ** 16, 2 ** 16, c)
            zp, (lo, hi), out_dtype = int(rng.integers(-128, 128)), (-128, 127), np.int8
            if mode == "int64":
                zp, (lo, hi), out_dtype = 0, (-32768, 32767), np.int16
            got, sat = req.epilogue(acc, offset, zp, lo, hi, out_dtype)
            x = acc.astype(np.int64) + offset
            m, sh = req.multiplier.reshape(1, -1), req.shift.reshape(1, -1)
            if mode == "double":
                ref = g.multiply_by_quantized_multiplier(x, m, sh)
            elif mode == "float64":
                ref = g.requantize_float64(x, s_in, s_w.reshape(1, -1), s_out)
            else:
                ref = g.multiply_by_quantized_multiplier_int64(x, m, sh)
            ref = ref + zp
            assert got.dtype == out_dtype
            assert np.array_equal(got, np.clip(ref, lo, hi)), (mode, trial)
            assert sat == int(np.count_nonzero(ref < lo) + np.count_nonzero(ref > hi))


def test_float64_rounding_is_c_round_on_the_hard_cases() -> None:
    """The 3-pass C `round` of the float64 epilogue against gemmlowp.round_half_away (trunc +
    exact fraction) on halves, their neighbours, 0.49999999999999994, |v| ≥ 2^52 and random
    values; huge values (beyond int64) are integers already and must come back unchanged."""
    from hwsim.fixedpoint.gemmlowp import round_half_away
    from hwsim.fixedpoint.kernels.requant import _round_float64

    halves = np.arange(-2000, 2000) + 0.5
    v = np.concatenate([halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf),
                        [0.49999999999999994, -0.49999999999999994, 0.0, -0.0, 2.0 ** 52 - 0.5,
                         -(2.0 ** 52) + 0.5, 2.0 ** 51 + 0.5, 2.0 ** 53],
                        np.random.default_rng(3).normal(0, 1e4, 10_000)])
    got = v.copy()
    _round_float64(got, np.empty_like(got))
    assert np.array_equal(got, round_half_away(v).astype(np.float64))
    huge = np.array([1e300, -1e300, 2.0 ** 70])
    got = huge.copy()
    _round_float64(got, np.empty_like(got))
    assert np.array_equal(got, huge)


def test_fused_epilogue_falls_back_to_int64_where_float64_would_round() -> None:
    """Accumulators chosen so that acc·M (≈ 2^62, beyond float64's 2^53) lands just below a
    rounding boundary: a float64 evaluation would be off by one there, so the epilogue must take
    its int64 path and still equal the gemmlowp reference."""
    from hwsim.fixedpoint import gemmlowp as g
    from hwsim.fixedpoint.kernels.requant import Requantizer

    s_w = np.float32(0.6)
    for _ in range(1000):                           # effective 0.3·s_w/0.7 in [0.25, 0.5): shift −1
        req = Requantizer.build(np.float32(0.3), np.array([s_w]), np.float32(0.7), "double")
        m, shift = int(req.multiplier[0]), int(req.shift[0])
        if m % 2 and shift == -1:
            break
        s_w = np.nextafter(s_w, np.float32(1))
    assert m % 2 and shift == -1
    d = 1 << 32                                       # divisor 2^(31 + r), r = 1
    c = (1 << 30) + (1 << 31)                         # 2^30 + half·2^31
    inv = pow(m, -1, d)
    acc = []
    for delta in range(1, 800):                       # acc·M + c ≡ −delta (mod 2^32)
        a = ((-c - delta) * inv) % d
        acc.append(a - d if a >= d // 2 else a)
    acc = np.array(acc, np.int64).reshape(-1, 1)
    got, _ = req.epilogue(acc, np.zeros(1, np.int64), 0, -2 ** 31, 2 ** 31 - 1, np.int64)
    want = g.multiply_by_quantized_multiplier(acc, m, shift)
    assert np.array_equal(got, want)
