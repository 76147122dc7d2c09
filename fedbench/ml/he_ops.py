"""Paillier operations the learning protocols need beyond `EncryptedVector`: raw-integer masking, encryption
with obfuscators made ahead of time, and a packed product of a plaintext matrix with an encrypted vector.

`packed_matvec` computes, for a party's integer matrix X (rows x d) and a peer's encrypted vector [[w]] (d
ciphertexts), [[X w + m]] for a random mask m, with several rows packed into each ciphertext: slot p of
ciphertext k holds row k*P + p, shifted by slot_bits * p. The packing costs nothing extra: the bases
[[w_j]]^(2^(slot_bits p)) are raised once, and each row's exponentiations use fixed-base comb tables of those
bases (window bits chosen to minimise table building plus lookups). The peer then decrypts P rows at a time.
X must be non-negative: callers add a public offset and the key owner removes offset * sum(w) itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from fedbench.crypto.paillier import EncryptedVector, PrivateKey, PublicKey
from fedbench.errors import FedbenchError

__all__ = [
    "SLOT_MARGIN_BITS",
    "add_ints",
    "encrypt_ints",
    "packed_matvec",
    "received_vector",
    "slots_per_ciphertext",
    "unpack",
]

SLOT_MARGIN_BITS = 40
"""Statistical hiding: a mask has this many bits more than the value it hides."""


def add_ints(vector: EncryptedVector, ints: Sequence[int]) -> EncryptedVector:
    """[[v + m]] for integers m at the vector's own scale (no re-encoding), e.g. to mask before decryption."""
    public = vector.public
    n, nsq = public.n, public.nsq
    cts = [c * ((int(m) % n) * n + 1) % nsq for c, m in zip(vector._ct, ints, strict=True)]
    bound = min(public.max_int, vector.bound + max((abs(int(m)) for m in ints), default=0))
    return EncryptedVector(public, cts, vector.frac_bits, bound)


def encrypt_ints(
    public: PublicKey, ints: Sequence[int], obfuscators: Sequence[mpz], frac_bits: int = 0
) -> EncryptedVector:
    """Encrypt integers (standing for m * 2^-frac_bits) with obfuscators made earlier (`key.obfuscators`),
    so that when the values are ready the encryption is one multiplication each."""
    n, nsq = public.n, public.nsq
    cts = [(int(m) % n * n + 1) * r % nsq for m, r in zip(ints, obfuscators, strict=True)]
    bound = min(public.max_int, max((abs(int(m)) for m in ints), default=0))
    return EncryptedVector(public, cts, frac_bits, bound)


def received_vector(
    public: PublicKey, obj: Any, length: int, what: str, error: type[FedbenchError]
) -> EncryptedVector:
    """A peer's encrypted vector, checked: well-formed under `public` and of `length` (else `error`)."""
    try:
        vector = EncryptedVector.from_dict(public, obj)
    except (ValueError, TypeError) as exc:
        raise error(f"the peer's {what} are malformed: {exc}") from None
    if len(vector) != length:
        raise error(f"the peer sent {len(vector)} {what}, expected {length}")
    return vector


def slots_per_ciphertext(public: PublicKey, slot_bits: int) -> int:
    """How many slots of `slot_bits` fit below n / 3 (the engine's signed range)."""
    slots = (public.n_bits - 3) // slot_bits
    if slots < 1:
        raise ValueError(f"a {public.n_bits}-bit key cannot hold a slot of {slot_bits} bits")
    return slots


def _window(rows: int, columns: int, slots: int, exponent_bits: int) -> int:
    """The comb window that minimises multiplications: building the tables plus one lookup per digit."""

    def cost(w: int) -> int:
        windows = -(-exponent_bits // w)
        return columns * slots * windows * (2**w) + rows * columns * windows

    return min(range(2, 9), key=cost)


def packed_matvec(
    public: PublicKey,
    weights: EncryptedVector,
    matrix: np.ndarray,
    exponent_bits: int,
    slot_bits: int,
    masks: Sequence[int],
    obfuscators: Sequence[mpz],
) -> list[mpz]:
    """Packed ciphertexts of X w + m (see the module docstring); `matrix` holds ints in [0, 2^exponent_bits).

    `masks` has one integer per row (each below 2^slot_bits minus the value's range) and `obfuscators` one
    per packed ciphertext, so the result carries fresh randomness the key owner cannot relate to [[w]].
    """
    x = np.asarray(matrix, dtype=np.int64)
    rows, d = x.shape
    if d != len(weights):
        raise ValueError(f"the matrix has {d} columns but {len(weights)} encrypted weights came")
    if rows and (int(x.min()) < 0 or int(x.max()) >= 1 << exponent_bits):
        raise ValueError(f"matrix entries must lie in [0, 2^{exponent_bits})")
    nsq, n = public.nsq, public.n
    slots = slots_per_ciphertext(public, slot_bits)
    packs = -(-rows // slots)
    if len(obfuscators) < packs:
        raise ValueError(f"{packs} packed ciphertexts need as many obfuscators, got {len(obfuscators)}")
    used = min(slots, rows) if rows else 0
    window = _window(rows, d, used, exponent_bits)
    windows = -(-exponent_bits // window)
    size = 1 << window
    # tables[(p * d + j) * windows + t][v] = [[w_j]]^(v * 2^(window t + slot_bits p))
    tables: list[list[mpz]] = []
    powmod = gmpy2.powmod
    shift_slot = mpz(1) << slot_bits
    shift_window = mpz(1) << window
    base_by_column = [mpz(c) for c in weights._ct]
    for _p in range(used):
        for j in range(d):
            base = base_by_column[j]
            for _t in range(windows):
                table = [mpz(1)] * size
                for v in range(1, size):
                    table[v] = table[v - 1] * base % nsq
                tables.append(table)
                base = powmod(base, shift_window, nsq)
            base_by_column[j] = powmod(base_by_column[j], shift_slot, nsq)
    digits = np.stack([(x >> (window * t)) & (size - 1) for t in range(windows)], axis=2).reshape(rows, -1)
    per_slot = d * windows
    out: list[mpz] = []
    for k in range(packs):
        acc = mpz(1)
        packed_mask = 0
        first = k * slots
        for p, row in enumerate(range(first, min(first + slots, rows))):
            offset = p * per_slot
            for i, v in enumerate(digits[row].tolist()):
                if v:
                    acc = acc * tables[offset + i][v] % nsq
            packed_mask |= int(masks[row]) << (slot_bits * p)
        acc = acc * ((packed_mask % n) * n + 1) % nsq
        out.append(acc * obfuscators[k] % nsq)
    return out


def unpack(private: PrivateKey, packed: Sequence[Any], rows: int, slot_bits: int) -> list[int]:
    """Decrypt packed ciphertexts and split them into `rows` slot values (the key owner's side)."""
    public = private.public
    slots = slots_per_ciphertext(public, slot_bits)
    if len(packed) != -(-rows // slots):
        raise ValueError(f"{rows} rows come in {-(-rows // slots)} packed ciphertexts, got {len(packed)}")
    vector = EncryptedVector.from_ciphertexts(public, [int(c) for c in packed])
    plain = private.decrypt_encoded(vector)
    mask = (1 << slot_bits) - 1
    values: list[int] = []
    for k, m in enumerate(plain):
        if m < 0:
            raise ValueError("a packed value is negative: the peer's packing is malformed")
        for p in range(min(slots, rows - k * slots)):
            values.append((m >> (slot_bits * p)) & mask)
    return values
