"""Compression ratio (BMPQ eqs. 10–12) against hand-computed layer lists (docs/algorithms.md §3.8)."""
from __future__ import annotations

from fractions import Fraction

import pytest

from hwsim.compression import CompressionTerms, compression_ratio, memory_bmpq_mb, memory_fp32_mb
from hwsim.errors import HwsimError
from hwsim.models.layer_specs import resnet18_cifar, vgg16_cifar

# Parameter counts copied from algorithms.md §3.8 (independent of the layer-spec builders).
VGG16_CONV = [1728, 36864, 73728, 147456, 294912, 589824, 589824, 1179648] + [2359296] * 5
RESNET18_MAIN = ([1728] + [36864] * 4 + [73728] + [147456] * 3 + [294912] + [589824] * 3
                 + [1179648] + [2359296] * 3)
RESNET18_SHORTCUTS = [8192, 32768, 131072]


def test_layer_counts_match_the_digest():
    vgg = vgg16_cifar(10)
    assert [s.weight_count for s in vgg.layers] == VGG16_CONV + [5120]
    assert sum(s.weight_count for s in vgg.layers) == 14_715_584
    res = resnet18_cifar(10)
    main = [s for s in res.layers if s.tie is None]
    assert [s.weight_count for s in main] == RESNET18_MAIN + [5120]
    assert sum(s.weight_count for s in main) == 10_992_320
    assert [s.weight_count for s in res.layers if s.tie] == RESNET18_SHORTCUTS


def test_vgg16_exact_fraction_hand_computed():
    bits = [16, 4, 4, 2, 4, 2, 2, 2, 2, 2, 2, 2, 4, 16]
    params = VGG16_CONV + [512 * 10]
    # by hand: 32·Σp / Σ p·q
    num = 32 * 14_715_584
    den = (1728 * 16 + 36864 * 4 + 73728 * 4 + 147456 * 2 + 294912 * 4 + 589824 * 2 + 589824 * 2
           + 1179648 * 2 + 2359296 * 2 * 4 + 2359296 * 4 + 5120 * 16)
    assert compression_ratio(vgg16_cifar(10), bits) == Fraction(num, den)
    assert compression_ratio(vgg16_cifar(10), bits, baseline_bits=16) == Fraction(num, 2 * den)
    assert memory_fp32_mb(params) / memory_bmpq_mb(params, bits) == Fraction(num, den)


def test_all_two_bit_bound_from_the_digest():
    vgg = vgg16_cifar(10)
    r = compression_ratio(vgg, [16] + [2] * 12 + [16])
    assert round(float(r), 2) == 15.95


def test_resnet18_c10_vector_reproduces_digest_numbers():
    vec = [16, 2, 2, 4, 2, 4, 4, 2, 2, 4, 4, 4, 2, 2, 2, 2, 2, 16]
    res = resnet18_cifar(10)
    main = [s for s in res.layers if s.tie is None]
    r = compression_ratio(main, vec)
    den = sum(p * q for p, q in zip(RESNET18_MAIN + [5120], vec))
    assert r == Fraction(32 * 10_992_320, den)
    assert round(float(r), 2) == 13.77
    # shortcuts take their block conv1's bits (the "input layer" rule) -> 13.76
    bits = dict(zip([s.name for s in main], vec))
    bits.update({s.name: bits[s.tie] for s in res.layers if s.tie})
    assert round(float(compression_ratio(res, bits)), 2) == 13.76
    # + BN kept in FP32 -> 13.65 (digest)
    assert round(float(compression_ratio(main, vec, terms=CompressionTerms(bn=True))), 2) == 13.65
    # the 100-class FC quirk -> 13.44
    main100 = [s for s in resnet18_cifar(100).layers if s.tie is None]
    assert round(float(compression_ratio(main100, vec)), 2) == 13.44


def test_bias_and_scale_terms_count_in_both_sizes():
    vgg = vgg16_cifar(10)
    bits = [16] + [4] * 12 + [16]
    p = sum(VGG16_CONV) + 5120
    mp = sum(a * b for a, b in zip(VGG16_CONV + [5120], bits))
    r = compression_ratio(vgg, bits, terms=CompressionTerms(bias=True, scales=True))
    extra = 10 + 14            # classifier bias + one scale per layer
    assert r == Fraction(32 * (p + extra), mp + 32 * extra)


def test_wrong_length_is_a_user_error():
    with pytest.raises(HwsimError, match="14 weighted layers"):
        compression_ratio(vgg16_cifar(10), [16, 4, 16])
