"""The secure step of the refine epochs: additive shares of sum_k a_k sin k(t_g + t_h) per row and of
sum_k b_k cos k(t_g + t_h) over the batch, where the guest knows the angle t_g and the host t_h of each row (of
its share of the score, or of its partial score).

Both are dot products of vectors each party computes alone: the *uploader* of a row has
v = (cos t, sin t, cos 2t, sin 2t, ...) of its angle, the *multiplier* the coefficients that pair with them
(a_k sin k t', a_k cos k t' for the sine sum; b_k cos k t', -b_k sin k t' for the cosine sum). A dot product of
two packed vectors is one slot of the product of two polynomials: the uploader encrypts, under its own key,
V = sum_j V_j x^j (x = 2^s, the values offset to be non-negative), the multiplier raises it to
E = sum_j R_j x^(J-1-j), so slot J-1 of V E is sum_j V_j R_j. It adds a uniform mask to *every* slot (each
slot's content is below `bound`, the mask below 2^s - bound, so no slot carries into the next and each is hidden
up to 2^-41), rerandomizes with its own obfuscation base and sends it back; the uploader decrypts and reads
the slot. Its share is the slot minus the offsets it can remove; the multiplier's share is minus its mask minus
the rest. The cosine sum is only needed over the batch (for the loss), so the multiplier makes it once, as the
product over the rows of V^L (one multi-exponentiation, far cheaper than a power per row), masked and
rerandomized the same way; the slots are wide enough for the sum of a batch. Rows alternate between the two
parties as uploader (the guest the even positions of the batch), so both do the same work.

What each party sees: the peer's ciphertexts under the peer's key, and for its own rows (and for their sum)
decrypted slots that are all masked by the peer. A key too small for the 2J - 1 slots of one product splits
the vector into chunks of equal length, each one more upload and exponentiation; their products add up in the
same slots.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import numpy as np
from gmpy2 import mpz

from fedbench.crypto.paillier import EncryptedVector, ObfuscatorPool, PrivateKey, PublicKey, parallel
from fedbench.errors import FedbenchError
from fedbench.federation import PeerHandle
from fedbench.ml import he_ops, ring

__all__ = ["FRAC_BITS", "ExchangeError", "FourierExchange", "angles_of_reals", "angles_of_shares"]

FRAC_BITS = 14
"""Fractional bits of the sines and cosines (and of the coefficients times them): the shares come at 2^28."""
_COEFFICIENT_BITS = 3
"""|a_k|, |b_k| < 2^_COEFFICIENT_BITS - 1 after quantisation (the protocols' largest is c_1 / C = 3.85)."""
_MASK_MARGIN = he_ops.SLOT_MARGIN_BITS + 1


class ExchangeError(FedbenchError):
    """A message of the refine epochs' exchange does not fit: wrong sizes, keys or packing."""

    code = "sshe"


def angles_of_shares(shares: np.ndarray, scale_bits: int, multiplier: int, period_bits: int) -> np.ndarray:
    """The angle 2 pi ((multiplier * share) mod 2^(scale + period)) / 2^(scale + period) of each ring share.

    The two parties' angles add up (mod 2 pi) to 2 pi z / P for the shared z, P = 2^period / multiplier, exactly.
    """
    modulus = 1 << (scale_bits + period_bits)
    reduced = [int(v) * multiplier % modulus for v in ring.reduce(shares).tolist()]
    return np.array(reduced, dtype=np.float64) * (2.0 * math.pi / modulus)


def angles_of_reals(values: np.ndarray, period: float) -> np.ndarray:
    """The angle 2 pi u / P of each real (a party's partial score in the coordinated protocol)."""
    return np.mod(np.asarray(values, dtype=np.float64), period) * (2.0 * math.pi / period)


def _quantise(values: np.ndarray) -> list[int]:
    return [int(v) for v in np.rint(np.ldexp(values, FRAC_BITS)).astype(np.int64).tolist()]


class FourierExchange:
    """One party's side of the exchange for a run of batches: its key, the peer's key and the packing layout.

    `index` 0 is the guest (uploader of the even batch positions), 1 the host. `sine` (a_k) and `cosine` (b_k)
    are the coefficients this party multiplies with when it is the multiplier; both parties pass the same.
    """

    def __init__(
        self,
        private: PrivateKey,
        peer_public: PublicKey,
        index: int,
        sine: Sequence[float],
        cosine: Sequence[float],
        batch_rows: int,
    ) -> None:
        if len(sine) != len(cosine):
            raise ValueError("the sine and cosine coefficients must have the same length")
        if max(abs(v) for v in (*sine, *cosine)) >= 2 ** (_COEFFICIENT_BITS - 1):
            raise ValueError("a coefficient is too large for the packing")
        self.private, self.public, self.peer_public = private, private.public, peer_public
        self.index = index
        self.harmonics = len(sine)
        self.sine = np.asarray(sine, dtype=np.float64)
        self.cosine = np.asarray(cosine, dtype=np.float64)
        self.values = 2 * self.harmonics
        value_bits = (FRAC_BITS + 1) + (FRAC_BITS + _COEFFICIENT_BITS)
        # a slot of one row's product sums at most J pairs; the batch's cosine sum adds up the rows we multiply
        self.bound = self.values << value_bits
        self.sum_bound = self.bound * max(-(-batch_rows // 2), 1)
        self.slot_bits = self.sum_bound.bit_length() + _MASK_MARGIN
        n_bits = min(self.public.n_bits, peer_public.n_bits)
        per_chunk = self.values
        while per_chunk > 1 and (2 * per_chunk - 1) * self.slot_bits > n_bits - 3:
            per_chunk -= 1
        if (2 * per_chunk - 1) * self.slot_bits > n_bits - 3:
            raise ValueError(f"a {n_bits}-bit key cannot hold one packed value of {self.slot_bits} bits")
        self.chunks = -(-self.values // per_chunk)
        self.per_chunk = -(-self.values // self.chunks)
        self.slots = 2 * self.per_chunk - 1
        uploads = -(-batch_rows // 2) * self.chunks
        self.own_pool = ObfuscatorPool(private, size=max(uploads, 1))
        self.peer_pool = ObfuscatorPool(peer_public, size=-(-batch_rows // 2) + 1)

    def close(self) -> None:
        """Stop making obfuscators in the background."""
        self.own_pool.close()
        self.peer_pool.close()

    def _vectors(self, angles: np.ndarray) -> np.ndarray:
        """Rows of (cos t, sin t, cos 2t, sin 2t, ...)."""
        k = np.arange(1, self.harmonics + 1)
        turns = np.outer(angles, k)
        out = np.empty((len(angles), self.values))
        out[:, 0::2] = np.cos(turns)
        out[:, 1::2] = np.sin(turns)
        return out

    def _coefficients(self, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The multiplier's pairings: the sine sum (a_k sin k t', a_k cos k t') and the cosine sum
        (b_k cos k t', -b_k sin k t'), in the order of the uploader's (cos k t, sin k t)."""
        k = np.arange(1, self.harmonics + 1)
        turns = np.outer(angles, k)
        sine = np.empty((len(angles), self.values))
        sine[:, 0::2] = self.sine * np.sin(turns)
        sine[:, 1::2] = self.sine * np.cos(turns)
        cosine = np.empty((len(angles), self.values))
        cosine[:, 0::2] = self.cosine * np.cos(turns)
        cosine[:, 1::2] = -self.cosine * np.sin(turns)
        return sine, cosine

    def _chunk(self, values: list[int], c: int) -> list[int]:
        part = values[c * self.per_chunk : (c + 1) * self.per_chunk]
        return part + [0] * (self.per_chunk - len(part))

    def _exponent(self, coefficients: list[int], c: int, offset: int) -> int:
        """The multiplier's packed, reversed coefficients of chunk `c`."""
        exponent = 0
        for j, a in enumerate(self._chunk(coefficients, c)):
            if c * self.per_chunk + j < self.values:
                exponent |= (a + offset) << (self.slot_bits * (self.per_chunk - 1 - j))
        return exponent

    def _masked(self, ciphertext: mpz, bound: int) -> tuple[mpz, int]:
        """The ciphertext with a uniform mask in every slot (each below 2^s - bound), rerandomized with our
        own base; and the mask of the middle slot."""
        nsq, n, shift = self.peer_public.nsq, self.peer_public.n, self.slot_bits
        masks = [secrets.randbelow((1 << shift) - bound) for _ in range(self.slots)]
        packed = sum(m << (shift * t) for t, m in enumerate(masks))
        obfuscator = self.peer_pool.take(1)[0]
        return ciphertext * ((packed % n) * n + 1) % nsq * obfuscator % nsq, masks[self.per_chunk - 1]

    def run(self, peer: PeerHandle, angles: np.ndarray) -> tuple[list[int], int]:
        """Our shares (integers at scale 2^(2 FRAC_BITS)) of the sine sum of each row of the batch and of the
        cosine sum over the batch."""
        rows = len(angles)
        mine = [i for i in range(rows) if i % 2 == self.index]
        theirs = [i for i in range(rows) if i % 2 != self.index]
        offset_v, offset_c = 1 << FRAC_BITS, 1 << (FRAC_BITS + _COEFFICIENT_BITS - 1)
        shift = self.slot_bits

        # 1. upload our rows' packed vectors under our own key
        quantised = [_quantise(v) for v in self._vectors(angles[mine])] if mine else []
        plain: list[int] = []
        for q in quantised:
            for c in range(self.chunks):
                packed = 0
                for j, v in enumerate(self._chunk(q, c)):
                    if c * self.per_chunk + j < self.values:
                        packed |= (v + offset_v) << (shift * j)
                plain.append(packed)
        obfuscators = self.own_pool.take(len(plain))
        peer.send("fx.up", he_ops.encrypt_ints(self.public, plain, obfuscators).to_dict())

        # 2. per peer row, its upload to the power of our sine coefficients; for the batch, the product of the
        # uploads to the powers of our cosine coefficients; every slot masked, rerandomized, sent back
        uploads = he_ops.received_vector(
            self.peer_public, peer.recv("fx.up"), len(theirs) * self.chunks, "refine uploads", ExchangeError
        )
        sine_shares = [0] * rows
        cosine_share = 0
        results: list[mpz] = []
        if theirs:
            sine, cosine = self._coefficients(angles[theirs])
            nsq = self.peer_public.nsq
            quantised_sine = [_quantise(v) for v in sine]
            quantised_cosine = [_quantise(v) for v in cosine]
            exponents = [self._exponent(q, c, offset_c) for q in quantised_sine for c in range(self.chunks)]
            powers = parallel.powers_of(uploads._ct, exponents, nsq)
            for r, row in enumerate(theirs):
                acc = mpz(1)
                for c in range(self.chunks):
                    acc = acc * powers[r * self.chunks + c] % nsq
                masked, mask = self._masked(acc, self.bound)
                results.append(masked)
                sine_shares[row] = -mask - offset_v * sum(quantised_sine[r])
            total = mpz(1)
            for c in range(self.chunks):
                column = np.empty((len(theirs), 1), dtype=object)
                column[:, 0] = [self._exponent(q, c, offset_c) for q in quantised_cosine]
                positive, _ = parallel.dot(uploads._ct[c :: self.chunks], column, nsq)[0]
                total = total * positive % nsq
            masked, mask = self._masked(total, self.sum_bound)
            results.append(masked)
            cosine_share = -mask - offset_v * sum(sum(q) for q in quantised_cosine)
        peer.send("fx.res", EncryptedVector.from_ciphertexts(self.peer_public, results).to_dict())

        # 3. decrypt what the peer made of our uploads: our shares are the middle slots, less the offsets we know
        expected = len(mine) + 1 if mine else 0
        answer = he_ops.received_vector(
            self.public, peer.recv("fx.res"), expected, "refine results", ExchangeError
        )
        if mine:
            decrypted = self.private.decrypt_encoded(answer)
            top = 1 << (shift * self.slots)
            middle = shift * (self.per_chunk - 1)
            for value in decrypted:
                if not 0 <= int(value) < top:
                    raise ExchangeError(
                        "a refine result is outside its packing: the peer's message is malformed"
                    )
            correction = self.values * offset_v * offset_c
            for r, row in enumerate(mine):
                slot = (int(decrypted[r]) >> middle) & ((1 << shift) - 1)
                sine_shares[row] = slot - offset_c * sum(quantised[r]) - correction
            slot = (int(decrypted[-1]) >> middle) & ((1 << shift) - 1)
            cosine_share += slot - offset_c * sum(sum(q) for q in quantised) - len(mine) * correction
        return sine_shares, cosine_share
