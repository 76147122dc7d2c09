"""The secure step of the refine epochs: additive shares of sum_k a_k sin k(t_g + t_h) and sum_k b_k cos k(t_g + t_h)
per row, where the guest knows the angle t_g and the host t_h (of its share of the score, or its partial score).

Both sums are dot products of a vector each party computes alone: the *uploader* of a row has
v = (cos t, sin t, cos 2t, sin 2t, ...) of its angle, the *multiplier* the coefficients that pair with them
(a_k sin k t', a_k cos k t' for the sine sum; b_k cos k t', -b_k sin k t' for the cosine sum). A dot product of
two packed vectors is one slot of the product of two polynomials: the uploader encrypts, under its own key,
V = sum_j V_j x^j (x = 2^s, the values offset to be non-negative), the multiplier raises it to
E = sum_j R_j x^(J-1-j) + sum_j L_j x^(2J-1-j), so slot J-1 of V E is sum_j V_j R_j and slot 2J-1 is
sum_j V_j L_j; it adds a uniform mask to *every* slot (each slot's content is below `bound`, the mask below
2^s - bound, so no slot carries into the next and each is hidden up to 2^-41), rerandomizes with its own
obfuscation base and sends it back; the uploader decrypts and reads the two slots. Its share is the slot
minus the offsets it can remove; the multiplier's share is minus its mask minus the rest. Rows alternate
between the two parties as uploader (the guest the even positions of the batch), so both do the same work.

What each party sees: the peer's ciphertexts under the peer's key, and for its own rows decrypted slots that
are all masked by the peer. A key too small for the 3J - 1 slots of one row splits the vector into chunks of
equal length, each one more upload and exponentiation; their products add up in the same slots.
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
        # a slot of the product sums at most 2 J pairs (the two segments overlap in the middle slots)
        self.bound = (2 * self.values) << value_bits
        self.slot_bits = self.bound.bit_length() + _MASK_MARGIN
        n_bits = min(self.public.n_bits, peer_public.n_bits)
        per_chunk = self.values
        while per_chunk > 1 and (3 * per_chunk - 1) * self.slot_bits > n_bits - 3:
            per_chunk -= 1
        if (3 * per_chunk - 1) * self.slot_bits > n_bits - 3:
            raise ValueError(f"a {n_bits}-bit key cannot hold one packed value of {self.slot_bits} bits")
        self.chunks = -(-self.values // per_chunk)
        self.per_chunk = -(-self.values // self.chunks)
        self.slots = 3 * self.per_chunk - 1
        uploads = -(-batch_rows // 2) * self.chunks
        self.own_pool = ObfuscatorPool(private, size=max(uploads, 1))
        self.peer_pool = ObfuscatorPool(peer_public, size=max(-(-batch_rows // 2), 1))

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

    def run(self, peer: PeerHandle, angles: np.ndarray) -> tuple[list[int], list[int]]:
        """Our shares (integers at scale 2^(2 FRAC_BITS)) of the sine and cosine sums of each row of the batch."""
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

        # 2. raise the peer's uploads to our coefficients, mask every slot, rerandomize, send back
        uploads = he_ops.received_vector(
            self.peer_public, peer.recv("fx.up"), len(theirs) * self.chunks, "refine uploads", ExchangeError
        )
        sine_shares = [0] * rows
        cosine_shares = [0] * rows
        results: list[mpz] = []
        if theirs:
            sine, cosine = self._coefficients(angles[theirs])
            nsq, n = self.peer_public.nsq, self.peer_public.n
            exponents: list[int] = []
            for r, row in enumerate(theirs):
                qs, qc = _quantise(sine[r]), _quantise(cosine[r])
                for c in range(self.chunks):
                    exponent = 0
                    for j, (a, b) in enumerate(zip(self._chunk(qs, c), self._chunk(qc, c), strict=True)):
                        if c * self.per_chunk + j < self.values:
                            exponent |= (a + offset_c) << (shift * (self.per_chunk - 1 - j))
                            exponent |= (b + offset_c) << (shift * (2 * self.per_chunk - 1 - j))
                    exponents.append(exponent)
                sine_shares[row] = -offset_v * sum(qs)
                cosine_shares[row] = -offset_v * sum(qc)
            powers = parallel.powers_of(uploads._ct, exponents, nsq)
            masks_bound = (1 << shift) - self.bound
            obfs = self.peer_pool.take(len(theirs))
            for r, row in enumerate(theirs):
                acc = obfs[r]
                for c in range(self.chunks):
                    acc = acc * powers[r * self.chunks + c] % nsq
                masks = [secrets.randbelow(masks_bound) for _ in range(self.slots)]
                packed_mask = sum(m << (shift * t) for t, m in enumerate(masks))
                results.append(acc * ((packed_mask % n) * n + 1) % nsq)
                sine_shares[row] -= masks[self.per_chunk - 1]
                cosine_shares[row] -= masks[2 * self.per_chunk - 1]
        peer.send("fx.res", EncryptedVector.from_ciphertexts(self.peer_public, results).to_dict())

        # 3. decrypt what the peer made of our uploads: our shares are the two slots, less the offsets we know
        answer = he_ops.received_vector(
            self.public, peer.recv("fx.res"), len(mine), "refine results", ExchangeError
        )
        if mine:
            decrypted = self.private.decrypt_encoded(answer)
            top = 1 << (shift * self.slots)
            mask = (1 << shift) - 1
            for r, row in enumerate(mine):
                value = int(decrypted[r])
                if not 0 <= value < top:
                    raise ExchangeError(
                        "a refine result is outside its packing: the peer's message is malformed"
                    )
                total_v = sum(quantised[r])
                correction = offset_c * total_v + self.values * offset_v * offset_c
                sine_shares[row] = ((value >> (shift * (self.per_chunk - 1))) & mask) - correction
                cosine_shares[row] = ((value >> (shift * (2 * self.per_chunk - 1))) & mask) - correction
        return sine_shares, cosine_shares
