"""Single-op int8 models built here (flatbuffers, no converter) and run by both oracles.

Why: the five MLPerf Tiny models exercise only some option combinations (no dilation, no depth
multiplier, no broadcasting ADD, no SUB / MAX_POOL / QUANTIZE, only per-tensor FC). Each case
builds a one-op .tflite with random quantization parameters and random int8 weights, and checks
the emulator's output against LiteRT BUILTIN_REF (runtime "litert-ref") and TFLite-Micro
(runtime "tflm") on random inputs, integer for integer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwsim.emulator import Emulator

INT8, INT32, FLOAT32 = 9, 2, 0


def _m(name: str):
    """A generated schema module (attribute access on `tflite` yields the class, not the module)."""
    import importlib

    return importlib.import_module(f"tflite.{name}")
N = 16


def _build(tensors: list[dict], ops: list[dict], inputs: list[int], outputs: list[int]) -> bytes:
    """A one-subgraph TFLite flatbuffer (schema v3) from plain dicts."""
    import flatbuffers
    Bf = _m("Buffer")
    Md = _m("Model")
    Op = _m("Operator")
    Oc = _m("OperatorCode")
    Qp = _m("QuantizationParameters")
    Sg = _m("SubGraph")
    Tn = _m("Tensor")

    b = flatbuffers.Builder(1024)

    def ivec(vals, dtype=np.int32):
        return b.CreateNumpyVector(np.asarray(vals, dtype=dtype))

    # buffers: 0 is the empty sentinel, then one per constant tensor
    buf_offsets, buf_index = [], []
    Bf.Start(b)
    buf_offsets.append(Bf.End(b))
    for t in tensors:
        if t.get("data") is not None:
            data = b.CreateNumpyVector(np.ascontiguousarray(t["data"]).view(np.uint8).ravel())
            Bf.Start(b)
            Bf.AddData(b, data)
            buf_offsets.append(Bf.End(b))
            buf_index.append(len(buf_offsets) - 1)
        else:
            buf_index.append(0)
    t_offsets = []
    for t, bi in zip(tensors, buf_index):
        name = b.CreateString(t["name"])
        shape = ivec(t["shape"])
        q = None
        if t.get("scale") is not None:
            sc = b.CreateNumpyVector(np.asarray(t["scale"], np.float32))
            zp = b.CreateNumpyVector(np.asarray(t["zero_point"], np.int64))
            Qp.Start(b)
            Qp.AddScale(b, sc)
            Qp.AddZeroPoint(b, zp)
            Qp.AddQuantizedDimension(b, t.get("qdim", 0))
            q = Qp.End(b)
        Tn.Start(b)
        Tn.AddShape(b, shape)
        Tn.AddType(b, t["type"])
        Tn.AddBuffer(b, bi)
        Tn.AddName(b, name)
        if q is not None:
            Tn.AddQuantization(b, q)
        t_offsets.append(Tn.End(b))
    codes = sorted({op["code"] for op in ops})
    op_offsets = []
    for op in ops:
        opt = op["options"](b) if op.get("options") else None
        ins, outs = ivec(op["inputs"]), ivec(op["outputs"])
        Op.Start(b)
        Op.AddOpcodeIndex(b, codes.index(op["code"]))
        Op.AddInputs(b, ins)
        Op.AddOutputs(b, outs)
        if opt is not None:
            Op.AddBuiltinOptionsType(b, op["options_type"])
            Op.AddBuiltinOptions(b, opt)
        op_offsets.append(Op.End(b))

    def table_vec(offs):
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    tv, ov = table_vec(t_offsets), table_vec(op_offsets)
    iv, outv = ivec(inputs), ivec(outputs)
    name = b.CreateString("main")
    Sg.Start(b)
    Sg.AddTensors(b, tv)
    Sg.AddInputs(b, iv)
    Sg.AddOutputs(b, outv)
    Sg.AddOperators(b, ov)
    Sg.AddName(b, name)
    sg = Sg.End(b)
    oc_offsets = []
    for c in codes:
        Oc.Start(b)
        Oc.AddDeprecatedBuiltinCode(b, min(c, 127))
        Oc.AddBuiltinCode(b, c)
        Oc.AddVersion(b, 1)
        oc_offsets.append(Oc.End(b))
    ocv, sgv, bv = table_vec(oc_offsets), table_vec([sg]), table_vec(buf_offsets)
    desc = b.CreateString("hwsim test")
    Md.Start(b)
    Md.AddVersion(b, 3)
    Md.AddOperatorCodes(b, ocv)
    Md.AddSubgraphs(b, sgv)
    Md.AddDescription(b, desc)
    Md.AddBuffers(b, bv)
    b.Finish(Md.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _act(name, shape, scale, zp) -> dict:
    return {"name": name, "shape": shape, "type": INT8, "scale": [scale], "zero_point": [zp]}


def _oracles(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    lite = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    i, o = lite.get_input_details()[0]["index"], lite.get_output_details()[0]["index"]
    micro = runtime.Interpreter.from_file(str(path))
    ys_l, ys_m = [], []
    for row in x:
        lite.set_tensor(i, row)
        lite.invoke()
        ys_l.append(lite.get_tensor(o).copy())
        micro.set_input(row, 0)
        micro.invoke()
        ys_m.append(np.array(micro.get_output(0)))
    return {"litert-ref": np.stack(ys_l), "tflm": np.stack(ys_m)}


def _check(tmp_path: Path, model: bytes, in_shape: tuple[int, ...], seed: int,
           dtype: Any = np.int8) -> None:
    path = tmp_path / "op.tflite"
    path.write_bytes(model)
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        x = rng.normal(0, 2, (N,) + in_shape).astype(np.float32)
    else:
        x = rng.integers(-128, 128, (N,) + in_shape).astype(np.int8)
    ref = _oracles(path, x)
    for runtime, want in ref.items():
        got, _ = Emulator.from_tflite(path, runtime=runtime).run(x)
        assert got[0].dtype == want.dtype
        bad = int(np.count_nonzero(got[0] != want))
        assert bad == 0, f"[{runtime}] {bad} of {want.size} values differ"


def _conv_options(padding, sw, sh, act, dw, dh):
    def fn(b):
        C = _m("Conv2DOptions")

        C.Start(b)
        C.AddPadding(b, padding)
        C.AddStrideW(b, sw)
        C.AddStrideH(b, sh)
        C.AddFusedActivationFunction(b, act)
        C.AddDilationWFactor(b, dw)
        C.AddDilationHFactor(b, dh)
        return C.End(b)
    return fn


@pytest.mark.parametrize("padding, stride, dilation, act, hw", [
    (0, 2, 1, 1, (9, 7)),    # SAME, stride 2, odd sizes: asymmetric padding
    (0, 1, 2, 3, (8, 8)),    # SAME, dilation 2, ReLU6
    (1, 2, 1, 0, (10, 9)),   # VALID
])
def test_conv2d_options(tmp_path, padding, stride, dilation, act, hw) -> None:
    rng = np.random.default_rng(stride * 10 + dilation)
    cin, cout = 5, 6
    w = rng.integers(-127, 128, (cout, 3, 3, cin)).astype(np.int8)
    bias = rng.integers(-5000, 5000, cout).astype(np.int32)
    s_in, s_out = 0.05, 0.09
    s_w = rng.uniform(0.002, 0.02, cout).astype(np.float32)
    from hwsim.fixedpoint.kernels.base import compute_padding

    oh = compute_padding(hw[0], 3, stride, dilation, padding)[0]
    ow = compute_padding(hw[1], 3, stride, dilation, padding)[0]
    tensors = [_act("x", [1, *hw, cin], s_in, 7),
               {"name": "w", "shape": [cout, 3, 3, cin], "type": INT8, "scale": s_w,
                "zero_point": [0] * cout, "qdim": 0, "data": w},
               {"name": "b", "shape": [cout], "type": INT32, "scale": s_in * s_w,
                "zero_point": [0] * cout, "data": bias},
               _act("y", [1, oh, ow, cout], s_out, -3)]
    ops = [{"code": 3, "inputs": [0, 1, 2], "outputs": [3], "options_type": 1,
            "options": _conv_options(padding, stride, stride, act, dilation, dilation)}]
    _check(tmp_path, _build(tensors, ops, [0], [3]), (1, *hw, cin), 1)


def test_depthwise_multiplier_2(tmp_path) -> None:
    rng = np.random.default_rng(3)
    cin, mult = 4, 2
    cout = cin * mult
    w = rng.integers(-127, 128, (1, 3, 3, cout)).astype(np.int8)
    bias = rng.integers(-3000, 3000, cout).astype(np.int32)
    s_w = rng.uniform(0.002, 0.03, cout).astype(np.float32)

    def opts(b):
        D = _m("DepthwiseConv2DOptions")

        D.Start(b)
        D.AddPadding(b, 0)
        D.AddStrideW(b, 2)
        D.AddStrideH(b, 1)
        D.AddDepthMultiplier(b, mult)
        D.AddFusedActivationFunction(b, 1)
        D.AddDilationWFactor(b, 1)
        D.AddDilationHFactor(b, 1)
        return D.End(b)

    tensors = [_act("x", [1, 7, 8, cin], 0.04, -10),
               {"name": "w", "shape": [1, 3, 3, cout], "type": INT8, "scale": s_w,
                "zero_point": [0] * cout, "qdim": 3, "data": w},
               {"name": "b", "shape": [cout], "type": INT32, "scale": 0.04 * s_w,
                "zero_point": [0] * cout, "data": bias},
               _act("y", [1, 7, 4, cout], 0.07, 5)]
    ops = [{"code": 4, "inputs": [0, 1, 2], "outputs": [3], "options_type": 2, "options": opts}]
    _check(tmp_path, _build(tensors, ops, [0], [3]), (1, 7, 8, cin), 2)


@pytest.mark.parametrize("per_channel", [False, True])
def test_fully_connected(tmp_path, per_channel) -> None:
    rng = np.random.default_rng(5)
    k, units = 40, 9
    w = rng.integers(-127, 128, (units, k)).astype(np.int8)
    bias = rng.integers(-20000, 20000, units).astype(np.int32)
    s_w = (rng.uniform(0.001, 0.02, units) if per_channel else np.array([0.0123])).astype(np.float32)

    def opts(b):
        F = _m("FullyConnectedOptions")

        F.Start(b)
        F.AddFusedActivationFunction(b, 0)
        return F.End(b)

    tensors = [_act("x", [1, k], 0.11, 3),
               {"name": "w", "shape": [units, k], "type": INT8, "scale": s_w,
                "zero_point": [0] * s_w.size, "qdim": 0, "data": w},
               {"name": "b", "shape": [units], "type": INT32, "scale": 0.11 * s_w,
                "zero_point": [0] * s_w.size, "data": bias},
               _act("y", [1, units], 0.37, -2)]
    ops = [{"code": 9, "inputs": [0, 1, 2], "outputs": [3], "options_type": 8, "options": opts}]
    _check(tmp_path, _build(tensors, ops, [0], [3]), (1, k), 6)


def _add_like(code: int, options_type: int, act: int, shape_b: list[int]) -> bytes:
    def opts(b):
        A = _m("AddOptions")

        A.Start(b)
        A.AddFusedActivationFunction(b, act)
        return A.End(b)

    rng = np.random.default_rng(code)
    const = rng.integers(-128, 128, shape_b).astype(np.int8)
    tensors = [_act("a", [1, 4, 5, 6], 0.031, -7),
               {**_act("c", shape_b, 0.047, 11), "data": const},
               _act("y", [1, 4, 5, 6], 0.06, 2)]
    ops = [{"code": code, "inputs": [0, 1], "outputs": [2], "options_type": options_type,
            "options": opts}]
    return _build(tensors, ops, [0], [2])


@pytest.mark.parametrize("code, otype, act, shape_b", [
    (0, 11, 3, [1, 1, 1, 6]),    # ADD, broadcast over H, W, ReLU6
    (0, 11, 0, [1, 4, 5, 6]),    # ADD, same shape (constant operand)
    (41, 28, 1, [1, 4, 1, 6]),   # SUB, broadcast over W, ReLU
])
def test_add_sub_broadcast(tmp_path, code, otype, act, shape_b) -> None:
    _check(tmp_path, _add_like(code, otype, act, shape_b), (1, 4, 5, 6), 3)


@pytest.mark.parametrize("code, padding, k, stride", [(17, 0, 3, 2), (1, 0, 3, 2), (17, 1, 2, 2),
                                                       (1, 0, 4, 3)])
def test_pooling(tmp_path, code, padding, k, stride) -> None:
    from hwsim.fixedpoint.kernels.base import compute_padding

    def opts(b):
        P = _m("Pool2DOptions")

        P.Start(b)
        P.AddPadding(b, padding)
        P.AddStrideW(b, stride)
        P.AddStrideH(b, stride)
        P.AddFilterWidth(b, k)
        P.AddFilterHeight(b, k)
        P.AddFusedActivationFunction(b, 0)
        return P.End(b)

    h, w = 9, 7
    oh, ow = compute_padding(h, k, stride, 1, padding)[0], compute_padding(w, k, stride, 1, padding)[0]
    tensors = [_act("x", [1, h, w, 3], 0.02, 4), _act("y", [1, oh, ow, 3], 0.02, 4)]
    ops = [{"code": code, "inputs": [0], "outputs": [1], "options_type": 5, "options": opts}]
    _check(tmp_path, _build(tensors, ops, [0], [1]), (1, h, w, 3), 4)


@pytest.mark.parametrize("beta, depth, s_in", [(1.0, 37, 0.1), (0.5, 5, 0.02), (2.0, 100, 0.25)])
def test_softmax_beta_and_depth(tmp_path, beta, depth, s_in) -> None:
    def opts(b):
        S = _m("SoftmaxOptions")

        S.Start(b)
        S.AddBeta(b, beta)
        return S.End(b)

    tensors = [_act("x", [2, depth], s_in, 9), _act("y", [2, depth], 1 / 256, -128)]
    ops = [{"code": 25, "inputs": [0], "outputs": [1], "options_type": 9, "options": opts}]
    _check(tmp_path, _build(tensors, ops, [0], [1]), (2, depth), 5)


def test_quantize_float_and_requantize(tmp_path) -> None:
    tensors = [{"name": "x", "shape": [1, 30], "type": FLOAT32},
               _act("q", [1, 30], 0.013, -4), _act("r", [1, 30], 0.021, 6)]
    ops = [{"code": 114, "inputs": [0], "outputs": [1]}, {"code": 114, "inputs": [1], "outputs": [2]}]
    _check(tmp_path, _build(tensors, ops, [0], [2]), (1, 30), 7, dtype=np.float32)


@pytest.mark.parametrize("shape_b", [[1, 4, 5, 6], [1, 1, 1, 6]])
def test_mul(tmp_path, shape_b) -> None:
    def opts(b):
        M = _m("MulOptions")
        M.Start(b)
        M.AddFusedActivationFunction(b, 0)
        return M.End(b)

    rng = np.random.default_rng(11)
    const = rng.integers(-128, 128, shape_b).astype(np.int8)
    tensors = [_act("a", [1, 4, 5, 6], 0.031, -7), {**_act("c", shape_b, 0.047, 11), "data": const},
               _act("y", [1, 4, 5, 6], 0.013, 2)]
    ops = [{"code": 18, "inputs": [0, 1], "outputs": [2], "options_type": 21, "options": opts}]
    _check(tmp_path, _build(tensors, ops, [0], [2]), (1, 4, 5, 6), 12)


@pytest.mark.parametrize("code", [19, 21])
def test_relu_relu6_standalone(tmp_path, code) -> None:
    tensors = [_act("x", [1, 50], 0.07, -5), _act("y", [1, 50], 0.031, -128)]
    ops = [{"code": code, "inputs": [0], "outputs": [1]}]
    _check(tmp_path, _build(tensors, ops, [0], [1]), (1, 50), 13)


def test_pad_and_concatenation(tmp_path) -> None:
    pads = np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32)
    const = np.random.default_rng(14).integers(-128, 128, (1, 7, 5, 2)).astype(np.int8)

    def cat_opts(b):
        C = _m("ConcatenationOptions")
        C.Start(b)
        C.AddAxis(b, -1)
        C.AddFusedActivationFunction(b, 0)
        return C.End(b)

    tensors = [_act("x", [1, 4, 4, 3], 0.05, 3),
               {"name": "pads", "shape": [4, 2], "type": INT32, "data": pads},
               _act("p", [1, 7, 5, 3], 0.05, 3),
               {**_act("k", [1, 7, 5, 2], 0.05, 3), "data": const},
               _act("y", [1, 7, 5, 5], 0.05, 3)]
    ops = [{"code": 34, "inputs": [0, 1], "outputs": [2]},
           {"code": 2, "inputs": [2, 3], "outputs": [4], "options_type": 10, "options": cat_opts}]
    _check(tmp_path, _build(tensors, ops, [0], [4]), (1, 4, 4, 3), 15)


def test_conv2d_16x8(tmp_path) -> None:
    """int16 activations (Z = 0), int8 weights, int64 bias: the int64 requantization path."""
    INT16, INT64 = 7, 4
    rng = np.random.default_rng(21)
    cin, cout = 3, 4
    w = rng.integers(-127, 128, (cout, 3, 3, cin)).astype(np.int8)
    bias = rng.integers(-200000, 200000, cout).astype(np.int64)
    s_in, s_out = 0.0004, 0.0011
    s_w = rng.uniform(0.002, 0.02, cout).astype(np.float32)
    tensors = [{"name": "x", "shape": [1, 6, 5, cin], "type": INT16, "scale": [s_in], "zero_point": [0]},
               {"name": "w", "shape": [cout, 3, 3, cin], "type": INT8, "scale": s_w,
                "zero_point": [0] * cout, "qdim": 0, "data": w},
               {"name": "b", "shape": [cout], "type": INT64, "scale": s_in * s_w,
                "zero_point": [0] * cout, "data": bias},
               {"name": "y", "shape": [1, 6, 5, cout], "type": INT16, "scale": [s_out], "zero_point": [0]}]
    ops = [{"code": 3, "inputs": [0, 1, 2], "outputs": [3], "options_type": 1,
            "options": _conv_options(0, 1, 1, 0, 1, 1)}]
    path = tmp_path / "op16.tflite"
    path.write_bytes(_build(tensors, ops, [0], [3]))
    x = rng.integers(-32768, 32768, (N, 1, 6, 5, cin)).astype(np.int16)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    lite = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    micro = runtime.Interpreter.from_file(str(path))
    want_l, want_m = [], []
    for row in x:
        lite.set_tensor(lite.get_input_details()[0]["index"], row)
        lite.invoke()
        want_l.append(lite.get_tensor(lite.get_output_details()[0]["index"]).copy())
        micro.set_input(row, 0)
        micro.invoke()
        want_m.append(np.array(micro.get_output(0)))
    for rt, want in (("litert-ref", np.stack(want_l)), ("tflm", np.stack(want_m))):
        got, _ = Emulator.from_tflite(path, runtime=rt).run(x)
        assert got[0].dtype == np.int16
        assert np.array_equal(got[0], want), rt


@pytest.mark.parametrize("keep_dims, s_out, zp_out", [(True, 0.021, 4), (False, 0.03, -9),
                                                      (True, 0.05, 3)])
def test_mean_over_h_w(tmp_path, keep_dims, s_out, zp_out) -> None:
    def opts(b):
        R = _m("ReducerOptions")
        R.Start(b)
        R.AddKeepDims(b, keep_dims)
        return R.End(b)

    out_shape = [1, 1, 1, 6] if keep_dims else [1, 6]
    tensors = [_act("x", [1, 5, 7, 6], 0.05, 3),
               {"name": "axes", "shape": [2], "type": INT32, "data": np.array([1, 2], np.int32)},
               _act("y", out_shape, s_out, zp_out)]
    ops = [{"code": 40, "inputs": [0, 1], "outputs": [2], "options_type": 27, "options": opts}]
    _check(tmp_path, _build(tensors, ops, [0], [2]), (1, 5, 7, 6), 16)


def test_mean_over_channels_and_width(tmp_path) -> None:
    def opts(b):
        R = _m("ReducerOptions")
        R.Start(b)
        R.AddKeepDims(b, False)
        return R.End(b)

    tensors = [_act("x", [1, 5, 7, 6], 0.05, 3),
               {"name": "axes", "shape": [2], "type": INT32, "data": np.array([3, -2], np.int32)},
               _act("y", [1, 5], 0.011, -20)]
    ops = [{"code": 40, "inputs": [0, 1], "outputs": [2], "options_type": 27, "options": opts}]
    _check(tmp_path, _build(tensors, ops, [0], [2]), (1, 5, 7, 6), 17)


@pytest.mark.parametrize("code, s_in, zp_in", [(14, 0.05, 3), (14, 0.12, -20), (28, 0.03, 0),
                                               (28, 0.09, 17)])
def test_logistic_tanh(tmp_path, code, s_in, zp_in) -> None:
    out = _act("y", [1, 64], 1 / 256, -128) if code == 14 else _act("y", [1, 64], 1 / 128, 0)
    tensors = [_act("x", [1, 64], s_in, zp_in), out]
    ops = [{"code": code, "inputs": [0], "outputs": [1]}]
    _check(tmp_path, _build(tensors, ops, [0], [1]), (1, 64), 18)


def test_dequantize_round_trip(tmp_path) -> None:
    tensors = [{"name": "x", "shape": [1, 30], "type": FLOAT32},
               _act("q", [1, 30], 0.013, -4), {"name": "y", "shape": [1, 30], "type": FLOAT32}]
    ops = [{"code": 114, "inputs": [0], "outputs": [1]}, {"code": 6, "inputs": [1], "outputs": [2]}]
    _check(tmp_path, _build(tensors, ops, [0], [2]), (1, 30), 19, dtype=np.float32)


def test_add_int16_pot_scales_is_rejected(tmp_path) -> None:
    from hwsim.errors import ModelError

    def opts(b):
        A = _m("AddOptions")
        A.Start(b)
        A.AddPotScaleInt16(b, True)
        return A.End(b)

    tensors = [{"name": n, "shape": [1, 4], "type": 7, "scale": [2 ** -10], "zero_point": [0]}
               for n in ("a", "b", "y")]
    ops = [{"code": 0, "inputs": [0, 1], "outputs": [2], "options_type": 11, "options": opts}]
    path = tmp_path / "addpot.tflite"
    path.write_bytes(_build(tensors, ops, [0, 1], [2]))
    with pytest.raises(ModelError, match="pot_scale_int16"):
        Emulator.from_tflite(path)


@pytest.mark.parametrize("pot", [False])
def test_add_int16(tmp_path, pot) -> None:
    INT16 = 7

    def opts(b):
        A = _m("AddOptions")
        A.Start(b)
        A.AddFusedActivationFunction(b, 0)
        A.AddPotScaleInt16(b, pot)
        return A.End(b)

    s = [2 ** -10, 2 ** -9, 2 ** -8] if pot else [0.00031, 0.00047, 0.0006]
    tensors = [{"name": "a", "shape": [1, 40], "type": INT16, "scale": [s[0]], "zero_point": [0]},
               {"name": "b", "shape": [1, 40], "type": INT16, "scale": [s[1]], "zero_point": [0]},
               {"name": "y", "shape": [1, 40], "type": INT16, "scale": [s[2]], "zero_point": [0]}]
    ops = [{"code": 0, "inputs": [0, 1], "outputs": [2], "options_type": 11, "options": opts}]
    path = tmp_path / "add16.tflite"
    path.write_bytes(_build(tensors, ops, [0, 1], [2]))
    rng = np.random.default_rng(20)
    xa = rng.integers(-32768, 32768, (N, 1, 40)).astype(np.int16)
    xb = rng.integers(-32768, 32768, (N, 1, 40)).astype(np.int16)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    lite = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    micro = runtime.Interpreter.from_file(str(path))
    want = {"litert-ref": [], "tflm": []}
    det = lite.get_input_details()
    for a, b in zip(xa, xb):
        lite.set_tensor(det[0]["index"], a)
        lite.set_tensor(det[1]["index"], b)
        lite.invoke()
        want["litert-ref"].append(lite.get_tensor(lite.get_output_details()[0]["index"]).copy())
        micro.set_input(a, 0)
        micro.set_input(b, 1)
        micro.invoke()
        want["tflm"].append(np.array(micro.get_output(0)))
    for rt, w in want.items():
        got, _ = Emulator.from_tflite(path, runtime=rt).run([xa, xb])
        bad = int(np.count_nonzero(got[0] != np.stack(w)))
        assert bad == 0, f"[{rt}] {bad} values differ"


def test_conv2d_uint8_legacy_litert(tmp_path) -> None:
    """uint8 per-tensor conv with a weight zero point (LiteRT only: TFLM dropped uint8 conv)."""
    UINT8 = 3
    rng = np.random.default_rng(22)
    w = rng.integers(0, 256, (4, 3, 3, 2)).astype(np.uint8)
    bias = rng.integers(-3000, 3000, 4).astype(np.int32)
    tensors = [{"name": "x", "shape": [1, 6, 6, 2], "type": UINT8, "scale": [0.04], "zero_point": [120]},
               {"name": "w", "shape": [4, 3, 3, 2], "type": UINT8, "scale": [0.01], "zero_point": [131],
                "data": w},
               {"name": "b", "shape": [4], "type": INT32, "scale": [0.0004], "zero_point": [0], "data": bias},
               {"name": "y", "shape": [1, 6, 6, 4], "type": UINT8, "scale": [0.08], "zero_point": [100]}]
    ops = [{"code": 3, "inputs": [0, 1, 2], "outputs": [3], "options_type": 1,
            "options": _conv_options(0, 1, 1, 1, 1, 1)}]
    path = tmp_path / "u8.tflite"
    path.write_bytes(_build(tensors, ops, [0], [3]))
    x = rng.integers(0, 256, (N, 1, 6, 6, 2)).astype(np.uint8)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    lite = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    want = []
    for row in x:
        lite.set_tensor(lite.get_input_details()[0]["index"], row)
        lite.invoke()
        want.append(lite.get_tensor(lite.get_output_details()[0]["index"]).copy())
    got, _ = Emulator.from_tflite(path, runtime="litert-ref").run(x)
    assert np.array_equal(got[0], np.stack(want))


@pytest.mark.parametrize("begin, end, strides, bm, em, sm, out_shape", [
    ([0, 1, 0, 2], [1, 8, 5, 6], [1, 2, 1, 1], 0, 0, 0, [1, 4, 5, 4]),
    ([0, -3, 4, 0], [1, 0, 0, 6], [1, 1, 2, 3], 4, 6, 0, [1, 3, 3, 2]),
    ([0, 2, 0, 0], [1, 3, 5, 6], [1, 1, 1, 1], 0, 12, 2, [1, 5, 6]),
])
def test_strided_slice(tmp_path, begin, end, strides, bm, em, sm, out_shape) -> None:
    def opts(b):
        S = _m("StridedSliceOptions")
        S.Start(b)
        S.AddBeginMask(b, bm)
        S.AddEndMask(b, em)
        S.AddShrinkAxisMask(b, sm)
        return S.End(b)

    tensors = [_act("x", [1, 8, 5, 6], 0.05, 3),
               {"name": "begin", "shape": [4], "type": INT32, "data": np.array(begin, np.int32)},
               {"name": "end", "shape": [4], "type": INT32, "data": np.array(end, np.int32)},
               {"name": "strides", "shape": [4], "type": INT32, "data": np.array(strides, np.int32)},
               _act("y", out_shape, 0.05, 3)]
    ops = [{"code": 45, "inputs": [0, 1, 2, 3], "outputs": [4], "options_type": 32, "options": opts}]
    _check(tmp_path, _build(tensors, ops, [0], [4]), (1, 8, 5, 6), 23)
