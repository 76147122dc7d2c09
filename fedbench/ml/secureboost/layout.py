"""The packed plaintext of one row's (g, h) for every class, and of a histogram cell: unsigned slots in one integer.

A row's plaintext is, lowest slot first, a count of 1 and then, for each class k of the round, the hessian
h'_k = round(h_k 2^F) and the gradient g'_k = round(g_k 2^F) shifted by the guest's offset o_k = max |g'_k| so
that every slot is non-negative (F = `FRAC_BITS`; hessians are never negative):

    M = 1 + sum_k (h'_k 2^(s_k) + (g'_k + o_k) 2^(s_k + k_k)).

Binary and regression have one class (M = 1 + h' 2^c + (g' + o) 2^(c + k)); multiclass has K, so one
ciphertext per row carries every class's (g, h) and the count once, and the round's K trees share one
encryption. Sums of these plaintexts add slot by slot with no carry as long as each slot's width holds the sum
over every row: the widths come from the row count r of the round, c = bits(r), k_k = bits(r max h'_k),
bits(r 2 o_k) for the gradient, so no sum of the round's rows can overflow a slot. A row's plaintext must stay
below 2^(n_bits - 3) (under n / 3, the engine's positive range): when the K classes do not fit one plaintext of
the key, `fit_groups` splits them, in class order, into as few groups as fit (greedily: a group takes the next
class while its width fits), each group one ciphertext per row with its own count slot. Several sums travel
packed in one ciphertext, `per_ciphertext` of them, lowest first. The widths (and so K) are all the host
learns: they show the bit length of r and of each class's largest |g| and h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedbench.ml.secureboost.errors import SecureBoostError

__all__ = ["FRAC_BITS", "GhEncoding", "Layout", "fit_groups", "unpack_values"]

FRAC_BITS = 40
"""Fractional bits of g and h: sums over a million rows stay within 2^-20 of the float sums."""
_MAX_SLOT_BITS = 512
_MAX_CLASSES = 1000
"""The most classes one layout may name (`TreeParams.num_class` allows up to 1000)."""
_NAMES = ("count_bits", "hess_bits", "grad_bits")


@dataclass(frozen=True)
class Layout:
    """The slot widths of one round's plaintexts (public: the host packs histogram cells by them): the count,
    then per class its hessian and gradient."""

    count_bits: int
    hess_bits: tuple[int, ...]
    grad_bits: tuple[int, ...]

    @property
    def classes(self) -> int:
        """How many classes' (g, h) one plaintext holds."""
        return len(self.hess_bits)

    @property
    def width(self) -> int:
        """Bits of one packed (count, g and h of every class) value."""
        return self.count_bits + sum(self.hess_bits) + sum(self.grad_bits)

    def shifts(self) -> list[tuple[int, int]]:
        """Per class, the lowest bit of its hessian slot and of its gradient slot."""
        out, at = [], self.count_bits
        for h, g in zip(self.hess_bits, self.grad_bits, strict=True):
            out.append((at, at + h))
            at += h + g
        return out

    def per_ciphertext(self, n_bits: int) -> int:
        """How many values one ciphertext of an `n_bits` key holds, staying below n / 3 (at least one)."""
        per = (n_bits - 3) // self.width
        if per < 1:
            raise SecureBoostError(
                f"a {n_bits}-bit key cannot hold one histogram value of {self.width} bits; use a larger key_bits"
            )
        return per

    def to_dict(self) -> dict[str, Any]:
        """The wire form: whole numbers for one class (binary, regression), lists of one per class for more."""
        if self.classes == 1:
            return {
                "count_bits": self.count_bits,
                "hess_bits": self.hess_bits[0],
                "grad_bits": self.grad_bits[0],
            }
        return {
            "count_bits": self.count_bits,
            "hess_bits": list(self.hess_bits),
            "grad_bits": list(self.grad_bits),
        }

    @classmethod
    def from_dict(cls, obj: Any, n_bits: int) -> Layout:
        """The guest's layout, checked: positive widths (one per class for the two per-class slots) that fit
        one value into an `n_bits` key."""
        if not isinstance(obj, dict) or set(obj) != set(_NAMES):
            raise SecureBoostError(f"the guest's slot layout must be a dict of {list(_NAMES)}")
        count, hess, grad = (obj[name] for name in _NAMES)
        if type(hess) is int and type(grad) is int:
            hess, grad = [hess], [grad]
        elif not (
            isinstance(hess, list) and isinstance(grad, list) and 2 <= len(hess) == len(grad) <= _MAX_CLASSES
        ):
            raise SecureBoostError(
                "the guest's hess_bits and grad_bits must be one width each (one class) or lists of one width "
                f"per class, 2 to {_MAX_CLASSES} classes"
            )
        values = [count, *hess, *grad]
        if not all(type(v) is int and 1 <= v <= _MAX_SLOT_BITS for v in values):
            raise SecureBoostError(
                f"the guest's slot widths must be whole numbers of bits from 1 to {_MAX_SLOT_BITS}"
            )
        layout = cls(count, tuple(hess), tuple(grad))
        layout.per_ciphertext(n_bits)
        return layout


