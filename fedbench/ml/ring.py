"""Additive secret sharing over the ring of integers modulo 2^128, with fixed-point reals.

A real x is carried as round(x * 2^f) mod 2^128 and split into two shares that add up to it modulo 2^128; each
share alone is a uniformly random ring element, so it says nothing about x. Sums and products by public
integers work share by share. A product of two fixed-point values has 2f fractional bits: `truncate` brings a
shared value back to fewer bits locally on each share (SecureML's trick), which is exact up to one unit in the
last place unless a share wraps, which happens with probability about |x| / 2^127: we keep |x| below 2^100.

Vectors are numpy object arrays of Python ints (exact arithmetic; 5,000-element operations take milliseconds).
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

__all__ = [
    "BITS",
    "MOD",
    "decode",
    "encode",
    "from_bytes",
    "random_ints",
    "reduce",
    "signed",
    "to_bytes",
    "truncate",
]

BITS = 128
MOD = 1 << BITS
_HALF = 1 << (BITS - 1)
_WIDTH = BITS // 8


def _objects(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype != object:
        array = array.astype(object)
    return array


def reduce(values: Any) -> np.ndarray:
    """Integers reduced into [0, 2^128), as an object array."""
    return _objects(values) % MOD


def random_ints(count: int, bits: int = BITS) -> np.ndarray:
    """`count` uniform random integers of `bits` bits (from the OS's CSPRNG), as an object array."""
    out = np.empty(count, dtype=object)
    out[:] = [secrets.randbits(bits) for _ in range(count)]
    return out


def encode(values: Any, frac_bits: int) -> np.ndarray:
    """Reals (or an array of them) as ring elements round(x * 2^frac_bits) mod 2^128."""
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError("cannot encode NaN or infinite values into the sharing ring")
    scaled = np.rint(np.ldexp(array, frac_bits))
    out = np.empty(array.shape, dtype=object)
    out.ravel()[:] = [int(v) % MOD for v in scaled.ravel().tolist()]
    return out


def signed(values: Any) -> np.ndarray:
    """Ring elements read as signed integers in [-2^127, 2^127)."""
    array = reduce(values)
    return np.where(array >= _HALF, array - MOD, array)


def decode(values: Any, frac_bits: int) -> np.ndarray:
    """Ring elements (a reconstructed value, not a share) as float64 reals."""
    ints = signed(values)
    return np.array([float(int(v)) for v in ints.ravel().tolist()], dtype=np.float64).reshape(ints.shape) / (
        2.0**frac_bits
    )


def truncate(share: Any, bits: int, party: int) -> np.ndarray:
    """This party's share of the shared value divided by 2^bits (party 0 and party 1 call it on their shares).

    Party 0 shifts its share; party 1 shifts the negation of its share and negates back, so the two results
    add up to x / 2^bits, off by at most one unit, as long as |x| is far below 2^127.
    """
    array = reduce(share)
    if party == 0:
        return array >> bits
    return (MOD - ((MOD - array) % MOD >> bits)) % MOD


def to_bytes(values: Any) -> bytes:
    """Ring elements as fixed-width 16-byte little-endian integers (what travels between parties)."""
    return b"".join(int(v).to_bytes(_WIDTH, "little") for v in reduce(values).ravel().tolist())


def from_bytes(data: bytes, count: int | None = None) -> np.ndarray:
    """Ring elements from `to_bytes` output; `count` (if given) must match, else ValueError."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) % _WIDTH:
        raise ValueError(f"ring data must be bytes of a multiple of {_WIDTH}")
    view = bytes(data)
    n = len(view) // _WIDTH
    if count is not None and n != count:
        raise ValueError(f"expected {count} ring elements, got {n}")
    out = np.empty(n, dtype=object)
    out[:] = [int.from_bytes(view[i : i + _WIDTH], "little") for i in range(0, len(view), _WIDTH)]
    return out
