"""Obfuscators, the random factor r^n of a Paillier ciphertext (1 + m n) * r^n mod n^2, in five ways.

Encryption cost is all in the obfuscator. With g = n + 1 the message part (1 + m n) is one multiplication.

* `textbook`: r uniform in Z*_n, r^n mod n^2 (one full exponentiation: exponent n, modulus n^2).
* `crt_textbook` (key owner): the same distribution computed modulo p^2 and q^2 (see `crt`).
* `fixed_base` (Damgard-Jurik-Nielsen, as in SecretFlow HEU): hs = h^n mod n^2 for h = -x^2 mod n with x
  random, fixed per key; the obfuscator is hs^a for a uniform in [0, 2^exponent_bits) (default: half the
  bits of n, HEU's choice). A table of hs^(j * 256^i) (j < 256) turns hs^a into one multiplication per
  byte of a, with no squaring: about a twentieth of the textbook cost at 2048 bits.
* `crt_fixed_base` (key owner): the same hs^a from two tables modulo p^2 and q^2, recombined by CRT. A spec
  may ask for a wider table (`window` bits per digit of a instead of 8, `WIDE_WINDOW`): fewer multiplications
  per obfuscator (86 instead of 128 per modulus at 2048 bits) for a table built once per process that is 16
  times larger (about 200 MB and 1 s at 2048 bits); it pays for a process that makes many thousands, such as
  the worker processes of a large `ObfuscatorPool`. The exponent a stays uniform over at least
  `exponent_bits` bits (whole digits: 1032 bits at window 12 for 1024).
* `peer_fixed_base` (a peer's key): +-hs^a from a table of *our own* base hs = y^n mod n^2 (y our secret,
  Jacobi symbol -1), a of n_bits + 128 bits and a random sign. A peer never supplies the base: what we send
  back on its key must carry randomness it cannot predict, and the long exponent leaves it nothing to gain
  from choosing the factors of n (a mod the order of y is within 2^-128 of uniform). A large pool uses a
  wider table (`peer_window`: 11 bits per digit at 1024-bit keys, 10 at 2048), built in its worker processes.

Randomness comes from `secrets` (the OS CSPRNG); tables are cached per process and per key.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import gmpy2
import numpy as np
from gmpy2 import mpz

from fedbench.crypto.paillier.crt import crt_params

__all__ = [
    "PEER_TABLE_BYTES",
    "WIDE_WINDOW",
    "FixedBaseTable",
    "ObfuscatorSpec",
    "encrypt_residues",
    "fixed_base_table",
    "forget_tables",
    "obfuscators",
    "peer_window",
]

Kind = Literal["textbook", "fixed_base", "peer_fixed_base", "crt_textbook", "crt_fixed_base"]
_WINDOW = 8
WIDE_WINDOW = 12
"""Bits per exponent digit of a wide owner table (`ObfuscatorSpec.window`): 4096 entries per digit."""
PEER_TABLE_BYTES = 128 << 20
"""The most memory a wide table for a peer's key may take in one process (`peer_window`)."""
_TABLES: dict[tuple[int, int, int, int], FixedBaseTable] = {}
_TABLES_SIZE = 8
_TABLES_LOCK = threading.Lock()


@dataclass(frozen=True)
class ObfuscatorSpec:
    """What a process needs to make obfuscators for one key: plain ints, so it crosses to a worker."""

    kind: Kind
    n: int
    hs: int = 0
    exponent_bits: int = 0
    p: int = field(default=0, repr=False)
    q: int = field(default=0, repr=False)
    window: int = _WINDOW
    """Bits per exponent digit of the fixed-base tables (8, or `WIDE_WINDOW` for a process that makes many)."""


