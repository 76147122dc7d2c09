"""Packing several fixed-point values into one plaintext: fewer encryptions, additions and decryptions.

A packed plaintext is M = sum_i s_i * 2^(w i) with signed slot values s_i (no bias). Adding packed
ciphertexts adds every slot at once, and M is recovered slot by slot from the lowest, each time taking the
centred residue of M mod 2^w and shifting: this is exact as long as every slot sum satisfies
|s| < 2^(w-1). `PackingSpec(slot_bits, slots, max_additions, frac_bits)` guarantees it:

* a value x is encoded as round(x * 2^frac_bits), which must satisfy |.| < 2^(slot_bits - 1);
* a slot has headroom for `max_additions` additions (a sum of up to max_additions + 1 packed vectors):
  w = slot_bits + bit_length(max_additions);
* slots * w <= n_bits - 2, so |M| < 2^(slots w - 1) stays under n // 3 (the key's plaintext range).

`PackedVector` counts its terms and refuses an addition past the headroom (`PaillierOverflowError`).
`encrypt_packed` packs the rows of a matrix (gradient/hessian pairs, histogram rows); `pack` packs an
existing EncryptedVector homomorphically (Horner: c_0 * (c_1 * (...)^(2^w))^(2^w), about n_bits
squarings per packed ciphertext, with w from the vector's tracked bound) so that k results come back in
k / slots decryptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np

from fedbench.crypto.paillier.encoding import (
    DEFAULT_PRECISION_BITS,
    MAX_FRAC_BITS,
    check_bound,
    decode,
    encode,
)
from fedbench.crypto.paillier.errors import PaillierOverflowError
from fedbench.crypto.paillier.vector import EncryptedVector

if TYPE_CHECKING:
    from fedbench.crypto.paillier.keys import Mode, PrivateKey, PublicKey
    from fedbench.crypto.paillier.pool import ObfuscatorPool

__all__ = ["PackedVector", "PackingSpec", "decrypt_packed", "encrypt_packed", "pack", "unpack"]


@dataclass(frozen=True)
class PackingSpec:
    """Slots of `slot_bits` signed bits (fixed point at `frac_bits`) with room for `max_additions` adds."""

    slot_bits: int
    slots: int
    max_additions: int = 0
    frac_bits: int = DEFAULT_PRECISION_BITS

    def __post_init__(self) -> None:
        for name in ("slot_bits", "slots", "max_additions", "frac_bits"):
            if type(getattr(self, name)) is not int:
                raise TypeError(f"PackingSpec.{name} must be an int")
        if self.slot_bits < 2 or self.slots < 1 or self.max_additions < 0:
            raise ValueError("PackingSpec needs slot_bits >= 2, slots >= 1 and max_additions >= 0")
        if not 0 <= self.frac_bits <= MAX_FRAC_BITS:
            raise ValueError(f"frac_bits must be in [0, {MAX_FRAC_BITS}]")

    @property
    def width(self) -> int:
        """Bits of one slot: the value's bits plus the headroom for the additions."""
        return self.slot_bits + self.max_additions.bit_length()

    @property
    def max_abs(self) -> float:
        """The largest |value| one slot takes before any addition."""
        return float((2 ** (self.slot_bits - 1) - 1) / 2**self.frac_bits)

    def check(self, public: PublicKey) -> None:
        """Raise ValueError if the slots do not fit the key's plaintext range."""
        if self.slots * self.width > public.n_bits - 2:
            raise ValueError(
                f"{self.slots} slots of {self.width} bits need {self.slots * self.width} bits, more than the "
                f"{public.n_bits - 2} a {public.n_bits}-bit key packs; use fewer slots or a larger key"
            )

    @classmethod
    def for_key(
        cls,
        public: PublicKey,
        slot_bits: int,
        max_additions: int = 0,
        frac_bits: int = DEFAULT_PRECISION_BITS,
    ) -> PackingSpec:
        """The spec with as many slots as the key holds."""
        width = slot_bits + max_additions.bit_length()
        spec = cls(slot_bits, max(1, (public.n_bits - 2) // width), max_additions, frac_bits)
        spec.check(public)
        return spec


class PackedVector:
    """Packed ciphertexts: each holds up to `spec.slots` values; `shape` is that of the decrypted array."""

    __slots__ = ("shape", "spec", "terms", "vector")

    def __init__(
        self, vector: EncryptedVector, spec: PackingSpec, shape: tuple[int, ...], terms: int
    ) -> None:
        self.vector = vector
        self.spec = spec
        self.shape = shape
        self.terms = terms

    def __len__(self) -> int:
        return len(self.vector)

    def __repr__(self) -> str:
        return (
            f"PackedVector(shape={self.shape}, ciphertexts={len(self)}, terms={self.terms}, spec={self.spec})"
        )

    def _rows(self) -> int:
        if len(self.shape) != 2:
            raise TypeError("row operations apply to row-packed vectors (from encrypt_packed), not to pack()")
        return self.shape[0]

    def __getitem__(self, index: Any) -> PackedVector:
        """Rows by slice, int array or boolean mask (row-packed vectors)."""
        self._rows()
        picked = self.vector[index]
        return PackedVector(picked, self.spec, (len(picked), self.shape[1]), self.terms)

    def __add__(self, other: PackedVector) -> PackedVector:
        if not isinstance(other, PackedVector):
            return NotImplemented
        if other.spec != self.spec or other.shape[1:] != self.shape[1:]:
            raise ValueError("packed vectors of different specs or row widths cannot be added")
        terms = self._terms(self.terms + other.terms)
        vector = self.vector + other.vector
        shape = (len(vector), *self.shape[1:]) if len(self.shape) == 2 else self.shape
        return PackedVector(vector, self.spec, shape, terms)

    def sum(self) -> PackedVector:
        """The sum of the rows, as one packed row."""
        rows = self._rows()
        terms = self._terms(self.terms * rows)
        return PackedVector(self.vector.sum(), self.spec, (1, self.shape[1]), terms)

    def _terms(self, terms: int) -> int:
        if terms > self.spec.max_additions + 1:
            raise PaillierOverflowError(
                f"a packed sum of {terms} terms exceeds the headroom of {self.spec.max_additions} additions "
                "of its PackingSpec; raise max_additions"
            )
        return terms

    def rerandomize(self, **options: Any) -> PackedVector:
        """The same packed values under fresh randomness (options as for `EncryptedVector.rerandomize`)."""
        return PackedVector(self.vector.rerandomize(**options), self.spec, self.shape, self.terms)


def _pack_row(values: Sequence[int], width: int) -> int:
    packed = 0
    for s in reversed(values):
        packed = (packed << width) + s
    return packed


def encrypt_packed(
    key: PublicKey | PrivateKey,
    values: Any,
    spec: PackingSpec,
    *,
    mode: Mode = "fixed_base",
    pool: ObfuscatorPool | None = None,
    workers: int | None = None,
) -> PackedVector:
    """Encrypt each row of a (rows, k) matrix (k <= spec.slots) as one packed ciphertext."""
    public: PublicKey = key.public
    spec.check(public)
    matrix = np.asarray(values)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2 or matrix.shape[1] > spec.slots:
        raise ValueError(
            f"encrypt_packed needs a (rows, k) matrix with k <= {spec.slots}, got {matrix.shape}"
        )
    rows, k = matrix.shape
    ints, bound = encode(matrix, spec.frac_bits)
    if bound >= 1 << (spec.slot_bits - 1):
        raise PaillierOverflowError(
            f"a value encodes to 2^{bound.bit_length()}, beyond the {spec.slot_bits}-bit slots "
            f"(|x| must stay below {spec.max_abs:g})"
        )
    packed = [_pack_row(ints[r * k : (r + 1) * k], spec.width) for r in range(rows)]
    vector = key.encrypt_encoded(packed, 0, mode=mode, pool=pool, workers=workers)
    return PackedVector(vector, spec, (rows, k), 1)


def pack(vector: EncryptedVector, spec: PackingSpec | None = None) -> PackedVector:
    """Pack an EncryptedVector homomorphically, `spec.slots` values per ciphertext (decrypts flat).

    Without a spec, the slot size comes from the vector's tracked bound and as many slots as fit are used.
    """
    public = vector.public
    needed = vector.bound.bit_length() + 1
    if spec is None:
        spec = PackingSpec.for_key(public, max(needed, 2), 0, vector.frac_bits)
    spec.check(public)
    if spec.frac_bits != vector.frac_bits:
        vector = vector.rescaled(spec.frac_bits)
        needed = vector.bound.bit_length() + 1
    if needed > spec.slot_bits:
        raise PaillierOverflowError(f"values of up to {needed} bits do not fit {spec.slot_bits}-bit slots")
    nsq, width, powmod = public.nsq, spec.width, gmpy2.powmod
    factor = 1 << width
    cts = vector._ct
    out = []
    bound = 0
    for start in range(0, len(cts), spec.slots):
        group = cts[start : start + spec.slots]
        acc = group[-1]
        for c in reversed(group[:-1]):
            acc = powmod(acc, factor, nsq) * c % nsq
        out.append(acc)
        bound = max(bound, _pack_row([vector.bound] * len(group), width))
    check_bound(bound, public.max_int, "the packed vector")
    return PackedVector(EncryptedVector(public, out, 0, bound), spec, (len(cts),), 1)


def unpack(packed: PackedVector, ints: Sequence[int]) -> np.ndarray[Any, Any]:
    """The values of decrypted packed integers, in the vector's `shape`."""
    spec = packed.spec
    width = spec.width
    mask, half = (1 << width) - 1, 1 << (width - 1)
    per = packed.shape[1] if len(packed.shape) == 2 else spec.slots
    values: list[int] = []
    for m in ints:
        for _ in range(per):
            s = m & mask
            if s >= half:
                s -= 1 << width
            values.append(s)
            m = (m - s) >> width
    if len(packed.shape) == 1:
        values = values[: packed.shape[0]]
    return decode(values, spec.frac_bits, half).reshape(packed.shape)


def decrypt_packed(
    private: PrivateKey, packed: PackedVector, *, workers: int | None = None
) -> np.ndarray[Any, Any]:
    """Decrypt and unpack (the same as `private.decrypt(packed)`)."""
    return private.decrypt(packed, workers=workers)