@dataclass(frozen=True)
class GhEncoding:
    """The guest's encoding of one round's g and h (of the classes of one group): the public layout plus its
    private offsets, one per class."""

    layout: Layout
    offsets: tuple[int, ...]

    @classmethod
    def fit(cls, grad: np.ndarray, hess: np.ndarray) -> tuple[GhEncoding, list[int]]:
        """The encoding of these rows' g and h (already weighted; one column per class, or a vector for one
        class), and each row's packed plaintext."""
        columns = [_Column(g, h) for g, h in _class_columns(grad, hess)]
        return _pack(columns, max(len(np.atleast_1d(grad)), 1))

    def decode(self, values: list[int]) -> tuple[list[int], list[tuple[list[int], list[int]]]]:
        """Exact sums of packed values split into their slots (still fixed point): the counts, and per class
        (g' + o count, h')."""
        c_mask = (1 << self.layout.count_bits) - 1
        counts = [v & c_mask for v in values]
        per_class = []
        for (h_at, g_at), h_bits, g_bits in zip(
            self.layout.shifts(), self.layout.hess_bits, self.layout.grad_bits, strict=True
        ):
            h_mask, g_mask = (1 << h_bits) - 1, (1 << g_bits) - 1
            per_class.append(([(v >> g_at) & g_mask for v in values], [(v >> h_at) & h_mask for v in values]))
        return counts, per_class

    def real(self, klass: int, grad: int, hess: int, count: int) -> tuple[float, float]:
        """The real sums of g and h of class `klass` (its position in this encoding) of `count` rows."""
        return math.ldexp(grad - self.offsets[klass] * count, -FRAC_BITS), math.ldexp(hess, -FRAC_BITS)


@dataclass(frozen=True)
class _Column:
    """One class's fixed-point g and h, its offset and slot widths (given the row count)."""

    g: list[int]
    h: list[int]

    @property
    def offset(self) -> int:
        return max((abs(v) for v in self.g), default=0)

    def widths(self, rows: int) -> tuple[int, int]:
        """(hessian bits, gradient bits) that hold the sum over `rows` rows."""
        return (
            max(1, (rows * max(self.h, default=0)).bit_length()),
            max(1, (rows * 2 * self.offset).bit_length()),
        )


def _class_columns(grad: np.ndarray, hess: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """Each class's fixed-point (g, h) of the rows, checked: finite, hessians non-negative."""
    g2, h2 = np.asarray(grad, dtype=np.float64), np.asarray(hess, dtype=np.float64)
    if g2.ndim == 1:
        g2, h2 = g2[:, None], h2[:, None]
    out = []
    for k in range(g2.shape[1]):
        g, h = _fixed(g2[:, k]), _fixed(h2[:, k])
        if any(v < 0 for v in h):
            raise SecureBoostError("a hessian is negative; the objective must give non-negative hessians")
        out.append((g, h))
    return out


def _pack(columns: list[_Column], rows: int) -> tuple[GhEncoding, list[int]]:
    widths = [c.widths(rows) for c in columns]
    layout = Layout(rows.bit_length(), tuple(w[0] for w in widths), tuple(w[1] for w in widths))
    packed = [1] * len(columns[0].g)
    for column, (h_at, g_at) in zip(columns, layout.shifts(), strict=True):
        offset = column.offset
        packed = [
            p + (hv << h_at) + ((gv + offset) << g_at)
            for p, gv, hv in zip(packed, column.g, column.h, strict=True)
        ]
    return GhEncoding(layout, tuple(c.offset for c in columns)), packed


def fit_groups(grad: np.ndarray, hess: np.ndarray, n_bits: int) -> list[tuple[GhEncoding, list[int]]]:
    """The encodings of the K classes' g and h (rows x K) for an `n_bits` key: one group of every class when
    they fit one plaintext, else as few groups as fit, in class order (each group's plaintexts below
    2^(n_bits - 3)); with each group's packed plaintext per row."""
    rows = max(len(grad), 1)
    columns = [_Column(g, h) for g, h in _class_columns(grad, hess)]
    room = n_bits - 3 - rows.bit_length()
    groups: list[list[_Column]] = [[]]
    used = 0
    for column in columns:
        need = sum(column.widths(rows))
        if need > room:
            raise SecureBoostError(
                f"a {n_bits}-bit key cannot hold one class's packed g and h of {need + rows.bit_length()} bits; "
                "use a larger key_bits"
            )
        if groups[-1] and used + need > room:
            groups.append([])
            used = 0
        groups[-1].append(column)
        used += need
    return [_pack(group, rows) for group in groups]


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
