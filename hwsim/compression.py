"""Model compression ratio of BMPQ (Kundu et al., DATE 2022, eqs. 10–12).

Why: the paper reports r^32 = M_fp32 / M_BMPQ with M in MB of *weights only*; the per-layer scale,
bias and BN are ignored. We implement the equations exactly and expose the omitted terms as
options (each counted in both numerator and denominator) so their effect can be reported.
Exact rational arithmetic (fractions) keeps tests free of tolerances.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping, Sequence

from hwsim.errors import HwsimError

MIB = 2 ** 20


@dataclass(frozen=True)
class CompressionTerms:
    """Which parameters count. Defaults reproduce eqs. 10–12 (weights only)."""

    bias: bool = False          # biases stored at `extra_bits` in the quantized model
    bn: bool = False            # BN γ, β (2 per channel) at `extra_bits`
    scales: bool = False        # one scale per quantized layer at `extra_bits`
    extra_bits: int = 32        # FP32, as the paper stores its scale


def _bits_for(bits: Mapping[str, int] | Sequence[int], names: list[str]) -> list[int]:
    if isinstance(bits, Mapping):
        missing = [n for n in names if n not in bits]
        if missing:
            raise HwsimError(f"compression ratio: no bit width for layer(s) {', '.join(missing)}")
        return [int(bits[n]) for n in names]
    vec = [int(b) for b in bits]
    if len(vec) != len(names):
        raise HwsimError(f"compression ratio: bit vector has {len(vec)} entries but the model has "
                         f"{len(names)} weighted layers ({', '.join(names)})")
    return vec


def memory_fp32_mb(param_counts: Sequence[int]) -> Fraction:
    """Eq. 10: M_fp32 = 4·Σ p_l / 2^20 (MB)."""
    return Fraction(4 * sum(param_counts), MIB)


def memory_bmpq_mb(param_counts: Sequence[int], bits: Sequence[int]) -> Fraction:
    """Eq. 11: M_BMPQ = (4/32)·Σ p_l q_l / 2^20 (MB)."""
    return Fraction(4, 32) * Fraction(sum(p * q for p, q in zip(param_counts, bits)), MIB)


def compression_ratio(layers, bits: Mapping[str, int] | Sequence[int], *, baseline_bits: int = 32,
                      terms: CompressionTerms = CompressionTerms()) -> Fraction:
    """r^32 (baseline_bits=32) or r^16 = 0.5·r^32 (baseline_bits=16), eq. 12, as an exact Fraction.

    `layers`: LayerSpec objects (or a ModelSpec). Extra terms add `extra_bits` per counted value to
    the quantized size and 32 bits per value to the FP32 size.
    """
    specs = list(getattr(layers, "layers", layers))
    names = [s.name for s in specs]
    q = _bits_for(bits, names)
    for name, b in zip(names, q):
        if b <= 0:
            raise HwsimError(f"compression ratio: layer {name} has bit width {b}; must be ≥ 1")
    p = [s.weight_count for s in specs]
    fp_bits = 32 * sum(p)
    mp_bits = sum(pi * qi for pi, qi in zip(p, q))
    extra = 0
    if terms.bias:
        extra += sum(s.bias_count for s in specs)
    if terms.bn:
        extra += sum(s.bn_count for s in specs)
    if terms.scales:
        extra += len(specs)
    fp_bits += 32 * extra
    mp_bits += terms.extra_bits * extra
    r32 = Fraction(fp_bits, mp_bits)
    if baseline_bits == 32:
        return r32
    if baseline_bits == 16:
        return r32 / 2
    raise HwsimError(f"compression ratio: baseline_bits must be 32 or 16, got {baseline_bits}")


def weight_bits_budget(layers, ratio: float) -> Fraction:
    """Largest Σ p_l q_l (bits) that still gives r^32 ≥ ratio (weights only): 32·Σp / ratio."""
    if ratio <= 0:
        raise HwsimError(f"compression ratio budget must be > 0, got {ratio}")
    specs = list(getattr(layers, "layers", layers))
    return Fraction(32 * sum(s.weight_count for s in specs)) / Fraction(ratio).limit_denominator(10**9)
