"""Unit parsing is exact and strict (oracle: binary/decimal prefix arithmetic by hand)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwsim.units import UnitError, format_quantity, parse_quantity, parse_size_bytes


@pytest.mark.parametrize(
    "text,dim,expected",
    [
        ("512 KiB", "size", 524288),
        ("1 MiB", "size", 1048576),
        ("2 GiB", "size", 2 * 1024**3),
        ("640 kB", "size", 640000),
        ("8 bit", "size", 1),
        ("480 MHz", "frequency", 480_000_000),
        ("1 GHz", "frequency", 10**9),
        ("25 GB/s", "bandwidth", 25e9),
        ("3.35 TB/s", "bandwidth", 3.35e12),
        ("20 Gb/s", "bandwidth", 2.5e9),
        ("1.2 pJ", "energy", 1.2e-12),
        ("0.5 pJ/B", "energy_per_byte", 0.5e-12),
        ("2 mW", "power", 0.002),
        ("10 us", "time", 1e-5),
        ("10 µs", "time", 1e-5),
        ("64 ns", "time", 64e-9),
        ("2 /cycle", "per_cycle", 2.0),
    ],
)
def test_exact_values(text, dim, expected):
    assert parse_quantity(text, dim) == expected


def test_binary_prefix_is_exact_integer():
    n = parse_size_bytes("512 KiB")
    assert n == 524288 and isinstance(n, int)


@given(st.integers(min_value=1, max_value=10**6))
def test_kib_and_mib_exact_for_any_count(n):
    assert parse_size_bytes(f"{n} KiB") == n * 1024
    assert parse_size_bytes(f"{n} MiB") == n * 1024 * 1024


@given(st.integers(min_value=1, max_value=10**6))
def test_decimal_prefixes_exact(n):
    # Decimal magnitudes: "n us" is the double nearest n/10**6, exactly as Python parses it.
    assert parse_quantity(f"{n} us", "time") == float(f"{n}e-6")
    assert parse_quantity(f"{n} MHz", "frequency") == n * 10**6


@pytest.mark.parametrize(
    "text,dim,needle",
    [
        ("25 GB/s", "frequency", "bandwidth"),
        ("480 MHz", "bandwidth", "frequency"),
        ("5 ms", "size", "time"),
        ("640 KB", "size", "KiB"),
        ("120 mhz", "frequency", "MHz"),
        ("512", "size", "no unit"),
        ("fast", "frequency", "number"),
        ("-1 KiB", "size", "greater than zero"),
        ("1.5 B", "size", "whole number"),
    ],
)
def test_rejections_name_the_value(text, dim, needle):
    with pytest.raises(UnitError) as exc:
        parse_size_bytes(text) if dim == "size" else parse_quantity(text, dim)
    assert needle in str(exc.value) and text in str(exc.value)


def test_bare_numbers_need_units_unless_si_allowed():
    with pytest.raises(UnitError):
        parse_quantity(480e6, "frequency")
    assert parse_quantity(480e6, "frequency", bare_number_means_si=True) == 480e6
    assert parse_quantity(2, "per_cycle") == 2


def test_format_quantity_round_trip():
    assert format_quantity(524288, "size") == "512 KiB"
    assert format_quantity(480e6, "frequency") == "480 MHz"
    assert parse_size_bytes(format_quantity(524288, "size")) == 524288