class FixedBaseTable:
    """Powers base^(j * 2^(w i)) mod modulus for every w-bit digit position i of the exponent and j < 2^w
    (w = `window`, 8 by default: one row per exponent byte)."""

    def __init__(self, base: int, modulus: int, exponent_bits: int, window: int = _WINDOW) -> None:
        if not 1 <= window <= 16:
            raise ValueError(f"a fixed-base table's window must be 1 to 16 bits, got {window}")
        self.modulus = m = mpz(modulus)
        self.window = window
        self.digits = -(-exponent_bits // window)
        self.exponent_bytes = -(-exponent_bits // 8)
        rows: list[list[mpz]] = []
        current = mpz(base) % m
        for _ in range(self.digits):
            row = [mpz(1), current]
            for _ in range(2, 1 << window):
                row.append(row[-1] * current % m)
            rows.append(row)
            current = row[-1] * current % m
        self.rows = rows

    def power(self, exponent: Sequence[int]) -> mpz:
        """base^a mod modulus for the little-endian digits of a (bytes for a table of window 8; at most
        `digits` of them)."""
        m = self.modulus
        acc = None
        for row, digit in zip(self.rows, exponent, strict=False):
            if digit:
                acc = row[digit] if acc is None else acc * row[digit] % m
        return mpz(1) if acc is None else acc

    def random_digits(self, count: int) -> Sequence[Sequence[int]]:
        """`count` uniform exponents a in [0, 2^(window digits)) as digit sequences, from `secrets`."""
        if self.window == 8:
            width = self.digits
            blob = secrets.token_bytes(count * width)
            return [blob[i : i + width] for i in range(0, count * width, width)]
        # Uniform 16-bit words masked to the window stay uniform.
        words = np.frombuffer(secrets.token_bytes(count * self.digits * 2), dtype="<u2")
        masked = (words & ((1 << self.window) - 1)).reshape(count, self.digits)
        digits: list[list[int]] = masked.tolist()
        return digits

    def random_powers(self, count: int) -> list[mpz]:
        """`count` values base^a with a uniform in [0, 2^(window digits)), a from `secrets`."""
        return [self.power(digits) for digits in self.random_digits(count)]


def peer_window(n_bits: int, exponent_bits: int) -> int:
    """The widest window (8 to 11 bits) whose table for a peer's key of `n_bits` and its `exponent_bits`-bit
    exponents fits in `PEER_TABLE_BYTES`: 11 at 1024 bits (about 55 MB, 22% less CPU per obfuscator than 8,
    measured), 10 at 2048 (about 115 MB, 12% less), 8 from 3072 up. The exponent keeps its length: a table
    only changes how hs^a is computed, not a."""
    entry = 2 * ((n_bits + 7) // 8) + 32
    best = _WINDOW
    for window in range(_WINDOW + 1, 12):
        if -(-exponent_bits // window) * (1 << window) * entry <= PEER_TABLE_BYTES:
            best = window
    return best


def fixed_base_table(base: int, modulus: int, exponent_bits: int, window: int = _WINDOW) -> FixedBaseTable:
    """The cached table of `base` mod `modulus` (built on first use in each process)."""
    key = (int(base), int(modulus), int(exponent_bits), int(window))
    with _TABLES_LOCK:
        table = _TABLES.get(key)
        if table is None:
            if len(_TABLES) >= _TABLES_SIZE:
                _TABLES.pop(next(iter(_TABLES)))
            table = _TABLES[key] = FixedBaseTable(*key)
    return table


def forget_tables(moduli: set[int]) -> None:
    """Drop this process's cached tables modulo any of `moduli` (a cluster worker's job ended)."""
    with _TABLES_LOCK:
        for key in [key for key in _TABLES if key[1] in moduli]:
            del _TABLES[key]


def obfuscators(spec: ObfuscatorSpec, count: int) -> list[mpz]:
    """`count` fresh obfuscators (n-th residues mod n^2) made the way `spec.kind` says."""
    if count <= 0:
        return []
    n = mpz(spec.n)
    nsq = n * n
    if spec.kind == "textbook":
        powmod, below = gmpy2.powmod, secrets.randbelow
        return [powmod(below(spec.n - 1) + 1, n, nsq) for _ in range(count)]
    if spec.kind == "fixed_base":
        return fixed_base_table(spec.hs, nsq, spec.exponent_bits, spec.window).random_powers(count)
    if spec.kind == "peer_fixed_base":
        powers = fixed_base_table(spec.hs, nsq, spec.exponent_bits, spec.window).random_powers(count)
        signs = int.from_bytes(secrets.token_bytes(-(-count // 8)), "little")
        return [nsq - v if signs >> i & 1 else v for i, v in enumerate(powers)]
    params = crt_params(spec.p, spec.q)
    if spec.kind == "crt_textbook":
        return params.textbook_obfuscators(count)
    if spec.kind == "crt_fixed_base":
        tp = fixed_base_table(spec.hs % params.psq, params.psq, spec.exponent_bits, spec.window)
        tq = fixed_base_table(spec.hs % params.qsq, params.qsq, spec.exponent_bits, spec.window)
        combine = params.combine
        # The same exponent a modulo p^2 and q^2: hs^a mod n^2 by CRT.
        return [combine(tp.power(a), tq.power(a)) for a in tp.random_digits(count)]
    raise ValueError(f"unknown obfuscator kind {spec.kind!r}")


def encrypt_residues(spec: ObfuscatorSpec, residues: list[int]) -> list[mpz]:
    """Ciphertexts (1 + m n) * obfuscator mod n^2 of plaintext residues m in [0, n)."""
    n = mpz(spec.n)
    nsq = n * n
    obfs = obfuscators(spec, len(residues))
    return [(m * n + 1) * r % nsq for m, r in zip(residues, obfs, strict=True)]
