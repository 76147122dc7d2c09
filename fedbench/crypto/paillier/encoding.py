"""The one fixed-point encoding of the engine: a real x is the integer round(x * 2**frac_bits), negatives mod n.

Paillier encrypts integers modulo n, so reals travel as fixed-point integers. An encrypted vector carries
its `frac_bits` (the scale 2**-frac_bits, shared by all its elements) and a `bound` on |m| of every element:

* Encoding: floats at `frac_bits` (default `DEFAULT_PRECISION_BITS` = 32, absolute precision 2**-33 by
  round-half-even); integer arrays exactly at 0 fractional bits. Non-finite values are refused.
* Range: a signed integer m is stored as m mod n and must satisfy |m| <= max_int = n // 3 - 1 (phe's rule).
  Decryption maps [0, max_int] to itself and [n - max_int, n) to negatives; the middle third is a gap, so
  a value that wrapped around is caught at decryption rather than read as a wrong number.
* Tracking: every operation computes a new bound from its operands' (a + b: sum of bounds; x * k: bound
  times max|k|; sum: bound times length; dot: bound times the largest column sum of |X|); when a bound
  exceeds max_int the operation raises `PaillierOverflowError` before computing anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedbench.crypto.paillier.errors import PaillierOverflowError

__all__ = [
    "DEFAULT_PRECISION_BITS",
    "MAX_FRAC_BITS",
    "as_vector",
    "check_bound",
    "decode",
    "encode",
    "is_integer_valued",
    "max_int",
    "signed",
]

DEFAULT_PRECISION_BITS = 32
MAX_FRAC_BITS = 4096
_I62 = 2**62
_I63 = 2**63


def max_int(n: int) -> int:
    """The largest |m| a plaintext may hold under modulus n (the same as phe's `max_int`)."""
    return int(n) // 3 - 1


def check_bound(bound: int, limit: int, what: str) -> int:
    """Return `bound`, or raise PaillierOverflowError naming the operation if it exceeds `limit`."""
    if bound > limit:
        raise PaillierOverflowError(
            f"{what} could overflow: its magnitude bound is 2^{bound.bit_length()} but the key's plaintext "
            f"range is |m| <= 2^{limit.bit_length()} (n // 3); use smaller values, fewer fractional bits "
            "(precision_bits) or a larger key"
        )
    return bound


def as_vector(values: Any) -> np.ndarray[Any, Any]:
    """A 1-D numpy array from an array-like or a scalar (a scalar becomes length 1)."""
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D array of values, got shape {array.shape}; ravel it first")
    return array


def is_integer_valued(array: np.ndarray[Any, Any]) -> bool:
    """True for bool/integer dtypes and object arrays of Python ints: these encode exactly at 0 frac bits."""
    if array.dtype.kind in "biu":
        return True
    if array.dtype.kind == "O":
        return all(isinstance(x, (int, np.integer)) for x in array.ravel().tolist())
    return False


def encode(array: np.ndarray[Any, Any], frac_bits: int) -> tuple[list[int], int]:
    """Signed integers round(x * 2**frac_bits) (half to even) of a 1-D or 2-D array, and their max |m|.

    A 2-D array is encoded in C order (row by row).
    """
    if not 0 <= frac_bits <= MAX_FRAC_BITS:
        raise ValueError(f"frac_bits must be in [0, {MAX_FRAC_BITS}], got {frac_bits}")
    flat = array.ravel()
    kind = flat.dtype.kind
    if kind == "b":
        flat = flat.astype(np.int64)
        kind = "i"
    if kind in "iu":
        if flat.size and int(np.abs(flat.astype(object)).max()) < _I62 >> frac_bits:
            ints: list[int] = (flat.astype(np.int64) << frac_bits).tolist()
        else:
            ints = [int(x) << frac_bits for x in flat.tolist()]
    elif kind == "f":
        ints = _encode_floats(flat.astype(np.float64), frac_bits)
    elif kind == "O":
        ints = [_encode_scalar(x, frac_bits) for x in flat.tolist()]
    else:
        raise TypeError(f"cannot encode values of dtype {array.dtype}; use integers or floats")
    return ints, max((abs(x) for x in ints), default=0)


def _encode_floats(values: np.ndarray[Any, Any], frac_bits: int) -> list[int]:
    if not np.isfinite(values).all():
        raise ValueError("cannot encrypt NaN or infinite values")
    with np.errstate(over="ignore"):
        rounded = np.rint(np.ldexp(values, frac_bits))
    if rounded.size == 0:
        return []
    if np.isfinite(rounded).all() and float(np.abs(rounded).max()) < _I62:
        result: list[int] = rounded.astype(np.int64).tolist()
        return result
    return [
        int(r) if math.isfinite(r) else int(v) << frac_bits
        for r, v in zip(rounded.tolist(), values.tolist(), strict=True)
    ]


def _encode_scalar(value: Any, frac_bits: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value) << frac_bits
    if isinstance(value, (int, np.integer)):
        return int(value) << frac_bits
    if isinstance(value, (float, np.floating)):
        return _encode_floats(np.array([float(value)]), frac_bits)[0]
    raise TypeError(f"cannot encode a value of type {type(value).__name__!r}; use int or float")


def signed(residue: int, n: int, limit: int) -> int:
    """The signed integer a residue in [0, n) stands for; the gap between the two thirds raises."""
    if residue <= limit:
        return int(residue)
    if residue >= n - limit:
        return int(residue) - int(n)
    raise PaillierOverflowError(
        "a decrypted value lies in the overflow gap (neither in [0, n/3) nor in (2n/3, n)): the computation "
        "overflowed or the ciphertext was tampered with"
    )


def decode(ints: Sequence[int], frac_bits: int, bound: int) -> np.ndarray[Any, Any]:
    """Values of signed fixed-point integers: float64 when frac_bits > 0, else int64 (object if bound >= 2^63)."""
    if frac_bits == 0:
        if bound < _I63:
            return np.array(ints, dtype=np.int64)
        out = np.empty(len(ints), dtype=object)
        out[:] = [int(x) for x in ints]
        return out
    if bound < _I63:
        return np.ldexp(np.array(ints, dtype=np.int64).astype(np.float64), -frac_bits)
    scale = 1 << frac_bits
    try:
        return np.array([int(x) / scale for x in ints], dtype=np.float64)
    except OverflowError:
        raise PaillierOverflowError("a decrypted value is too large for a float64") from None
