"""Shapes of the weighted layers of standard CIFAR models (VGG16, ResNet18), as plain data.

Why: the ILP, Φ tables, the compression ratio and shapes-only cost runs all need the same layer
list (parameter counts, MACs, activation shapes, which layers are tied). Keeping it as data — not as
a torch module — lets `hwsim allocate` cost a 11M-parameter model in milliseconds. The counts match
docs/algorithms.md §3.8 (VGG16 "1FC" head = Kundu's public code; ResNet18 CIFAR with 3 shortcut
1×1 convs tied to the first conv of their block, the paper's "input layer" rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from hwsim.errors import ModelError


@dataclass(frozen=True)
class LayerSpec:
    """One weighted layer (conv2d NCHW/OIHW or linear), with the activation shapes it sees."""

    name: str
    kind: str                      # "conv" | "linear"
    in_channels: int
    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    in_hw: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = False
    bn: bool = False               # followed by a BatchNorm (γ, β per output channel)
    tie: str | None = None         # name of the layer whose bit width this one must share
    fixed_bits: int | None = None  # e.g. 16 for the first and last layers (paper)
    out_hw_given: tuple[int, int] | None = None   # e.g. TFLite SAME padding with odd total padding

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.kind == "linear":
            return (1, 1)
        if self.out_hw_given is not None:
            return self.out_hw_given
        h = (self.in_hw[0] + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        w = (self.in_hw[1] + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        return (h, w)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind == "linear":
            return (self.out_channels, self.in_channels)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    @property
    def weight_count(self) -> int:
        return math.prod(self.weight_shape)

    @property
    def bias_count(self) -> int:
        return self.out_channels if self.bias else 0

    @property
    def bn_count(self) -> int:
        return 2 * self.out_channels if self.bn else 0

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        if self.kind == "linear":
            return (batch, self.in_channels)
        return (batch, self.in_channels, *self.in_hw)

    def output_shape(self, batch: int = 1) -> tuple[int, ...]:
        if self.kind == "linear":
            return (batch, self.out_channels)
        return (batch, self.out_channels, *self.out_hw)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass for one sample."""
        oh, ow = self.out_hw
        return self.weight_count * oh * ow


@dataclass(frozen=True)
class ModelSpec:
    """An ordered list of weighted layers plus the input shape (C, H, W) and class count."""

    name: str
    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, ...]
    num_classes: int
    notes: str = ""
    meta: dict = field(default_factory=dict)

    def layer(self, name: str) -> LayerSpec:
        for spec in self.layers:
            if spec.name == name:
                return spec
        raise ModelError(f"model {self.name!r} has no layer {name!r}; "
                         f"layers: {', '.join(s.name for s in self.layers)}")

    @property
    def ties(self) -> list[tuple[str, str]]:
        return [(s.name, s.tie) for s in self.layers if s.tie]

    @property
    def fixed(self) -> dict[str, int]:
        return {s.name: s.fixed_bits for s in self.layers if s.fixed_bits is not None}


def _conv(name: str, cin: int, cout: int, hw: int, *, k: int = 3, stride: int = 1,
          tie: str | None = None, fixed: int | None = None) -> LayerSpec:
    pad = k // 2
    return LayerSpec(name, "conv", cin, cout, (k, k), (stride, stride), (pad, pad), (hw, hw),
                     bias=False, bn=True, tie=tie, fixed_bits=fixed)


def vgg16_cifar(num_classes: int = 10, head: str = "1fc", first_last_bits: int | None = 16
                ) -> ModelSpec:
    """VGG16 for 32×32 inputs. head: "1fc" (512→C, Kundu's code), "3sfc" (512→512→512→C),
    "3lfc" (512→4096→4096→C)."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list[LayerSpec] = []
    cin, hw, idx = 3, 32, 0
    for item in cfg:
        if item == "M":
            hw //= 2
            continue
        idx += 1
        layers.append(_conv(f"conv{idx}", cin, int(item), hw,
                            fixed=first_last_bits if idx == 1 else None))
        cin = int(item)
    widths = {"1fc": [], "3sfc": [512, 512], "3lfc": [4096, 4096]}
    if head not in widths:
        raise ModelError(f"unknown VGG16 head {head!r}; use one of {', '.join(widths)}")
    fin = 512
    for j, width in enumerate(widths[head], start=1):
        layers.append(LayerSpec(f"fc{j}", "linear", fin, width, bias=True))
        fin = width
    layers.append(LayerSpec("classifier", "linear", fin, num_classes, bias=True,
                            fixed_bits=first_last_bits))
    return ModelSpec(f"vgg16-cifar{num_classes}", tuple(layers), (3, 32, 32), num_classes,
                     notes=f"VGG16 CIFAR, head {head}, BN after every conv",
                     meta={"pools": {f"conv{i}": 2 for i in (2, 4, 7, 10, 13)}})


def resnet18_cifar(num_classes: int = 10, first_last_bits: int | None = 16) -> ModelSpec:
    """ResNet18 (CIFAR variant: 3×3 stem, no max-pool); shortcut convs tied to their block's conv1."""
    layers: list[LayerSpec] = [_conv("conv1", 3, 64, 32, fixed=first_last_bits)]
    cin, hw = 64, 32
    for stage, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for block in range(2):
            s = stride if block == 0 else 1
            base = f"layer{stage}.{block}"
            layers.append(_conv(f"{base}.conv1", cin, cout, hw, stride=s))
            out_hw = hw // s
            layers.append(_conv(f"{base}.conv2", cout, cout, out_hw))
            if s != 1 or cin != cout:
                layers.append(_conv(f"{base}.shortcut", cin, cout, hw, k=1, stride=s,
                                    tie=f"{base}.conv1"))
            cin, hw = cout, out_hw
    layers.append(LayerSpec("fc", "linear", 512, num_classes, bias=True,
                            fixed_bits=first_last_bits))
    return ModelSpec(f"resnet18-cifar{num_classes}", tuple(layers), (3, 32, 32), num_classes,
                     notes="ResNet18 CIFAR (BasicBlock), shortcut 1x1 convs tied to block conv1")


