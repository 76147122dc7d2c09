"""Zero-knowledge proofs that Paillier ciphertexts encrypt 0 or 1, made by the key owner, verified in batches.

Why: a protocol that sums a peer's encrypted 0/1 values (binning sums the guest's labels per host bin) leaks
per-row information if the peer encrypts anything else (Enc(2^i) for row i turns one decrypted sum into the
set of rows in the bin). The key owner therefore proves, for each ciphertext c, that c or c / g is an n-th
residue mod n^2 (c encrypts 0 or 1), and the receiver checks every proof before it uses c.

The proof (an OR of two Sigma proofs of n-th residuosity, Cramer-Damgard-Schoenmakers; Fiat-Shamir): the
prover picks a base h in Z*_n and sends it; the verifier computes hs = h^n mod n^2 itself, so hs is an n-th
residue whatever h is. The prover encrypts c = g^m hs^a (DJN's short-exponent encryption, a of
`RANDOMNESS_BITS` bits) and proves "hs^t0 = A0 c^e0 and hs^t1 = A1 (c/g)^e1 with
e0 + e1 = H(context, n, h, i, c, A0, A1) mod 2^128": integer responses t = b + a e hide a (b has 80 more bits
than a e: statistical zero knowledge), and with both c and c/g outside the n-th residues no commitment fits
more than one challenge split, so a false proof passes with probability about 2^-128 per hash the prover
tries (provided every prime factor of n exceeds 2^128: see the caveat in docs/protocols/binning.md).

The verifier checks all the proofs of a vector at once: with its own secret 63-bit weights w,
hs^(sum w t) = prod A^w * prod c^(w e) * g^(-sum w1 e1), two multi-exponentiations with short exponents
(`multiexp`) instead of a full exponentiation per proof; a batch holding a false proof passes with
probability at most 2^-63. See docs/protocols/binning.md.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from fedbench.crypto.paillier import parallel
from fedbench.crypto.paillier.crt import crt_params
from fedbench.crypto.paillier.errors import PaillierError
from fedbench.crypto.paillier.keys import PrivateKey, PublicKey
from fedbench.crypto.paillier.multiexp import multiexp
from fedbench.crypto.paillier.obfuscation import fixed_base_table
from fedbench.crypto.paillier.serialization import ciphertexts_from_bytes, ciphertexts_to_bytes
from fedbench.crypto.paillier.vector import EncryptedVector

__all__ = [
    "CHALLENGE_BITS",
    "RANDOMNESS_BITS",
    "SLACK_BITS",
    "WEIGHT_BITS",
    "BitProofError",
    "BitProofs",
    "encrypt_bits",
    "verify_bits",
]

CHALLENGE_BITS = 128
"""Length of the Fiat-Shamir challenge of each proof (soundness about 2^-128 per hash query)."""
RANDOMNESS_BITS = 512
"""Length of the encryption exponent a (at most half of n): Pollard's lambda method on so short an exponent
costs about 2^256 operations, beyond the strength of any supported modulus (the engine's floor is 256 bits)."""
SLACK_BITS = 80
"""Extra bits of the commitment exponents over a * e (statistical zero knowledge to 2^-80)."""
WEIGHT_BITS = 63
"""Length of the verifier's secret batch weights (a batch with a false proof passes with prob. <= 2^-63)."""
_DOMAIN = b"fedbench/paillier-bit-proof/v1"
_CHALLENGE_BYTES = CHALLENGE_BITS // 8
_CHALLENGE_MOD = 1 << CHALLENGE_BITS
_UNIT_COST = 900.0
"""Rough multiplications (at the key's size) to prove or check one bit, for `parallel.plan`."""


class BitProofError(PaillierError):
    """Proofs that ciphertexts encrypt 0 or 1 are malformed, do not match the ciphertexts, or do not verify."""

    code = "paillier_bit_proof"


def _randomness_bits(n: mpz) -> int:
    """Bits of the encryption exponent a: `RANDOMNESS_BITS`, or half of n if that is shorter."""
    return min(int(n.bit_length()) // 2, RANDOMNESS_BITS)


def _response_bits(n: mpz) -> int:
    """Largest bit length of an honest response t = b + a e."""
    return _randomness_bits(n) + CHALLENGE_BITS + SLACK_BITS + 1


def _width(n: mpz) -> int:
    return (int(n * n).bit_length() + 7) // 8


def _response_width(n: mpz) -> int:
    return (_response_bits(n) + 7) // 8


@dataclass(frozen=True)
class BitProofs:
    """Proofs for a vector of N ciphertexts: the base h, 2N commitments, N challenges e0, 2N responses."""

    base: int
    commitments: list[mpz]
    challenges: list[int]
    responses: list[int]

    def __len__(self) -> int:
        return len(self.challenges)

    def to_dict(self, public: PublicKey) -> dict[str, Any]:
        """``{"base": int, "commitments": bytes, "challenges": bytes, "responses": bytes}`` for the codec."""
        n = public.n
        tw = _response_width(n)
        return {
            "base": int(self.base),
            "commitments": ciphertexts_to_bytes(self.commitments, _width(n)),
            "challenges": b"".join(int(e).to_bytes(_CHALLENGE_BYTES, "big") for e in self.challenges),
            "responses": b"".join(int(t).to_bytes(tw, "big") for t in self.responses),
        }

    @classmethod
    def from_dict(cls, public: PublicKey, obj: Any, count: int) -> BitProofs:
        """Proofs for `count` ciphertexts of `public`, from `to_dict` output; every field checked."""
        if not isinstance(obj, dict) or set(obj) != {"base", "commitments", "challenges", "responses"}:
            raise BitProofError(
                "the bit proofs must be a dict with 'base', 'commitments', 'challenges' and 'responses'"
            )
        n = public.n
        base, blobs = obj["base"], [obj["commitments"], obj["challenges"], obj["responses"]]
        if type(base) is not int or not 1 < base < n or gmpy2.gcd(base, n) != 1:
            raise BitProofError("the bit proofs' base is not a unit of Z_n other than 1")
        if not all(isinstance(b, (bytes, bytearray, memoryview)) for b in blobs):
            raise BitProofError("the bit proofs' commitments, challenges and responses must be bytes")
        width, tw = _width(n), _response_width(n)
        expected = (2 * count * width, count * _CHALLENGE_BYTES, 2 * count * tw)
        if tuple(len(b) for b in blobs) != expected:
            raise BitProofError(
                f"bit proofs for {count} ciphertexts need {expected[0]}, {expected[1]} and {expected[2]} bytes "
                f"of commitments, challenges and responses; got {[len(b) for b in blobs]}"
            )
        try:
            commitments = ciphertexts_from_bytes(blobs[0], width, int(n * n))
        except PaillierError as exc:
            raise BitProofError(f"a bit proof commitment is not in (0, n^2): {exc}") from None
        view, tv = memoryview(blobs[1]), memoryview(blobs[2])
        challenges = [
            int.from_bytes(view[i : i + _CHALLENGE_BYTES], "big")
            for i in range(0, len(view), _CHALLENGE_BYTES)
        ]
        responses = [int.from_bytes(tv[i : i + tw], "big") for i in range(0, len(tv), tw)]
        limit = _response_bits(n)
        if any(t.bit_length() > limit for t in responses):
            raise BitProofError(f"a bit proof response is longer than {limit} bits")
        return cls(base, commitments, challenges, responses)


def _transcript(n: int, base: int, context: bytes) -> Any:
    """The hash state every proof of one vector starts from: domain, context, the key's n and the base."""
    digest = hashlib.sha256(_DOMAIN)
    for part in (context, n.to_bytes((n.bit_length() + 7) // 8, "big"), base.to_bytes(_width(mpz(n)), "big")):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest


def _challenge(state: Any, index: int, width: int, c: mpz, a0: mpz, a1: mpz) -> int:
    digest = state.copy()
    digest.update(index.to_bytes(8, "big"))
    for value in (c, a0, a1):
        digest.update(int(value).to_bytes(width, "big"))
    return int.from_bytes(digest.digest()[:_CHALLENGE_BYTES], "big")


def _prove_chunk(
    p: int, q: int, base: int, context: bytes, start: int, bits: list[int]
) -> tuple[bytes, bytes, list[int], list[int]]:
    """Ciphertexts and proofs of `bits` (rows start, start + 1, ...): runs in-process or in a worker."""
    params = crt_params(p, q)
    n, nsq, psq, qsq = params.n, params.nsq, params.psq, params.qsq
    hs = gmpy2.powmod(base, n, nsq)
    pm1, qm1 = params.p - 1, params.q - 1
    r_bits, b_bits = _randomness_bits(n), _randomness_bits(n) + CHALLENGE_BITS + SLACK_BITS
    table_bits = min(b_bits, int(pm1.bit_length()), int(qm1.bit_length()))
    tp = fixed_base_table(hs % psq, psq, table_bits)
    tq = fixed_base_table(hs % qsq, qsq, table_bits)
    nbytes = tp.exponent_bytes
    combine = params.combine

    def power(exponent: int) -> mpz:
        """hs^exponent mod n^2 (hs has order dividing p-1 mod p^2 and q-1 mod q^2)."""
        return combine(
            tp.power(int(exponent % pm1).to_bytes(nbytes, "little")),
            tq.power(int(exponent % qm1).to_bytes(nbytes, "little")),
        )

    state, width = _transcript(int(n), base, context), _width(n)
    randbits = secrets.randbits
    cts: list[mpz] = []
    commitments: list[mpz] = []
    challenges: list[int] = []
    responses: list[int] = []
    for offset, m in enumerate(bits):
        a, b_true, b_fake, e_fake = (
            randbits(r_bits),
            randbits(b_bits),
            randbits(b_bits),
            randbits(CHALLENGE_BITS),
        )
        c = (1 + m * n) * power(a) % nsq
        a_true = power(b_true)
        # The other branch, simulated: hs^t = A (c / g^f)^e with t = b + a e holds for A = hs^b g^((f - m) e).
        a_fake = power(b_fake) * (1 + (1 - 2 * m) * e_fake * n) % nsq
        pair = (a_true, a_fake) if m == 0 else (a_fake, a_true)
        e = _challenge(state, start + offset, width, c, *pair)
        e_true = (e - e_fake) % _CHALLENGE_MOD
        t_true, t_fake = b_true + a * e_true, b_fake + a * e_fake
        cts.append(c)
        commitments.extend(pair)
        challenges.append(e_true if m == 0 else e_fake)
        responses.extend((t_true, t_fake) if m == 0 else (t_fake, t_true))
    return ciphertexts_to_bytes(cts, width), ciphertexts_to_bytes(commitments, width), challenges, responses


def encrypt_bits(
    private: PrivateKey,
    bits: Sequence[int] | np.ndarray[Any, Any],
    context: bytes,
    *,
    workers: int | None = None,
) -> tuple[EncryptedVector, BitProofs]:
    """Encrypt 0/1 values under our key, with a proof per ciphertext that it encrypts 0 or 1.

    `context` names where the proofs are used (e.g. project, job and step): a verifier with another context
    rejects them, so proofs cannot be replayed into another job.
    """
    values = [int(v) for v in np.asarray(bits).reshape(-1).tolist()]
    if any(v not in (0, 1) for v in values):
        raise BitProofError("only 0 and 1 can be proved: the values to encrypt must all be 0 or 1")
    public = private.public
    n = public.n
    while True:
        base = secrets.randbelow(int(n) - 3) + 2
        if gmpy2.gcd(base, n) == 1:
            break
    p, q = int(private.p), int(private.q)
    parts = parallel.plan(len(values), _UNIT_COST, workers, balance=2)
    bounds = [(len(values) * i // parts, len(values) * (i + 1) // parts) for i in range(parts)]
    calls = [(p, q, base, context, lo, values[lo:hi]) for lo, hi in bounds]
    chunks = (
        [_prove_chunk(*call) for call in calls] if parts == 1 else parallel._run(_prove_chunk, calls, workers)
    )
    width = _width(n)
    cts = ciphertexts_from_bytes(b"".join(chunk[0] for chunk in chunks), width)
    commitments = ciphertexts_from_bytes(b"".join(chunk[1] for chunk in chunks), width)
    challenges = [e for chunk in chunks for e in chunk[2]]
    responses = [t for chunk in chunks for t in chunk[3]]
    vector = EncryptedVector.from_ciphertexts(public, cts, frac_bits=0, bound=1)
    return vector, BitProofs(base, commitments, challenges, responses)


def _check_chunk(
    n: int,
    base: int,
    context: bytes,
    start: int,
    data: bytes,
    proofs: bytes,
    challenges: list[int],
    responses: list[int],
    weights: list[int],
) -> tuple[int, int, int, int]:
    """One chunk's share of the batch equation: (prod A^w * prod c^(w e), sum w t, sum w1 e1, prod c A mod n)."""
    n_ = mpz(n)
    nsq = n_ * n_
    width = _width(n_)
    cts = ciphertexts_from_bytes(data, width)
    commitments = ciphertexts_from_bytes(proofs, width)
    state = _transcript(n, base, context)
    exponents_c: list[int] = []
    total_t = total_e1 = 0
    units = mpz(1)
    for i, c in enumerate(cts):
        a0, a1 = commitments[2 * i], commitments[2 * i + 1]
        e = _challenge(state, start + i, width, c, a0, a1)
        e0 = challenges[i]
        e1 = (e - e0) % _CHALLENGE_MOD
        w0, w1 = weights[2 * i], weights[2 * i + 1]
        exponents_c.append(w0 * e0 + w1 * e1)
        total_t += w0 * responses[2 * i] + w1 * responses[2 * i + 1]
        total_e1 += w1 * e1
        units = units * (c % n_) % n_ * (a0 % n_) % n_ * (a1 % n_) % n_
    product = multiexp(commitments, np.asarray(weights, dtype=np.int64), nsq)
    product = product * multiexp(cts, exponents_c, nsq) % nsq
    return int(product), total_t, total_e1, int(units)


def verify_bits(
    public: PublicKey,
    vector: EncryptedVector,
    proofs: BitProofs,
    context: bytes,
    *,
    workers: int | None = None,
) -> None:
    """Check that every ciphertext of `vector` encrypts 0 or 1 (all proofs in one batch); raise if not.

    The weights are drawn here, from `secrets`, after the proofs were received: the prover cannot adapt.
    """
    count = len(vector)
    if vector.public.n != public.n:
        raise BitProofError("the ciphertexts and the key of the bit proofs differ")
    if len(proofs) != count or len(proofs.commitments) != 2 * count or len(proofs.responses) != 2 * count:
        raise BitProofError(
            f"{len(proofs)} bit proofs for {count} ciphertexts: one proof per ciphertext is needed"
        )
    if count == 0:
        return
    if any(not 0 <= e < _CHALLENGE_MOD for e in proofs.challenges):
        raise BitProofError(f"a bit proof challenge is not a {CHALLENGE_BITS}-bit value")
    n, nsq = public.n, public.nsq
    weights = [secrets.randbits(WEIGHT_BITS) for _ in range(2 * count)]
    width = _width(n)
    data = ciphertexts_to_bytes(vector._ct, width)
    commitments = ciphertexts_to_bytes(proofs.commitments, width)
    parts = parallel.plan(count, _UNIT_COST / 3, workers, balance=2)
    bounds = [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]
    calls = [
        (
            int(n),
            proofs.base,
            context,
            lo,
            data[lo * width : hi * width],
            commitments[2 * lo * width : 2 * hi * width],
            proofs.challenges[lo:hi],
            proofs.responses[2 * lo : 2 * hi],
            weights[2 * lo : 2 * hi],
        )
        for lo, hi in bounds
    ]
    shares = (
        [_check_chunk(*call) for call in calls] if parts == 1 else parallel._run(_check_chunk, calls, workers)
    )
    right, total_t, total_e1, units = mpz(1), 0, 0, mpz(1)
    for product, t, e1, unit in shares:
        right = right * product % nsq
        total_t += t
        total_e1 += e1
        units = units * unit % n
    if gmpy2.gcd(units, n) != 1:
        raise BitProofError("a ciphertext or bit proof commitment shares a factor with n: refused")
    right = right * ((1 - total_e1 * n) % nsq) % nsq
    left = gmpy2.powmod(gmpy2.powmod(proofs.base, n, nsq), total_t, nsq)
    if left != right:
        raise BitProofError(
            f"the proofs that the {count} ciphertexts encrypt 0 or 1 do not verify: at least one ciphertext "
            "encrypts something else (or its proof was altered); nothing was computed from them"
        )
