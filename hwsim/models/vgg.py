"""BMPQ VGG16 (CIFAR) network built from its layer spec.

Why: the same exact-integer layers used on digits run VGG16 in shapes-only mode (meta tensors) to
cost a BMPQ training epoch and the resulting mixed-precision inference on any target. BN is not
modelled as a separate op (folded at inference; its training cost is omitted — stated in reports).
"""
from __future__ import annotations

from hwsim.algorithms.bmpq import SequentialQNet
from hwsim.models.layer_specs import ModelSpec, vgg16_cifar


def bmpq_sequential(spec: ModelSpec, **kw) -> SequentialQNet:
    """A chain net for any ModelSpec whose `meta["pools"]` names the max-pools."""
    return SequentialQNet(spec, spec.meta.get("pools", {}), **kw)


def bmpq_vgg16(num_classes: int = 10, head: str = "1fc", **kw) -> SequentialQNet:
    return bmpq_sequential(vgg16_cifar(num_classes, head=head), **kw)
