"""The packed plaintext of one row's (g, h), and of a histogram cell: three unsigned slots in one integer.

A row's plaintext is M = 1 + h' 2^c + (g' + o) 2^(c + k), lowest slot first: a count of 1, the hessian
h' = round(h 2^F) and the gradient g' = round(g 2^F) shifted by the guest's offset o = max |g'| so that every
slot is non-negative (F = `FRAC_BITS`; hessians are never negative). Sums of these plaintexts add slot by slot
with no carry as long as each slot's width holds the sum over every row: the widths come from the row count r
of the tree, c = bits(r), k = bits(r max h'), bits(r 2 o) for the gradient, so no sum of a tree's rows can
overflow a slot. Several such sums travel packed in one ciphertext, `per_ciphertext` of them, lowest first;
the widths are all the host learns (they show the bit length of r and of the largest |g| and h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedbench.ml.secureboost.errors import SecureBoostError

__all__ = ["FRAC_BITS", "GhEncoding", "Layout", "unpack_values"]

FRAC_BITS = 40
"""Fractional bits of g and h: sums over a million rows stay within 2^-20 of the float sums."""
_MAX_SLOT_BITS = 512


@dataclass(frozen=True)
class Layout:
    """The slot widths of one tree's plaintexts (public: the host packs histogram cells by them)."""

    count_bits: int
    hess_bits: int
    grad_bits: int

    @property
    def width(self) -> int:
        """Bits of one packed (g, h, count) value."""
        return self.count_bits + self.hess_bits + self.grad_bits

    def per_ciphertext(self, n_bits: int) -> int:
        """How many values one ciphertext of an `n_bits` key holds, staying below n / 3 (at least one)."""
        per = (n_bits - 3) // self.width
        if per < 1:
            raise SecureBoostError(
                f"a {n_bits}-bit key cannot hold one histogram value of {self.width} bits; use a larger key_bits"
            )
        return per

    def to_dict(self) -> dict[str, int]:
        """The wire form."""
        return {"count_bits": self.count_bits, "hess_bits": self.hess_bits, "grad_bits": self.grad_bits}

    @classmethod
    def from_dict(cls, obj: Any, n_bits: int) -> Layout:
        """The guest's layout, checked: three positive widths that fit one value into an `n_bits` key."""
        names = ("count_bits", "hess_bits", "grad_bits")
        if not isinstance(obj, dict) or set(obj) != set(names):
            raise SecureBoostError(f"the guest's slot layout must be a dict of {list(names)}")
        values = [obj[name] for name in names]
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= _MAX_SLOT_BITS for v in values
        ):
            raise SecureBoostError(
                f"the guest's slot widths must be whole numbers of bits from 1 to {_MAX_SLOT_BITS}"
            )
        layout = cls(*values)
        layout.per_ciphertext(n_bits)
        return layout


@dataclass(frozen=True)
class GhEncoding:
    """The guest's encoding of one tree's g and h: the public layout plus its private offset."""

    layout: Layout
    offset: int

    @classmethod
    def fit(cls, grad: np.ndarray, hess: np.ndarray) -> tuple[GhEncoding, list[int]]:
        """The encoding of these rows' g and h (already weighted), and each row's packed plaintext."""
        g = _fixed(grad)
        h = _fixed(hess)
        if any(v < 0 for v in h):
            raise SecureBoostError("a hessian is negative; the objective must give non-negative hessians")
        rows = max(len(g), 1)
        offset = max((abs(v) for v in g), default=0)
        layout = Layout(rows.bit_length(), max(1, (rows * max(h, default=0)).bit_length()),
                        max(1, (rows * 2 * offset).bit_length()))  # fmt: skip
        low = layout.count_bits
        high = low + layout.hess_bits
        packed = [1 + (hv << low) + ((gv + offset) << high) for gv, hv in zip(g, h, strict=True)]
        return cls(layout, offset), packed

    def decode(self, values: list[int]) -> tuple[list[int], list[int], list[int]]:
        """Exact sums (g' + o count, h', count) of packed values, split into their slots (still fixed point)."""
        c_bits, h_bits = self.layout.count_bits, self.layout.hess_bits
        c_mask, h_mask = (1 << c_bits) - 1, (1 << h_bits) - 1
        counts = [v & c_mask for v in values]
        hess = [(v >> c_bits) & h_mask for v in values]
        grad = [v >> (c_bits + h_bits) for v in values]
        return grad, hess, counts

    def real(self, grad: int, hess: int, count: int) -> tuple[float, float]:
        """The real sums of g and h of `count` rows from their slot sums."""
        return math.ldexp(grad - self.offset * count, -FRAC_BITS), math.ldexp(hess, -FRAC_BITS)


def _fixed(values: np.ndarray) -> list[int]:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise SecureBoostError("a gradient or hessian is not a finite number; check the labels and params")
    return [int(v) for v in np.rint(np.ldexp(array, FRAC_BITS)).tolist()]


def unpack_values(packed: list[int], width: int, per: int, count: int) -> list[int]:
    """The `count` values of `width` bits packed `per` to an integer, lowest first (`host.pack_sums`)."""
    mask = (1 << width) - 1
    values: list[int] = []
    for m in packed:
        if m < 0 or m >> (per * width):
            raise SecureBoostError(
                "a histogram ciphertext decrypts to a value outside its packing: the host's reply is malformed"
            )
        for _ in range(per):
            values.append(m & mask)
            m >>= width
    if len(values) < count:
        raise SecureBoostError(f"the host's histogram holds {len(values)} values, expected {count}")
    return values[:count]
