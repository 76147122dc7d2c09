"""Arithmetic modulo p^2 and q^2 for the key owner: CRT decryption, CRT recombination, exact obfuscators.

Working modulo p^2 and q^2 (half-size moduli, half-size exponents) instead of n^2 is what makes the key
owner's decryption and encryption cheaper. The math, with g = n + 1 and phe's conventions (p < q):

* decryption: m_p = L_p(c^(p-1) mod p^2) * h_p mod p with L_p(x) = (x - 1) / p and
  h_p = L_p((n+1)^(p-1) mod p^2)^-1 mod p, the same for q, then m = CRT(m_p, m_q) (what phe computes);
* obfuscators: r^n mod p^2 only depends on r mod p, and for r uniform in Z*_n the pair
  (r^n mod p^2, r^n mod q^2) has the distribution of (x^p mod p^2, y^q mod q^2) with x, y uniform in
  Z*_p, Z*_q (x -> x^q is a bijection of Z*_p). So a textbook obfuscator costs two exponentiations with
  half-size exponent and modulus, with exactly the textbook distribution.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import gmpy2
from gmpy2 import mpz

__all__ = ["CrtParams", "crt_params"]

_CACHE: dict[tuple[int, int], CrtParams] = {}
_CACHE_SIZE = 8


class CrtParams:
    """Precomputed constants of one private key for CRT work (p < q)."""

    __slots__ = ("hp", "hq", "n", "nsq", "p", "p_inv_q", "psq", "q", "qsq", "qsq_inv_psq")

    def __init__(self, p: int, q: int) -> None:
        p_, q_ = (mpz(p), mpz(q)) if p < q else (mpz(q), mpz(p))
        self.p, self.q = p_, q_
        self.n = p_ * q_
        self.nsq = self.n * self.n
        self.psq, self.qsq = p_ * p_, q_ * q_
        self.p_inv_q = gmpy2.invert(p_, q_)
        self.qsq_inv_psq = gmpy2.invert(self.qsq, self.psq)
        self.hp = self._h(p_, self.psq)
        self.hq = self._h(q_, self.qsq)

    def _h(self, prime: mpz, square: mpz) -> mpz:
        return gmpy2.invert((gmpy2.powmod(self.n + 1, prime - 1, square) - 1) // prime, prime)

    def decrypt(self, ciphertexts: Iterable[mpz]) -> list[mpz]:
        """Residues m in [0, n) of the ciphertexts."""
        p, q, psq, qsq, hp, hq, p_inv_q = self.p, self.q, self.psq, self.qsq, self.hp, self.hq, self.p_inv_q
        powmod = gmpy2.powmod
        pm1, qm1 = p - 1, q - 1
        out = []
        for c in ciphertexts:
            mp = (powmod(c, pm1, psq) - 1) // p * hp % p
            mq = (powmod(c, qm1, qsq) - 1) // q * hq % q
            out.append(mp + (mq - mp) * p_inv_q % q * p)
        return out

    def combine(self, a: mpz, b: mpz) -> mpz:
        """The x mod n^2 with x = a mod p^2 and x = b mod q^2."""
        return b + (a - b) * self.qsq_inv_psq % self.psq * self.qsq

    def textbook_obfuscators(self, count: int) -> list[mpz]:
        """`count` uniform n-th residues mod n^2 (textbook r^n), computed modulo p^2 and q^2."""
        p, q, psq, qsq = self.p, self.q, self.psq, self.qsq
        powmod, below = gmpy2.powmod, secrets.randbelow
        pm1, qm1 = int(p) - 1, int(q) - 1
        return [
            self.combine(powmod(below(pm1) + 1, p, psq), powmod(below(qm1) + 1, q, qsq)) for _ in range(count)
        ]


def crt_params(p: int, q: int) -> CrtParams:
    """Cached `CrtParams` for (p, q): a worker process builds them once per key."""
    key = (int(p), int(q))
    params = _CACHE.get(key)
    if params is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        params = _CACHE[key] = CrtParams(*key)
    return params


def forget(p: int, q: int) -> None:
    """Drop the cached constants of (p, q) from this process (a cluster worker's job ended)."""
    _CACHE.pop((int(p), int(q)), None)
