"""`EncryptedVector`: a vector of Paillier ciphertexts under one public key, with numpy-like operations.

The ciphertexts are gmpy2 mpz values in a Python list (no object per ciphertext beyond the integer); the
vector also carries the fixed-point scale (`frac_bits`) and a bound on |m| of its elements (see
`encoding`), so every operation can refuse a result that could overflow. Operations:

* ``a + b``, ``a - b``, ``-a`` (vectors of the same key; a length-1 vector broadcasts), ``a + x``,
  ``a - x``, ``x - a`` (plaintext array or scalar: multiplies by g^x, no new randomness needed);
* ``a * x`` (plaintext, elementwise or scalar: c^x; integer x keeps the scale, float x adds
  `precision_bits` fractional bits);
* ``a.sum()``, ``a.dot(X)`` for X^T [[a]] (bucketed multi-exponentiation), indexing, `concatenate`.

Scales are aligned by raising the coarser operand to 2^d (d squarings). A result computed only from the
key owner's ciphertexts and public plaintexts can leak the plaintexts to the key owner through its
randomness: call `rerandomize()` before sending a result back to the key owner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import gmpy2
import numpy as np
from gmpy2 import mpz

from fedbench.crypto.paillier import parallel
from fedbench.crypto.paillier.encoding import (
    as_vector,
    check_bound,
    encode,
    is_integer_valued,
)
from fedbench.crypto.paillier.errors import KeyMismatchError, MalformedCiphertextError, PaillierOverflowError
from fedbench.crypto.paillier.multiexp import batch_invert
from fedbench.crypto.paillier.serialization import (
    ciphertexts_to_bytes,
    fields_from_bytes,
    fields_from_dict,
    fields_to_bytes,
    fields_to_dict,
)

if TYPE_CHECKING:
    from fedbench.crypto.paillier.keys import Mode, PublicKey
    from fedbench.crypto.paillier.pool import ObfuscatorPool

__all__ = ["EncryptedVector", "concatenate"]

_I62 = 2**62


class EncryptedVector:
    """A 1-D vector of Paillier ciphertexts with its key, fixed-point scale and magnitude bound."""

    __slots__ = ("_ct", "bound", "frac_bits", "public")
    __array_ufunc__ = None

    def __init__(self, public: PublicKey, ciphertexts: list[mpz], frac_bits: int, bound: int) -> None:
        self.public = public
        self._ct = ciphertexts
        self.frac_bits = frac_bits
        self.bound = bound

    @classmethod
    def from_ciphertexts(
        cls, public: PublicKey, ciphertexts: Iterable[int], *, frac_bits: int = 0, bound: int | None = None
    ) -> EncryptedVector:
        """Wrap raw ciphertext integers (checked to lie in (0, n^2)); unknown bound: the whole range."""
        cts = [mpz(c) for c in ciphertexts]
        for index, c in enumerate(cts):
            if not 0 < c < public.nsq:
                raise MalformedCiphertextError(f"ciphertext {index} is not in (0, n^2)")
        bound = public.max_int if bound is None else bound
        return cls(public, cts, frac_bits, check_bound(bound, public.max_int, "the given bound"))

    @property
    def ciphertexts(self) -> list[int]:
        """The ciphertexts as Python ints (a copy)."""
        return [int(c) for c in self._ct]

    @property
    def exponent(self) -> int:
        """The binary exponent of the fixed-point scale: value = m * 2**exponent."""
        return -self.frac_bits

    def __len__(self) -> int:
        return len(self._ct)

    def __repr__(self) -> str:
        return (
            f"EncryptedVector(len={len(self)}, key={self.public.key_id[:12]}, frac_bits={self.frac_bits}, "
            f"bound=2^{self.bound.bit_length()})"
        )

    def __getitem__(self, index: Any) -> EncryptedVector:
        """Elements by int (a length-1 vector), slice, int array or boolean mask."""
        if isinstance(index, (int, np.integer)):
            picked = [self._ct[index]]
        elif isinstance(index, slice):
            picked = self._ct[index]
        else:
            chosen = np.asarray(index)
            if chosen.size == 0 and chosen.ndim == 1:
                chosen = chosen.astype(np.int64)
            if chosen.dtype == bool:
                if chosen.shape != (len(self),):
                    raise IndexError(
                        f"boolean mask of shape {chosen.shape} for a vector of length {len(self)}"
                    )
                chosen = np.flatnonzero(chosen)
            elif chosen.dtype.kind not in "iu" or chosen.ndim != 1:
                raise IndexError(f"cannot index an EncryptedVector with {type(index).__name__}")
            ct = self._ct
            picked = [ct[i] for i in chosen.tolist()]
        return EncryptedVector(self.public, picked, self.frac_bits, self.bound)

    def _new(self, cts: list[mpz], frac_bits: int, bound: int) -> EncryptedVector:
        return EncryptedVector(self.public, cts, frac_bits, bound)

    def _check_key(self, other: EncryptedVector) -> None:
        if other.public is not self.public and other.public.n != self.public.n:
            raise KeyMismatchError(
                f"cannot combine ciphertexts of key {self.public.key_id[:12]} and key {other.public.key_id[:12]}"
            )

    def rescaled(self, frac_bits: int) -> EncryptedVector:
        """The same values at a finer scale (raises each ciphertext to 2^d, d the extra fractional bits)."""
        shift = frac_bits - self.frac_bits
        if shift < 0:
            raise ValueError(f"cannot lower the scale from {self.frac_bits} to {frac_bits} fractional bits")
        if shift == 0:
            return self
        bound = check_bound(self.bound << shift, self.public.max_int, f"rescaling to {frac_bits} bits")
        nsq, factor, powmod = self.public.nsq, 1 << shift, gmpy2.powmod
        return self._new([powmod(c, factor, nsq) for c in self._ct], frac_bits, bound)

    def _plain(self, other: Any, frac_bits: int | None = None) -> tuple[list[int], int, int]:
        values = as_vector(other)
        if frac_bits is None:
            frac_bits = 0 if is_integer_valued(values) else self.public.precision_bits
        ints, bound = encode(values, frac_bits)
        return ints, bound, frac_bits

    def _lengths(self, other: int) -> int:
        mine = len(self)
        if other == mine or other == 1:
            return mine
        if mine == 1:
            return other
        raise ValueError(f"operands of lengths {mine} and {other} do not broadcast")

    def _broadcast(self, length: int) -> list[mpz]:
        return self._ct * length if len(self._ct) == 1 and length != 1 else self._ct

    def __add__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self._add_encrypted(other, negate=False)
        return self._add_plain(other, negate=False)

    __radd__ = __add__

    def __sub__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self._add_encrypted(other, negate=True)
        return self._add_plain(other, negate=True)

    def __rsub__(self, other: Any) -> EncryptedVector:
        return (-self)._add_plain(other, negate=False)

    def __neg__(self) -> EncryptedVector:
        return self._new(batch_invert(self._ct, self.public.nsq), self.frac_bits, self.bound)

    def _add_encrypted(self, other: EncryptedVector, negate: bool) -> EncryptedVector:
        self._check_key(other)
        length = self._lengths(len(other))
        frac = max(self.frac_bits, other.frac_bits)
        a, b = self.rescaled(frac), other.rescaled(frac)
        bound = check_bound(a.bound + b.bound, self.public.max_int, "the sum")
        nsq = self.public.nsq
        right = batch_invert(b._ct, nsq) if negate else b._ct
        if len(right) == 1 and length != 1:
            right = right * length
        cts = [x * y % nsq for x, y in zip(a._broadcast(length), right, strict=True)]
        return self._new(cts, frac, bound)

    def _add_plain(self, other: Any, negate: bool) -> EncryptedVector:
        values = as_vector(other)
        natural = 0 if is_integer_valued(values) else self.public.precision_bits
        frac = max(self.frac_bits, natural)
        ints, pbound = encode(values, frac)
        a = self.rescaled(frac)
        length = self._lengths(len(ints))
        bound = check_bound(a.bound + pbound, self.public.max_int, "the sum")
        n, nsq = self.public.n, self.public.nsq
        if negate:
            ints = [-m for m in ints]
        factors = [(m % n) * n + 1 for m in ints]
        if len(factors) == 1 and length != 1:
            factors = factors * length
        cts = [c * f % nsq for c, f in zip(a._broadcast(length), factors, strict=True)]
        return self._new(cts, frac, bound)

    def __mul__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            raise TypeError("Paillier cannot multiply two ciphertexts; multiply by a plaintext array instead")
        return self.multiply(other)

    __rmul__ = __mul__

    def multiply(self, other: Any, *, workers: int | None = None) -> EncryptedVector:
        """Elementwise (or scalar) product with plaintexts: exact for ints, `precision_bits` for floats."""
        ints, pbound, pfrac = self._plain(other)
        length = self._lengths(len(ints))
        bound = check_bound(self.bound * pbound, self.public.max_int, "the product")
        if len(ints) == 1 and length != 1:
            ints = ints * length
        cts = parallel.powers_of(self._broadcast(length), ints, self.public.nsq, workers)
        return self._new(cts, self.frac_bits + pfrac, bound)

    def sum(self) -> EncryptedVector:
        """The sum of the elements, as a vector of length 1."""
        bound = check_bound(self.bound * len(self), self.public.max_int, "the sum")
        nsq = self.public.nsq
        total = mpz(1)
        for c in self._ct:
            total = total * c % nsq
        return self._new([total], self.frac_bits, bound)

    def dot(
        self, matrix: Any, *, workers: int | None = None, method: Literal["bucket", "naive"] = "bucket"
    ) -> EncryptedVector:
        """X^T [[self]] for X of shape (len(self), features): one ciphertext per feature.

        A 1-D X is one feature. Integer X keeps the scale exactly (and is much cheaper than floats);
        float X adds `precision_bits`. `method="naive"` does one powmod per element (for comparison).
        """
        x = np.asarray(matrix)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] != len(self):
            raise ValueError(f"dot needs a matrix of shape ({len(self)}, features), got {x.shape}")
        if method not in ("bucket", "naive"):
            raise ValueError(f"method must be 'bucket' or 'naive', got {method!r}")
        frac = 0 if is_integer_valued(x) else self.public.precision_bits
        ints, pbound = encode(x, frac)
        rows, features = x.shape
        if pbound * max(rows, 1) < _I62:
            encoded = np.array(ints, dtype=np.int64).reshape(rows, features)
            column_bound = int(np.abs(encoded).sum(axis=0).max(initial=0))
        else:
            encoded = np.empty(rows * features, dtype=object)
            encoded[:] = ints
            encoded = encoded.reshape(rows, features)
            column_bound = max(
                (sum(abs(v) for v in encoded[:, j].tolist()) for j in range(features)), default=0
            )
        bound = check_bound(self.bound * column_bound, self.public.max_int, "the dot product")
        nsq = self.public.nsq
        parts = parallel.dot(self._ct, encoded, nsq, workers, naive=method == "naive")
        cts = [pos if neg == 1 else pos * gmpy2.invert(neg, nsq) % nsq for pos, neg in parts]
        return self._new(cts, self.frac_bits + frac, bound)

    def rerandomize(
        self, *, mode: Mode = "fixed_base", pool: ObfuscatorPool | None = None, workers: int | None = None
    ) -> EncryptedVector:
        """The same plaintexts under fresh randomness (multiply by new obfuscators)."""
        obfs = self.public.obfuscators(len(self), mode=mode, pool=pool, workers=workers)
        nsq = self.public.nsq
        return self._new(
            [c * r % nsq for c, r in zip(self._ct, obfs, strict=True)], self.frac_bits, self.bound
        )

    def public_bound(self) -> int:
        """The bound as sent to a peer: rounded up to 2^k - 1, so only the bit length of max |m| shows."""
        return min((1 << self.bound.bit_length()) - 1, self.public.max_int)

    def to_bytes(self) -> bytes:
        """Fixed-width serialization with a header (see `serialization`); no pickle."""
        public = self.public
        return fields_to_bytes(
            public.fingerprint, public.width, self.frac_bits, self.public_bound(), self._ct
        )

    @classmethod
    def from_bytes(cls, public: PublicKey, data: bytes | bytearray | memoryview) -> EncryptedVector:
        """Load `to_bytes` output for `public`, validating everything (MalformedCiphertextError)."""
        fields = fields_from_bytes(data, public.fingerprint, public.width, public.nsq, public.max_int)
        return cls(public, fields.ciphertexts, fields.frac_bits, fields.bound)

    def to_dict(self) -> dict[str, Any]:
        """``{"n_bits", "key_id", "exponent", "bound", "data"}``: what the federation codec carries."""
        public = self.public
        data = ciphertexts_to_bytes(self._ct, public.width)
        return fields_to_dict(public.n_bits, public.key_id, self.frac_bits, self.public_bound(), data)

    @classmethod
    def from_dict(cls, public: PublicKey, obj: Any) -> EncryptedVector:
        """Load `to_dict` output (as decoded by the codec) for `public`, validating everything."""
        fields = fields_from_dict(obj, public.n_bits, public.key_id, public.width, public.nsq, public.max_int)
        return cls(public, fields.ciphertexts, fields.frac_bits, fields.bound)

    def to_phe(self) -> list[Any]:
        """phe `EncryptedNumber`s of the values (phe's exponent is base 16: the scale is padded to 4k bits)."""
        from phe import EncryptedNumber

        vector = self.rescaled(-(-self.frac_bits // 4) * 4)
        key = self.public.to_phe()
        exponent = -vector.frac_bits // 4
        return [EncryptedNumber(key, int(c), exponent) for c in vector._ct]

    @classmethod
    def from_phe(
        cls, numbers: Sequence[Any], *, public: PublicKey | None = None, max_abs: float | None = None
    ) -> EncryptedVector:
        """A vector of phe `EncryptedNumber`s (aligned to the finest of their exponents).

        phe does not say how large the values are: the bound is the key's whole range unless `max_abs`
        (a bound on |value|) is given, which alignment of differing exponents and arithmetic need.
        """
        from fedbench.crypto.paillier.keys import PublicKey

        numbers = list(numbers)
        if not numbers:
            raise ValueError("from_phe needs at least one EncryptedNumber (the key comes from them)")
        if public is None:
            public = PublicKey.from_phe(numbers[0].public_key)
        for number in numbers:
            if int(number.public_key.n) != public.n:
                raise KeyMismatchError("the phe numbers were encrypted under another key")
        target = min(0, min(int(number.exponent) for number in numbers))
        frac = -4 * target
        if max_abs is None:
            bound = public.max_int
        else:
            bound = check_bound(math.ceil(abs(Fraction(max_abs)) * 2**frac), public.max_int, "the phe values")
        nsq, powmod = public.nsq, gmpy2.powmod
        cts = []
        for number in numbers:
            c = mpz(number.ciphertext(be_secure=False))
            if not 0 < c < nsq:
                raise MalformedCiphertextError("a phe ciphertext is not in (0, n^2)")
            shift = int(number.exponent) - target
            if shift:
                if max_abs is None:
                    raise PaillierOverflowError(
                        "the phe numbers have different exponents; aligning them needs a bound on the values: "
                        "pass max_abs"
                    )
                c = powmod(c, 16**shift, nsq)
            cts.append(c)
        return cls(public, cts, frac, bound)


def concatenate(vectors: Sequence[EncryptedVector]) -> EncryptedVector:
    """One vector of the given vectors' elements in order (same key; scales aligned to the finest)."""
    vectors = list(vectors)
    if not vectors:
        raise ValueError("concatenate needs at least one EncryptedVector")
    first = vectors[0]
    for other in vectors[1:]:
        first._check_key(other)
    frac = max(v.frac_bits for v in vectors)
    aligned = [v.rescaled(frac) for v in vectors]
    cts = [c for v in aligned for c in v._ct]
    return EncryptedVector(first.public, cts, frac, max(v.bound for v in aligned))
