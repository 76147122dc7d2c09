"""Products of powers modulo n^2: elementwise c_i^k_i, batch inversion, and bucketed multi-exponentiation.

Multiplying ciphertexts by plaintexts is exponentiation: Enc(k m) = Enc(m)^k. Three kernels:

* `powers`: c_i^|k_i| with one GMP powmod each; the negative k_i take an inverse, done for the whole batch
  with Montgomery's trick (one modular inversion and three multiplications per element);
* `multiexp`: prod_i c_i^e_i for many bases and small non-negative exponents by the bucket method
  (Pippenger): the exponents are cut into w-bit digits; for each digit position every base is multiplied
  into the bucket of its digit (N multiplications), the buckets are folded by running products (2^(w+1)),
  and the partial result is raised to 2^w between positions. Cost about (bits / w) * (N + 2^(w+1))
  multiplications instead of about 1.2 * bits per base for N separate powmods;
* `dot_parts`: X^T c as, per column j, the pair (prod over x_ij > 0 of c_i^x_ij, prod over x_ij < 0 of
  c_i^|x_ij|); the caller divides the two with one inversion per column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

__all__ = ["batch_invert", "choose_window", "dot_parts", "multiexp", "naive_dot_parts", "powers"]

_MAX_WINDOW = 16


def batch_invert(values: Sequence[mpz], modulus: mpz) -> list[mpz]:
    """Inverses of all values mod `modulus` with a single modular inversion (Montgomery's trick)."""
    if not values:
        return []
    prefix = [values[0]]
    for v in values[1:]:
        prefix.append(prefix[-1] * v % modulus)
    inverse = gmpy2.invert(prefix[-1], modulus)
    out = [mpz(0)] * len(values)
    for i in range(len(values) - 1, 0, -1):
        out[i] = inverse * prefix[i - 1] % modulus
        inverse = inverse * values[i] % modulus
    out[0] = inverse
    return out


def powers(bases: Sequence[mpz], exponents: Sequence[int], modulus: mpz) -> list[mpz]:
    """c_i^k_i mod `modulus` for signed k_i; negative exponents invert (batched), zero gives 1."""
    powmod = gmpy2.powmod
    out = []
    negative = []
    for i, (c, k) in enumerate(zip(bases, exponents, strict=True)):
        if k < 0:
            negative.append(i)
            out.append(powmod(c, -k, modulus))
        elif k == 1:
            out.append(c)
        else:
            out.append(powmod(c, k, modulus))
    if negative:
        inverted = batch_invert([out[i] for i in negative], modulus)
        for i, v in zip(negative, inverted, strict=True):
            out[i] = v
    return out


def choose_window(count: int, bits: int) -> int:
    """The digit width w minimising (bits / w) * (count + 2^(w+1)) multiplications."""
    best_w, best_cost = 1, None
    for w in range(1, min(bits, _MAX_WINDOW) + 1):
        cost = -(-bits // w) * (count + (2 << w))
        if best_cost is None or cost < best_cost:
            best_w, best_cost = w, cost
    return best_w


def multiexp(bases: Sequence[mpz], exponents: np.ndarray[Any, Any] | Sequence[int], modulus: mpz) -> mpz:
    """prod_i bases[i]^exponents[i] mod `modulus` by the bucket method; exponents are non-negative ints.

    `exponents` may be an int64 numpy array (fast digit extraction) or a sequence of Python ints.
    """
    count = len(bases)
    if count == 0:
        return mpz(1)
    vectorised = isinstance(exponents, np.ndarray) and exponents.dtype == np.int64
    if vectorised:
        assert isinstance(exponents, np.ndarray)
        bits = int(exponents.max()).bit_length()
    else:
        exponents = [int(e) for e in exponents]
        bits = max(exponents).bit_length()
    if bits == 0:
        return mpz(1)
    w = choose_window(count, bits)
    mask = (1 << w) - 1
    result: mpz | None = None
    for position in range(-(-bits // w) - 1, -1, -1):
        if result is not None:
            result = gmpy2.powmod(result, 1 << w, modulus)
        shift = position * w
        pairs: Iterable[tuple[int, int]]
        if vectorised:
            assert isinstance(exponents, np.ndarray)
            digits = (exponents >> shift) & mask
            index = np.flatnonzero(digits)
            pairs = zip(index.tolist(), digits[index].tolist(), strict=True)
        else:
            pairs = ((i, (e >> shift) & mask) for i, e in enumerate(exponents))
        buckets: list[mpz | None] = [None] * (mask + 1)
        for i, digit in pairs:
            if digit:
                held = buckets[digit]
                buckets[digit] = bases[i] if held is None else held * bases[i] % modulus
        folded = _fold(buckets, modulus)
        if folded is not None:
            result = folded if result is None else result * folded % modulus
    return mpz(1) if result is None else result


def _fold(buckets: list[mpz | None], modulus: mpz) -> mpz | None:
    """prod_d buckets[d]^d by running products: 2 multiplications per bucket."""
    running: mpz | None = None
    total: mpz | None = None
    for d in range(len(buckets) - 1, 0, -1):
        bucket = buckets[d]
        if bucket is not None:
            running = bucket if running is None else running * bucket % modulus
        if running is not None:
            total = running if total is None else total * running % modulus
    return total


def dot_parts(
    bases: Sequence[mpz], matrix: np.ndarray[Any, Any], modulus: mpz, naive: bool = False
) -> list[tuple[mpz, mpz]]:
    """For each column j of the signed integer matrix (rows x features): (positive part, negative part).

    `matrix` is int64 or object (Python ints). With `naive`, one powmod per element (the baseline).
    """
    out = []
    for j in range(matrix.shape[1]):
        column = matrix[:, j]
        parts = []
        for index in (np.flatnonzero(column > 0), np.flatnonzero(column < 0)):
            chosen = [bases[i] for i in index.tolist()]
            exps = np.abs(column[index])
            if naive:
                product = mpz(1)
                for c, e in zip(chosen, exps.tolist(), strict=True):
                    product = product * gmpy2.powmod(c, e, modulus) % modulus
                parts.append(product)
            else:
                parts.append(multiexp(chosen, exps if exps.dtype == np.int64 else exps.tolist(), modulus))
        out.append((parts[0], parts[1]))
    return out


def naive_dot_parts(
    bases: Sequence[mpz], matrix: np.ndarray[Any, Any], modulus: mpz
) -> list[tuple[mpz, mpz]]:
    """`dot_parts` with one powmod per element: the baseline the bucket method is measured against."""
    return dot_parts(bases, matrix, modulus, naive=True)
