"""Obfuscators, the random factor r^n of a Paillier ciphertext (1 + m n) * r^n mod n^2, in five ways.

Encryption cost is all in the obfuscator. With g = n + 1 the message part (1 + m n) is one multiplication.

* `textbook`: r uniform in Z*_n, r^n mod n^2 (one full exponentiation: exponent n, modulus n^2).
* `crt_textbook` (key owner): the same distribution computed modulo p^2 and q^2 (see `crt`).
* `fixed_base` (Damgard-Jurik-Nielsen, as in SecretFlow HEU): hs = h^n mod n^2 for h = -x^2 mod n with x
  random, fixed per key; the obfuscator is hs^a for a uniform in [0, 2^exponent_bits) (default: half the
  bits of n, HEU's choice). A table of hs^(j * 256^i) (j < 256) turns hs^a into one multiplication per
  byte of a, with no squaring: about a twentieth of the textbook cost at 2048 bits.
* `crt_fixed_base` (key owner): the same hs^a from two tables modulo p^2 and q^2, recombined by CRT.
* `peer_fixed_base` (a peer's key): +-hs^a from a table of *our own* base hs = y^n mod n^2 (y our secret,
  Jacobi symbol -1), a of n_bits + 128 bits and a random sign. A peer never supplies the base: what we send
  back on its key must carry randomness it cannot predict, and the long exponent leaves it nothing to gain
  from choosing the factors of n (a mod the order of y is within 2^-128 of uniform).

Randomness comes from `secrets` (the OS CSPRNG); tables are cached per process and per key.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Literal

import gmpy2
from gmpy2 import mpz

from fedbench.crypto.paillier.crt import crt_params

__all__ = ["FixedBaseTable", "ObfuscatorSpec", "encrypt_residues", "fixed_base_table", "obfuscators"]

Kind = Literal["textbook", "fixed_base", "peer_fixed_base", "crt_textbook", "crt_fixed_base"]
_WINDOW = 8
_TABLES: dict[tuple[int, int, int], FixedBaseTable] = {}
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


class FixedBaseTable:
    """Powers base^(j * 256^i) mod modulus for every byte position i of the exponent and j in 1..255."""

    def __init__(self, base: int, modulus: int, exponent_bits: int) -> None:
        self.modulus = m = mpz(modulus)
        self.exponent_bytes = -(-exponent_bits // 8)
        rows: list[list[mpz]] = []
        current = mpz(base) % m
        for _ in range(self.exponent_bytes):
            row = [mpz(1), current]
            for _ in range(2, 1 << _WINDOW):
                row.append(row[-1] * current % m)
            rows.append(row)
            current = row[-1] * current % m
        self.rows = rows

    def power(self, exponent: bytes) -> mpz:
        """base^a mod modulus for the little-endian exponent bytes a (at most `exponent_bytes` of them)."""
        m = self.modulus
        acc = None
        for row, digit in zip(self.rows, exponent, strict=False):
            if digit:
                acc = row[digit] if acc is None else acc * row[digit] % m
        return mpz(1) if acc is None else acc

    def random_powers(self, count: int) -> list[mpz]:
        """`count` values base^a with a uniform in [0, 256^exponent_bytes), a from `secrets`."""
        width = self.exponent_bytes
        blob = secrets.token_bytes(count * width)
        return [self.power(blob[i : i + width]) for i in range(0, count * width, width)]


def fixed_base_table(base: int, modulus: int, exponent_bits: int) -> FixedBaseTable:
    """The cached table of `base` mod `modulus` (built on first use in each process)."""
    key = (int(base), int(modulus), int(exponent_bits))
    with _TABLES_LOCK:
        table = _TABLES.get(key)
        if table is None:
            if len(_TABLES) >= _TABLES_SIZE:
                _TABLES.pop(next(iter(_TABLES)))
            table = _TABLES[key] = FixedBaseTable(*key)
    return table


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
        return fixed_base_table(spec.hs, nsq, spec.exponent_bits).random_powers(count)
    if spec.kind == "peer_fixed_base":
        powers = fixed_base_table(spec.hs, nsq, spec.exponent_bits).random_powers(count)
        signs = int.from_bytes(secrets.token_bytes(-(-count // 8)), "little")
        return [nsq - v if signs >> i & 1 else v for i, v in enumerate(powers)]
    params = crt_params(spec.p, spec.q)
    if spec.kind == "crt_textbook":
        return params.textbook_obfuscators(count)
    if spec.kind == "crt_fixed_base":
        tp = fixed_base_table(spec.hs % params.psq, params.psq, spec.exponent_bits)
        tq = fixed_base_table(spec.hs % params.qsq, params.qsq, spec.exponent_bits)
        width = tp.exponent_bytes
        blob = secrets.token_bytes(count * width)
        combine = params.combine
        return [
            combine(tp.power(blob[i : i + width]), tq.power(blob[i : i + width]))
            for i in range(0, count * width, width)
        ]
    raise ValueError(f"unknown obfuscator kind {spec.kind!r}")


def encrypt_residues(spec: ObfuscatorSpec, residues: list[int]) -> list[mpz]:
    """Ciphertexts (1 + m n) * obfuscator mod n^2 of plaintext residues m in [0, n)."""
    n = mpz(spec.n)
    nsq = n * n
    obfs = obfuscators(spec, len(residues))
    return [(m * n + 1) * r % nsq for m, r in zip(residues, obfs, strict=True)]
