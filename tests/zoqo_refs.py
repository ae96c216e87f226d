"""Pure-Python references for ZOQO's integer noise, written from the spec (docs/algorithms.md),
independent of the code under test; shared by test_zoqo.py and test_zoqo_fast.py."""
from __future__ import annotations

M32 = (1 << 32) - 1


def ref_h(x: int) -> int:
    """lowbias32 from its published constants."""
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def ref_keys(seed: int, step: int, group: int) -> int:
    k1 = ref_h(ref_h(seed ^ 0x9E3779B9) ^ step)
    return ref_h(k1 ^ ((group * 0x85EBCA6B) & M32))


def ref_inverse_cdf(table: list[int], r: int, k: int) -> int:
    for i, t in enumerate(table):
        if r < t:
            return i - k
    raise AssertionError("r beyond the table")
