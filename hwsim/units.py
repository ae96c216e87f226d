"""Parse quantities with units (`512 KiB`, `480 MHz`, `25 GB/s`, `1.2 pJ`) into exact SI numbers.

Why: device profiles are written by people copying datasheets; a bandwidth typed where a clock
belongs, or `KB` meaning 1000 or 1024, must be an error rather than a silently wrong cost. We use a
*private* pint registry that defines only the units hwsim needs, with bytes and cycles as their own
dimensions (pint's default registry treats bytes as dimensionless, so `25 GB/s` would pass as a
clock) and Decimal magnitudes so `512 KiB` is exactly 524288 and `10 us` is exactly 1e-5.

Speed: importing pint costs ~1 s (it drags in dask and numpy), which every CLI command that loads a
profile would pay. Well-formed plain quantities (`<number> <prefix><unit>[/<prefix><unit>]`, the
only shapes profiles use) are therefore parsed by a strict regex with exact Decimal arithmetic that
gives bit-identical results; anything else — and every error — goes through pint, so error
messages are unchanged. `benchmarks/bench_startup.py` cross-checks the fast path against pint.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pint is imported lazily (see module docstring)
    import pint

__all__ = ["DIMENSIONS", "Dimension", "UnitError", "parse_quantity", "format_quantity", "registry"]


class UnitError(ValueError):
    """A quantity is malformed, has no unit, or has the wrong dimension (message says which)."""


_DEFINITIONS = """
femto- = 1e-15 = f-
pico- = 1e-12 = p-
nano- = 1e-9 = n-
micro- = 1e-6 = u- = µ- = μ-
milli- = 1e-3 = m-
kilo- = 1e3 = k-
mega- = 1e6 = M-
giga- = 1e9 = G-
tera- = 1e12 = T-
peta- = 1e15 = P-
kibi- = 2**10 = Ki-
mebi- = 2**20 = Mi-
gibi- = 2**30 = Gi-
tebi- = 2**40 = Ti-
second = [time] = s = sec
byte = [information] = B = bytes
bit = 0.125 * byte = b = bits
joule = [energy] = J
watt = joule / second = W
hertz = 1 / second = Hz
cycle = [cycle] = cycles
"""


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """The private, strict unit registry (built once; ~10 ms, plus ~1 s to import pint)."""
    import pint

    ureg = pint.UnitRegistry(None, non_int_type=Decimal, autoconvert_offset_to_baseunit=False)
    for line in _DEFINITIONS.strip().splitlines():
        ureg.define(line)
    return ureg


@dataclass(frozen=True)
class Dimension:
    """One kind of quantity a profile field holds: its SI unit, a human name and an example."""

    key: str
    si_unit: str
    label: str
    example: str
    bare_number_ok: bool = False  # a plain number is accepted (counts, ops/cycle)


DIMENSIONS: dict[str, Dimension] = {
    d.key: d
    for d in (
        Dimension("size", "byte", "a size in bytes", "512 KiB"),
        Dimension("frequency", "hertz", "a frequency", "480 MHz"),
        Dimension("bandwidth", "byte / second", "a bandwidth", "25 GB/s"),
        Dimension("energy", "joule", "an energy", "1.2 pJ"),
        Dimension("energy_per_byte", "joule / byte", "an energy per byte", "0.5 pJ/B"),
        Dimension("power", "watt", "a power", "2 mW"),
        Dimension("time", "second", "a time", "10 us"),
        Dimension("per_cycle", "1 / cycle", "a rate per cycle", "2 /cycle", bare_number_ok=True),
    )
}

_NAMES_BY_DIMENSIONALITY: dict[str, str] = {}


def _dimension_name(q: pint.Quantity) -> str:
    """Name the dimension of a parsed quantity for error messages ('a frequency', ...)."""
    if not _NAMES_BY_DIMENSIONALITY:
        ureg = registry()
        for d in DIMENSIONS.values():
            _NAMES_BY_DIMENSIONALITY[str(ureg.Quantity(1, d.si_unit).dimensionality)] = d.label
    dim = str(q.dimensionality)
    if dim == "dimensionless":
        return "a plain number (no unit)"
    return _NAMES_BY_DIMENSIONALITY.get(dim, f"a quantity of dimension {dim}")


_UNIT_HINTS = {
    "KB": "'KB' is ambiguous; write 'kB' (1000 B) or 'KiB' (1024 B)",
    "Kb": "'Kb' is ambiguous; write 'kb' (1000 bit) or 'Kibit'",
    "mhz": "units are case-sensitive; write 'MHz'",
    "ghz": "units are case-sensitive; write 'GHz'",
    "khz": "units are case-sensitive; write 'kHz'",
    "Mhz": "units are case-sensitive; write 'MHz'",
    "MHZ": "units are case-sensitive; write 'MHz'",
}

_NUMBER_RE = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def parse_quantity(
    value: Any,
    dim: str,
    *,
    bare_number_means_si: bool = False,
    minimum: str = "positive",
) -> float:
    """Parse `value` (e.g. `"512 KiB"`) as dimension `dim` and return its magnitude in SI units.

    `bare_number_means_si`: accept a plain number as already being in SI units (Python callers
    building a Target by hand); YAML profiles must write units. `minimum`: "positive" (> 0),
    "nonnegative" (>= 0) or "any". Raises UnitError with a message naming the value and the fix.
    """
    d = DIMENSIONS[dim]
    if value is None:
        raise UnitError(f"value is empty; {d.label} is needed here, e.g. '{d.example}'")
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not {d.label}; write e.g. '{d.example}'")
    if isinstance(value, (int, float)):
        if not (bare_number_means_si or d.bare_number_ok):
            raise UnitError(f"{value!r} has no unit; {d.label} needs one, e.g. '{d.example}'")
        magnitude = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise UnitError(f"{value!r} is not a finite number")
        return _check_sign(float(magnitude), value, d, minimum)
    if not isinstance(value, str):
        raise UnitError(f"{value!r} is not {d.label}; write e.g. '{d.example}'")
    text = value.strip()
    if not _NUMBER_RE.match(text):
        raise UnitError(f"{value!r} does not start with a number; write e.g. '{d.example}'")
    fast = _fast_parse(text, dim)
    if fast is not None:
        return _check_sign(fast, value, d, minimum)
    import pint

    ureg = registry()
    try:
        q = ureg.Quantity(text)
    except pint.UndefinedUnitError as err:
        unit = str(err.unit_names[0] if isinstance(err.unit_names, (list, tuple)) else err.unit_names)
        hint = _UNIT_HINTS.get(unit, f"unknown unit '{unit}'; write e.g. '{d.example}'")
        raise UnitError(f"{value!r}: {hint}") from None
    except Exception:  # pint raises assorted parser errors for garbage like "5 MHz MHz)"
        raise UnitError(f"{value!r} is not a quantity; write e.g. '{d.example}'") from None
    if not isinstance(q, pint.Quantity):  # a bare number written as a string, e.g. "42"
        if d.bare_number_ok:
            return _check_sign(float(Decimal(str(q))), value, d, minimum)
        raise UnitError(f"{value!r} has no unit; {d.label} needs one, e.g. '{d.example}'")
    target = ureg.Quantity(1, d.si_unit)
    if q.dimensionality != target.dimensionality:
        raise UnitError(
            f"{value!r} is {_dimension_name(q)}, but this field needs {d.label}, e.g. '{d.example}'"
        )
    magnitude = q.to(d.si_unit).magnitude
    return _check_sign(float(magnitude), value, d, minimum)


# --- fast path -------------------------------------------------------------------------------
# Mirrors _DEFINITIONS exactly: prefix -> Decimal factor, unit name -> (Decimal factor, dimension
# exponents over (time, information, energy, cycle)). Only names pint resolves unambiguously.
_FAST_PREFIXES: dict[str, Decimal] = {
    "": Decimal(1), "f": Decimal("1e-15"), "p": Decimal("1e-12"), "n": Decimal("1e-9"),
    "u": Decimal("1e-6"), "µ": Decimal("1e-6"), "μ": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}
_DECIMAL_PREFIXES = ("", "f", "p", "n", "u", "µ", "μ", "m", "k", "M", "G", "T", "P")
_FAST_UNITS: dict[str, tuple[Decimal, tuple[int, int, int, int]]] = {
    "s": (Decimal(1), (1, 0, 0, 0)),
    "B": (Decimal(1), (0, 1, 0, 0)),
    "b": (Decimal("0.125"), (0, 1, 0, 0)),
    "bit": (Decimal("0.125"), (0, 1, 0, 0)),
    "J": (Decimal(1), (0, 0, 1, 0)),
    "W": (Decimal(1), (-1, 0, 1, 0)),
    "Hz": (Decimal(1), (-1, 0, 0, 0)),
    "cycle": (Decimal(1), (0, 0, 0, 1)),
}
_FAST_DIMS: dict[str, tuple[int, int, int, int]] = {
    "size": (0, 1, 0, 0), "frequency": (-1, 0, 0, 0), "bandwidth": (-1, 1, 0, 0),
    "energy": (0, 0, 1, 0), "energy_per_byte": (0, -1, 1, 0), "power": (-1, 0, 1, 0),
    "time": (1, 0, 0, 0), "per_cycle": (0, 0, 0, -1),
}
_PREFIX_ALT = "|".join(sorted((re.escape(p) for p in _FAST_PREFIXES if p), key=len, reverse=True))
_UNIT_ALT = "|".join(sorted((re.escape(u) for u in _FAST_UNITS), key=len, reverse=True))
_FAST_RE = re.compile(
    r"^(?P<num>[-+]?(?:(?:0|[1-9]\d*)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?)"
    rf"(?:(?P<gap> *)(?P<np>{_PREFIX_ALT})?(?P<nu>{_UNIT_ALT}))?"
    rf"(?: */ *(?P<dp>{_PREFIX_ALT})?(?P<du>{_UNIT_ALT}))?$"
)
#: Decimal digits the exact product may need; below pint's 28-digit context nothing is rounded.
_FAST_MAX_DIGITS = 26


def _digits(x: Decimal) -> int:
    return len(x.as_tuple().digits)


def _fast_parse(text: str, dim: str) -> float | None:
    """SI magnitude of a plain `<number> <unit>[/<unit>]` of dimension `dim`; None = ask pint.

    Exact: every factor is a power of ten, a power of two or 1/8, and the digit budget keeps the
    product inside Decimal's 28-digit context, so any order of multiplication (pint's included)
    yields the same Decimal and hence the same float.
    """
    m = _FAST_RE.match(text)
    if m is None or (m["nu"] is None and m["du"] is None):
        return None
    if m["nu"] == "J" and not m["np"] and not m["gap"]:
        return None  # Python's tokenizer (pint's) reads "5J" as an imaginary number
    magnitude = Decimal(m["num"])
    factors = []
    exps = [0, 0, 0, 0]
    if m["nu"] is not None:
        f, e = _FAST_UNITS[m["nu"]]
        factors += [_FAST_PREFIXES[m["np"] or ""], f]
        exps = [a + b for a, b in zip(exps, e)]
    if m["du"] is not None:
        if (m["dp"] or "") not in _DECIMAL_PREFIXES:  # 1/2**k is not short in decimal
            return None
        f, e = _FAST_UNITS[m["du"]]
        factors += [1 / _FAST_PREFIXES[m["dp"] or ""], 1 / f]  # exact: 10**k and 8
        exps = [a - b for a, b in zip(exps, e)]
    if tuple(exps) != _FAST_DIMS[dim]:
        return None  # wrong dimension: pint writes the error message
    if _digits(magnitude) + sum(_digits(f) for f in factors) > _FAST_MAX_DIGITS:
        return None
    for f in factors:
        magnitude *= f
    return float(magnitude)


def _check_sign(x: float, original: Any, d: Dimension, minimum: str) -> float:
    if not math.isfinite(x):
        raise UnitError(f"{original!r} is not finite; {d.label} is needed here, e.g. '{d.example}'")
    if minimum == "positive" and x <= 0:
        raise UnitError(f"{original!r} must be greater than zero")
    if minimum == "nonnegative" and x < 0:
        raise UnitError(f"{original!r} must not be negative")
    return x


def parse_size_bytes(value: Any, *, bare_number_means_si: bool = False, minimum: str = "positive") -> int:
    """Parse a size and return whole bytes; fractional bytes (`1.5 B`) are an error."""
    x = parse_quantity(value, "size", bare_number_means_si=bare_number_means_si, minimum=minimum)
    if x != int(x):
        raise UnitError(f"{value!r} is not a whole number of bytes ({x} B)")
    return int(x)


_PRETTY_UNITS = {
    "size": ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B")),
    "frequency": ((1e9, "GHz"), (1e6, "MHz"), (1e3, "kHz"), (1, "Hz")),
    "bandwidth": ((1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s"), (1, "B/s")),
    "energy": ((1, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ"), (1e-12, "pJ"), (1e-15, "fJ")),
    "energy_per_byte": ((1e-9, "nJ/B"), (1e-12, "pJ/B"), (1e-15, "fJ/B")),
    "power": ((1, "W"), (1e-3, "mW"), (1e-6, "uW")),
    "time": ((1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")),
}


def format_quantity(x: float, dim: str) -> str:
    """Render an SI magnitude readably (`524288` bytes → `512 KiB`), for messages and reports."""
    if dim == "per_cycle":
        return f"{x:g} /cycle"
    for scale, unit in _PRETTY_UNITS[dim]:
        if abs(x) >= scale or scale == _PRETTY_UNITS[dim][-1][0]:
            return f"{x / scale:g} {unit}"
    return f"{x:g}"
