"""TFLite import: graph contents and clear ModelErrors for bad files / unsupported ops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwsim.emulator import Emulator
from hwsim.errors import ModelError
from hwsim.models.tflite_import import load_tflite

MODELS_DIR = Path(__file__).resolve().parent / "data" / "mlperf_tiny"


def test_graph_contents_of_kws() -> None:
    g = load_tflite(MODELS_DIR / "kws_ref_model.tflite")
    assert [op.opcode for op in g.ops][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    conv = g.ops[0]
    assert conv.options["stride_h"] == 2 and conv.options["padding"] == 0  # SAME
    x, w, b = (g.tensors[i] for i in conv.inputs)
    assert x.shape == (1, 49, 10, 1) and x.dtype == np.int8 and x.zp == 83
    assert w.data is not None and w.data.shape == (64, 10, 4, 1) and w.per_channel
    assert w.scale.dtype == np.float32 and w.scale.size == 64 and w.quantized_dimension == 0
    assert b.data is not None and b.data.dtype == np.int32
    dw_w = g.tensors[g.ops[1].inputs[1]]
    assert dw_w.quantized_dimension == 3
    assert g.ops[-1].opcode == "SOFTMAX" and g.ops[-1].options["beta"] == 1.0


def test_missing_garbage_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_tflite(tmp_path / "nope.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"hello world, not a flatbuffer")
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        load_tflite(junk)
    raw = (MODELS_DIR / "kws_ref_model.tflite").read_bytes()
    for cut in (16, 200, 3000, len(raw) // 2):
        trunc = tmp_path / f"trunc{cut}.tflite"
        trunc.write_bytes(raw[:cut])
        with pytest.raises(ModelError, match="trunc"):
            load_tflite(trunc)


def test_unsupported_op_names_op_and_model(tmp_path: Path) -> None:
    """Rename the SOFTMAX opcode in the file's operator-code table to HARD_SWISH (builtin 117)."""
    import tflite

    path = MODELS_DIR / "kws_ref_model.tflite"
    raw = bytearray(path.read_bytes())
    model = tflite.Model.GetRootAs(bytes(raw), 0)
    target = None
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        if oc.BuiltinCode() == tflite.BuiltinOperator.SOFTMAX:
            target = oc
    assert target is not None
    # patch both the int32 builtin_code and the int8 deprecated_builtin_code fields in place
    tab = target._tab
    for slot, fmt in ((4, np.int8), (10, np.int32)):  # vtable slots of the two fields
        off = tab.Offset(slot)
        if not off:  # old files carry only the deprecated int8 field
            continue
        raw[tab.Pos + off:tab.Pos + off + np.dtype(fmt).itemsize] = \
            np.array([tflite.BuiltinOperator.HARD_SWISH], dtype=fmt).tobytes()
    bad = tmp_path / "kws_hswish.tflite"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match=r"HARD_SWISH") as err:
        Emulator.from_tflite(bad)
    assert "kws_hswish" in str(err.value)


def test_unknown_runtime_is_a_user_error() -> None:
    from hwsim.errors import HwsimError

    with pytest.raises(HwsimError, match="runtime"):
        Emulator.from_tflite(MODELS_DIR / "ad01_int8.tflite", runtime="tflite-gpu")


def test_registry_names_and_aliases() -> None:
    from hwsim.models import registry

    assert registry.resolve("resnet8").name == "pretrainedResnet_quant.tflite"
    assert registry.resolve("IC") == registry.resolve("resnet8")
    assert registry.resolve("str_ww").name == "str_ww_ref_model.tflite"
    assert registry.resolve("not-a-model") is None
    with pytest.raises(ModelError, match="builtin"):
        registry.model_path("not-a-model")
    for name in registry.list_models():
        assert registry.model_path(name).is_file()
