"""Checks on a peer's Paillier modulus, and the owner's proof that gcd(n, phi(n)) = 1.

A party that computes on a peer's ciphertexts and sends results back relies on the peer's n being a proper
Paillier modulus: if gcd(n, phi(n)) != 1, n-th powers do not cover the ciphertext's randomness and even a
textbook rerandomisation can leak. We decide from our own recomputation only:

* `check_modulus`: size within [MIN_KEY_BITS, MAX_KEY_BITS], odd, not a perfect square, not a prime, and no
  prime factor below 2^16 (one gcd with the product of those primes, gmpy2's `primorial`).
* `prove_modulus` / `verify_modulus`: the non-interactive proof of Goldberg, Reyzin, Sagga and Baldimtsi
  ("Efficient noninteractive certification of RSA moduli and beyond", Asiacrypt 2019, the gcd(N, phi(N)) = 1
  protocol): the owner gives n-th roots mod n of `PROOF_ROUNDS` values derived from n by SHAKE-256. If
  gcd(n, phi(n)) != 1, its smallest prime factor l (>= 2^16 after the trial division) makes at most a 1/l
  fraction of Z*_n n-th residues, so 8 roots fail with probability 2^-128.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import gmpy2
from gmpy2 import mpz

from fedbench.crypto.paillier.errors import PeerKeyError

__all__ = [
    "MAX_KEY_BITS",
    "PROOF_ROUNDS",
    "SMALL_PRIME_BOUND",
    "check_modulus",
    "prove_modulus",
    "verify_modulus",
]

MAX_KEY_BITS = 8192
"""The largest peer modulus we compute with (bounds the work a peer can make us do)."""
SMALL_PRIME_BOUND = 1 << 16
"""A peer's n must have no prime factor below this."""
PROOF_ROUNDS = 8
"""n-th roots in the modulus proof: 8 * 16 = 128 bits of soundness with SMALL_PRIME_BOUND = 2^16."""
_DOMAIN = b"fedbench/paillier/modulus-proof/v1"
_SMALL_PRIMES = gmpy2.primorial(SMALL_PRIME_BOUND)


def check_modulus(n: int, min_bits: int) -> None:
    """Refuse (`PeerKeyError`) a modulus that cannot be a proper Paillier n of at least `min_bits` bits."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise PeerKeyError(f"a Paillier modulus n must be an integer, got {type(n).__name__}")
    bits = n.bit_length()
    if not min_bits <= bits <= MAX_KEY_BITS:
        raise PeerKeyError(
            f"the peer's Paillier modulus has {bits} bits; we accept {min_bits} to {MAX_KEY_BITS} bits: "
            "the peer must generate a key of 2048 bits or more"
        )
    if n % 2 == 0:
        raise PeerKeyError("the peer's Paillier modulus n is even; a Paillier n = p q is odd")
    m = mpz(n)
    if gmpy2.is_square(m):
        raise PeerKeyError("the peer's Paillier modulus n is a perfect square, not a product of two primes")
    if gmpy2.gcd(m, _SMALL_PRIMES) != 1:
        raise PeerKeyError(
            f"the peer's Paillier modulus n has a small prime factor (below {SMALL_PRIME_BOUND}): it is not a "
            "product of two large primes"
        )
    if gmpy2.is_prime(m, 25):
        raise PeerKeyError("the peer's Paillier modulus n is prime, not a product of two primes")


def _challenges(n: int) -> list[mpz]:
    """The values the proof takes n-th roots of: SHAKE-256 of (domain, n, i), 128 bits wider than n, mod n."""
    size = (n.bit_length() + 7) // 8
    seed = _DOMAIN + n.to_bytes(size, "big")
    out = []
    for i in range(PROOF_ROUNDS):
        blob = hashlib.shake_256(seed + i.to_bytes(4, "big")).digest(size + 16)
        out.append(mpz(int.from_bytes(blob, "big")) % n)
    return out


def prove_modulus(p: int, q: int) -> list[int]:
    """The key owner's proof for n = p q: n-th roots mod n of the challenges (needs gcd(n, phi(n)) = 1)."""
    p, q = mpz(p), mpz(q)
    n = p * q
    root = gmpy2.invert(n, (p - 1) * (q - 1))
    return [int(gmpy2.powmod(c, root, n)) for c in _challenges(int(n))]


def verify_modulus(n: int, proof: Sequence[int]) -> None:
    """Refuse (`PeerKeyError`) a proof that is malformed or whose roots do not check out for n."""
    if not isinstance(proof, (list, tuple)) or len(proof) != PROOF_ROUNDS:
        raise PeerKeyError(
            f"the peer's key carries no valid modulus proof (expected {PROOF_ROUNDS} n-th roots): the peer must "
            "send its key as `public.to_dict()` of a key it generated"
        )
    m = mpz(n)
    for sigma, challenge in zip(proof, _challenges(n), strict=True):
        if isinstance(sigma, bool) or not isinstance(sigma, int) or not 0 < sigma < n:
            raise PeerKeyError("the peer's modulus proof holds a value outside (0, n)")
        if gmpy2.gcd(challenge, m) != 1 or gmpy2.powmod(sigma, m, m) != challenge:
            raise PeerKeyError(
                "the peer's modulus proof does not verify: n is not a proper Paillier modulus "
                "(gcd(n, phi(n)) != 1) or the proof belongs to another key"
            )
