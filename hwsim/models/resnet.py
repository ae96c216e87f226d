"""BMPQ ResNet18 (CIFAR) network built from its layer spec.

Why: residual blocks need a topology the chain net lacks. The shortcut 1×1 conv reuses the block
input codes its partner conv1 produced (they are tied to the same width: the paper's "downsampling
layers have the same bit width as its input layer"). BN is not modelled (see vgg.py).
"""
from __future__ import annotations

import torch.nn.functional as F

from hwsim.algorithms.bmpq import QNet
from hwsim.models.layer_specs import ModelSpec, resnet18_cifar
from hwsim.trace import TensorInfo


class ResNetQNet(QNet):
    """stem conv → BasicBlocks (conv1, conv2, optional shortcut) → global average pool → fc."""

    def __init__(self, spec: ModelSpec, **kw):
        super().__init__(spec, **kw)
        names = [s.name for s in spec.layers]
        self.blocks = sorted({n.rsplit(".", 1)[0] for n in names if n.startswith("layer")},
                             key=lambda b: (int(b[5:].split(".")[0]), int(b.split(".")[1])))
        self.stem, self.head = names[0], names[-1]
        self.names = set(names)

    def forward_traced(self, x, trace, records):
        src = TensorInfo("input", tuple(x.shape), 32, "input", "fp32")
        trace.alloc(src)
        h, src = self.layer(self.stem)(x, trace, records, src=src)
        trace.free(TensorInfo("input", tuple(x.shape), 32, "input", "fp32"))
        for block in self.blocks:
            c1 = self.layer(f"{block}.conv1")
            y1, o1 = c1(h, trace, records, src=src)
            trace.free(src)
            a_fq, _, _, codes_info = c1._quantized
            if f"{block}.shortcut" in self.names:
                ys, os_ = self.layer(f"{block}.shortcut")(h, trace, records, quantized=c1._quantized)
            else:
                ys, os_ = a_fq, codes_info
            y2, o2 = self.layer(f"{block}.conv2")(y1, trace, records, src=o1)
            trace.free(o1)
            out = y2 + ys
            info = TensorInfo(f"{block}.out", tuple(out.shape), 32, "activation", "int32")
            trace.alloc(info)
            trace.op("add", f"{block}.add", [o2, os_], [info],
                     {("elementwise", "int32"): 3 * out.numel()}, layer=block)
            trace.free(o2)
            if os_ is not codes_info:
                trace.free(os_)
            h, src = out, info
        pooled = F.adaptive_avg_pool2d(h, 1).flatten(1)
        pinfo = TensorInfo("avgpool", tuple(pooled.shape), 32, "activation", "int32")
        trace.alloc(pinfo)
        trace.op("avg_pool2d", "avgpool", [src], [pinfo], {("elementwise", "int32"): h.numel()},
                 layer="avgpool")
        trace.free(src)
        y, out_info = self.layer(self.head)(pooled, trace, records, src=pinfo)
        trace.free(pinfo)
        return y, out_info


def bmpq_resnet18(num_classes: int = 10, **kw) -> ResNetQNet:
    return ResNetQNet(resnet18_cifar(num_classes), **kw)
