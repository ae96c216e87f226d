"""Bit-exactness of the emulator against the two reference runtimes, on the MLPerf Tiny models.

Oracles (outside our code): LiteRT's interpreter with the BUILTIN_REF op resolver and all tensors
preserved (runtime "litert-ref"), and the TFLite-Micro Python interpreter in kPreserveAllTensors
mode (runtime "tflm"). Every non-constant tensor — outputs and every intermediate — must be equal
integer for integer, for every one of the random inputs.
"""
from __future__ import annotations

import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from hwsim.emulator import Emulator

MODELS_DIR = Path(__file__).resolve().parent / "data" / "mlperf_tiny"
MODELS = ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "str_ww_ref_model",
          "vww_96_int8"]
N_INPUTS = 32


def _model(name: str) -> str:
    return str(MODELS_DIR / f"{name}.tflite")


@lru_cache(maxsize=None)
def _inputs(name: str, n: int) -> np.ndarray:
    em = Emulator.from_tflite(_model(name))
    spec = em.input_specs[0]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return rng.integers(-128, 128, (n,) + tuple(spec.shape)).astype(np.int8)


@lru_cache(maxsize=None)
def _litert_tensors(name: str, n: int) -> dict[int, np.ndarray]:
    """All non-constant tensors of the LiteRT BUILTIN_REF run, stacked over the n inputs."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=_model(name),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    em = Emulator.from_tflite(_model(name))
    live = [t.index for t in em.graph.tensors if t.data is None]
    x = _inputs(name, n)
    inp = it.get_input_details()[0]["index"]
    out: dict[int, list[np.ndarray]] = {i: [] for i in live}
    for k in range(n):
        it.set_tensor(inp, x[k])
        it.invoke()
        for i in live:
            out[i].append(np.array(it.get_tensor(i)))
    return {i: np.stack(v) for i, v in out.items()}


@lru_cache(maxsize=None)
def _tflm_tensors(name: str, n: int) -> dict[int, np.ndarray]:
    """All non-constant tensors of the TFLite-Micro run (kPreserveAllTensors + GetTensor)."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_file(
        _model(name), intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    em = Emulator.from_tflite(_model(name))
    live = [t for t in em.graph.tensors if t.data is None]
    x = _inputs(name, n)
    out: dict[int, list[np.ndarray]] = {t.index: [] for t in live}
    for k in range(n):
        it.set_input(x[k], 0)
        it.invoke()
        for t in live:
            out[t.index].append(np.array(it.GetTensor(t.index, 0)["tensor_data"]).reshape(t.shape))
    return {i: np.stack(v) for i, v in out.items()}


def _check_all_tensors(name: str, runtime: str, backend: str, n: int) -> int:
    em = Emulator.from_tflite(_model(name), runtime=runtime, backend=backend)
    x = _inputs(name, N_INPUTS)[:n]
    outputs, trace = em.run(x, capture_intermediates=True)
    ref = (_litert_tensors if runtime == "litert-ref" else _tflm_tensors)(name, N_INPUTS)
    checked = 0
    for t in em.graph.tensors:
        if t.data is not None:
            continue
        mine = em.intermediates[t.name]
        theirs = ref[t.index][:n]
        assert mine.dtype == theirs.dtype, (t.name, mine.dtype, theirs.dtype)
        assert mine.shape == theirs.shape, (t.name, mine.shape, theirs.shape)
        bad = int(np.count_nonzero(mine != theirs))
        assert bad == 0, f"{name} [{runtime}/{backend}] tensor {t.name!r}: {bad} values differ"
        checked += 1
    out_idx = em.graph.outputs[0]
    assert np.array_equal(outputs[0], ref[out_idx][:n])
    assert trace.meta["batch"] == n
    return checked


@pytest.mark.parametrize("runtime", ["litert-ref", "tflm"])
@pytest.mark.parametrize("name", MODELS)
def test_every_tensor_bit_exact_numpy_backend(name: str, runtime: str) -> None:
    checked = _check_all_tensors(name, runtime, "numpy", N_INPUTS)
    assert checked >= len(Emulator.from_tflite(_model(name)).graph.ops)


@pytest.mark.parametrize("runtime", ["litert-ref", "tflm"])
@pytest.mark.parametrize("name", MODELS)
def test_every_tensor_bit_exact_intops_backend(name: str, runtime: str) -> None:
    """The torch `intops` kernels give the same integers (fewer inputs: the same oracles)."""
    _check_all_tensors(name, runtime, "intops", 8)


@pytest.mark.parametrize("name", ["ad01_int8", "pretrainedResnet_quant"])
def test_runtimes_really_differ_on_fully_connected(name: str) -> None:
    """The two oracles disagree on these models (FULLY_CONNECTED rounding), so matching each in
    its own mode is a real check of the runtime switch, not a coincidence."""
    lite = _litert_tensors(name, N_INPUTS)
    micro = _tflm_tensors(name, N_INPUTS)
    em = Emulator.from_tflite(_model(name))
    differing = [em.graph.tensors[i].name for i in lite if not np.array_equal(lite[i], micro[i])]
    assert differing, f"{name}: LiteRT-ref and TFLM agree everywhere on these inputs"
    fc_outputs = {em.graph.tensors[op.outputs[0]].name for op in em.graph.ops
                  if op.opcode == "FULLY_CONNECTED"}
    # the first differing tensor in execution order is a FULLY_CONNECTED output
    order = [em.graph.tensors[op.outputs[0]].name for op in em.graph.ops]
    first = min(differing, key=lambda nm: order.index(nm) if nm in order else len(order))
    assert first in fc_outputs