def digits_cnn(num_classes: int = 10, first_last_bits: int | None = 16) -> ModelSpec:
    """Small CNN for sklearn's 8×8 digits (BMPQ runs on a CPU in minutes).

    conv1 1→16 (8×8) → conv2 16→32 → pool 2 → conv3 32→32 (4×4) → pool 2 → fc1 128→64 → fc2 64→C.
    """
    layers = (
        LayerSpec("conv1", "conv", 1, 16, (3, 3), (1, 1), (1, 1), (8, 8), fixed_bits=first_last_bits),
        LayerSpec("conv2", "conv", 16, 32, (3, 3), (1, 1), (1, 1), (8, 8)),
        LayerSpec("conv3", "conv", 32, 32, (3, 3), (1, 1), (1, 1), (4, 4)),
        LayerSpec("fc1", "linear", 128, 64, bias=True),
        LayerSpec("fc2", "linear", 64, num_classes, bias=True, fixed_bits=first_last_bits),
    )
    return ModelSpec("digits-cnn", layers, (1, 8, 8), num_classes,
                     notes="small CNN for sklearn digits (8x8)", meta={"pools": {"conv2": 2, "conv3": 2}})


#: Built-in shapes-only models for `hwsim allocate --model NAME`.
BUILTIN_MODELS = {
    "resnet18-cifar10": lambda: resnet18_cifar(10),
    "resnet18-cifar100": lambda: resnet18_cifar(100),
    "vgg16-cifar10": lambda: vgg16_cifar(10),
    "vgg16-cifar100": lambda: vgg16_cifar(100),
    "vgg16-3sfc-cifar10": lambda: vgg16_cifar(10, head="3sfc"),
    "digits-cnn": lambda: digits_cnn(10),
}


def from_tflite(path, first_last_bits: int | None = 16) -> ModelSpec:
    """Weighted layers (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) of a .tflite file as specs.

    Why: `hwsim allocate --model m.tflite` allocates widths per weighted layer; shapes come from the
    flatbuffer's tensors (NHWC activations, OHWI / 1HWC filters), nothing else is needed.
    """
    from pathlib import Path

    import tflite
    if Path(path).is_dir():
        raise ModelError(f"--model {path}: is a directory, expected a file (a .tflite model)")
    raw = Path(path).read_bytes()
    if len(raw) < 8 or raw[4:8] != b"TFL3":   # same check and message as the emulator's importer
        raise ModelError(f"{path}: not a TFLite flatbuffer (missing the 'TFL3' file identifier); "
                         "pass a .tflite model exported by the TFLite converter")
    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        graph = model.Subgraphs(0)
    except Exception as err:  # flatbuffers raises assorted errors on garbage
        raise ModelError(f"{path}: not a readable .tflite flatbuffer ({err.__class__.__name__}); "
                         "pass a TFLite model file") from None
    codes = {tflite.BuiltinOperator.CONV_2D: "conv", tflite.BuiltinOperator.DEPTHWISE_CONV_2D: "dw",
             tflite.BuiltinOperator.FULLY_CONNECTED: "linear"}
    layers: list[LayerSpec] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        kind = codes.get(code)
        if kind is None:
            continue
        x = graph.Tensors(op.Inputs(0)).ShapeAsNumpy().tolist()
        w = graph.Tensors(op.Inputs(1)).ShapeAsNumpy().tolist()
        y = graph.Tensors(op.Outputs(0)).ShapeAsNumpy().tolist()
        has_bias = op.InputsLength() > 2 and op.Inputs(2) >= 0
        name = f"{i:03d}_{kind}"
        if kind == "linear":
            layers.append(LayerSpec(name, "linear", int(w[1]), int(w[0]), bias=has_bias))
            continue
        opts = tflite.Conv2DOptions() if kind == "conv" else tflite.DepthwiseConv2DOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        stride = (opts.StrideH(), opts.StrideW())
        kh, kw = int(w[1]), int(w[2])
        cin = int(x[3])
        if kind == "conv":
            spec = LayerSpec(name, "conv", cin, int(w[0]), (kh, kw), stride, (0, 0),
                             (int(x[1]), int(x[2])), bias=has_bias, out_hw_given=(int(y[1]), int(y[2])))
        else:
            spec = LayerSpec(name, "conv", cin, int(w[3]), (kh, kw), stride, (0, 0),
                             (int(x[1]), int(x[2])), groups=cin, bias=has_bias,
                             out_hw_given=(int(y[1]), int(y[2])))
        layers.append(spec)
    if not layers:
        raise ModelError(f"{path}: no CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer to allocate")
    if first_last_bits:
        import dataclasses
        layers[0] = dataclasses.replace(layers[0], fixed_bits=first_last_bits)
        layers[-1] = dataclasses.replace(layers[-1], fixed_bits=first_last_bits)
    t = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy().tolist()
    return ModelSpec(Path(path).stem, tuple(layers), tuple(int(v) for v in t[1:]), 0,
                     notes=f"weighted layers of {Path(path).name}")


def builtin_model(name: str) -> ModelSpec:
    if name not in BUILTIN_MODELS:
        raise ModelError(f"unknown built-in model {name!r}; known: {', '.join(BUILTIN_MODELS)} "
                         "(or an MLPerf Tiny name such as resnet8, kws, or a .tflite file)")
    return BUILTIN_MODELS[name]()
