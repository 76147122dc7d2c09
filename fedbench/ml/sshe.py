"""SSHE logistic regression: Paillier combined with additive secret sharing of the weights (Chen et al., KDD
2021), for two parties and no third. See docs/protocols/hetero_lr.md for the message flow and what each party
sees.

Every weight (the guest's and the host's) is split into two shares in the ring Z_2^128, one per party; each
party has its own Paillier key. Per mini-batch:

1. each party encrypts its share of the *peer's* weights under its own key and sends it;
2. each party computes [[X_own w_own,peer's share + mask]] under the peer's key, packed several rows per
   ciphertext (`he_ops.packed_matvec`), and sends it; the peer decrypts it, so both hold shares of
   z = X_g w_g + X_h w_h (the guest adds the constant of its labels to its share, giving shares of 4 times the
   residual of the first-order Taylor expansion of the sigmoid: e = z + 2 - 4y);
3. each party encrypts its share of e under its own key; the peer computes X^T[[e]] plus a mask, which the
   key owner decrypts: shares of each party's gradient;
4. each party updates its shares (SGD with an optional L2 penalty; a truncation per weight).

The guest also gets the batch's Taylor loss through one more masked dot product. At the end each party may
learn its own weights ("own") and never the peer's.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from fedbench.crypto.paillier import EncryptedVector, ObfuscatorPool, PublicKey, generate_keypair
from fedbench.errors import FedbenchError
from fedbench.federation import Context, PeerHandle
from fedbench.ml import he_ops, ring
from fedbench.ml.design import FIXED_BITS, FIXED_FRAC_BITS, fixed_point

__all__ = ["SsheError", "SsheParty", "WEIGHT_FRAC_BITS"]

WEIGHT_FRAC_BITS = 24
"""Fractional bits of the weight shares."""
_RATE_FRAC_BITS = 32
_SCALE = FIXED_FRAC_BITS + WEIGHT_FRAC_BITS
_TRUNCATE = 2 * FIXED_FRAC_BITS + _RATE_FRAC_BITS
_OFFSET = 1 << (FIXED_BITS - 1)


class SsheError(FedbenchError):
    """A message of the SSHE protocol does not fit: wrong sizes, keys or shapes."""

    code = "sshe"


def _ring_message(values: np.ndarray) -> bytes:
    return ring.to_bytes(values)


def _scaled_labels(y_pm: np.ndarray) -> np.ndarray:
    """4 * y (y in -1/+1) at the scale of z: the label term of the Taylor loss."""
    return ring.encode(4.0 * y_pm, _SCALE)


class SsheParty:
    """One party's side of SSHE-LR: its key, its fixed-point features and its shares of both weight vectors.

    `index` is 0 on the guest and 1 on the host (the truncation rule differs). `x` holds the standardised
    features (the guest's with its intercept column last).
    """

    def __init__(
        self,
        ctx: Context,
        peer: PeerHandle,
        index: int,
        x: np.ndarray,
        key_bits: int,
        intercept: bool,
        batch_rows: int,
    ):
        self.ctx = ctx
        self.peer = peer
        self.index = index
        self.public, self.private = generate_keypair(bits=key_bits)
        peer.send(
            "sshe.key",
            {"public_key": self.public.to_dict(), "width": int(x.shape[1]), "intercept": intercept},
        )
        message = peer.recv("sshe.key")
        if not isinstance(message, dict) or set(message) != {"public_key", "width", "intercept"}:
            raise SsheError("the peer's key message is malformed")
        self.peer_public = PublicKey.from_dict(message["public_key"])
        if self.peer_public.n_bits != self.public.n_bits:
            raise SsheError(f"the peer's key has {self.peer_public.n_bits} bits, ours {self.public.n_bits}")
        self.width = int(x.shape[1])
        self.peer_width = int(message["width"])
        self.peer_intercept = bool(message["intercept"])
        self.intercept = intercept
        self.unsigned = fixed_point(x)
        self.signed = self.unsigned - _OFFSET
        self.own_share = ring.reduce(np.zeros(self.width, dtype=np.int64))
        self.peer_share = ring.reduce(np.zeros(self.peer_width, dtype=np.int64))
        value_bits = ring.BITS + FIXED_BITS + max(1, self.width).bit_length()
        self.mask_bits = value_bits + he_ops.SLOT_MARGIN_BITS
        self.slot_bits = self.mask_bits + 1
        self.peer_slot_bits = (
            ring.BITS + FIXED_BITS + max(1, self.peer_width).bit_length() + he_ops.SLOT_MARGIN_BITS + 1
        )
        # Obfuscators for our residual shares (our key) and our packed products (the peer's key), made in the
        # background while we wait for the peer; each is taken once.
        packs = -(-batch_rows // he_ops.slots_per_ciphertext(self.peer_public, self.slot_bits))
        self.share_pool = ObfuscatorPool(self.private, size=batch_rows)
        self.pack_pool = ObfuscatorPool(self.peer_public, size=packs)

    def share_weights(self, ctx: Context, weights: np.ndarray) -> None:
        """Split our starting weights: a uniform random share goes to the peer, we keep the difference."""
        encoded = ring.encode(weights, WEIGHT_FRAC_BITS)
        theirs = ring.random_ints(self.width)
        ctx.peer(self._peer_role(ctx)).send("sshe.init", _ring_message(theirs))
        self.own_share = ring.reduce(encoded - theirs)
        received = ctx.peer(self._peer_role(ctx)).recv("sshe.init")
        try:
            self.peer_share = ring.from_bytes(received, self.peer_width)
        except ValueError as exc:
            raise SsheError(f"the peer's weight share is malformed: {exc}") from None

    def _peer_role(self, ctx: Context) -> str:
        return "host" if self.index == 0 else "guest"

    def step(
        self,
        ctx: Context,
        rows: np.ndarray,
        lr: float,
        alpha: float,
        labels: np.ndarray | None = None,
    ) -> float | None:
        """One mini-batch over `rows`: shares of z, of the residual, of the gradients; update. Guest: the loss."""
        peer = ctx.peer(self._peer_role(ctx))
        count = len(rows)
        x_signed = self.signed[rows]
        slots = he_ops.slots_per_ciphertext(self.peer_public, self.slot_bits)
        packs = -(-count // slots)
        pack_obfuscators = self.pack_pool.take(packs)
        peer.send("sshe.w", self.public.encrypt_encoded([int(v) for v in self.peer_share], 0).to_dict())

        their_weights = self._vector(self.peer_public, peer.recv("sshe.w"), self.width, "encrypted weights")
        masks = ring.random_ints(count, self.mask_bits)
        packed = he_ops.packed_matvec(
            self.peer_public,
            their_weights,
            self.unsigned[rows],
            FIXED_BITS,
            self.slot_bits,
            list(masks),
            pack_obfuscators,
        )
        peer.send("sshe.xw", EncryptedVector.from_ciphertexts(self.peer_public, packed).to_dict())
        share_obfuscators = self.share_pool.take(count)

        reply = peer.recv("sshe.xw")
        try:
            vector = EncryptedVector.from_dict(self.public, reply)
            values = he_ops.unpack(self.private, vector.ciphertexts, count, self.peer_slot_bits)
        except (ValueError, TypeError) as exc:
            raise SsheError(f"the peer's packed scores are malformed: {exc}") from None
        offset_term = _OFFSET * int(sum(int(v) for v in self.peer_share))
        from_peer = ring.reduce(np.array(values, dtype=object) - offset_term)
        local = x_signed.astype(object) @ self.own_share
        z = ring.reduce(local - masks + from_peer)
        e = z
        if labels is not None:
            e = ring.reduce(z + ring.encode(2.0 - 4.0 * labels, _SCALE))
        peer.send("sshe.e", he_ops.encrypt_ints(self.public, list(e), share_obfuscators).to_dict())

        their_e = self._vector(self.peer_public, peer.recv("sshe.e"), count, "encrypted residual shares")
        gradient_bits = ring.BITS + FIXED_BITS + max(1, count).bit_length() + 1
        grad_masks = ring.random_ints(self.width, gradient_bits + he_ops.SLOT_MARGIN_BITS)
        cross = he_ops.add_ints(their_e.dot(x_signed), list(grad_masks))
        message: dict[str, Any] = {"gradient": cross.rerandomize().to_dict()}
        loss_mask = 0
        if labels is not None:
            y_pm = 2.0 * labels - 1.0
            coefficient = ring.reduce(2 * z - _scaled_labels(y_pm)).reshape(-1, 1)
            loss_bits = 2 * ring.BITS + max(1, count).bit_length()
            loss_mask = int(ring.random_ints(1, loss_bits + he_ops.SLOT_MARGIN_BITS)[0])
            term = their_e.dot(coefficient)
            message["loss"] = he_ops.add_ints(term, [loss_mask]).rerandomize().to_dict()
        peer.send("sshe.g", message)

        answer = peer.recv("sshe.g")
        if not isinstance(answer, dict) or "gradient" not in answer:
            raise SsheError("the peer's gradient message is malformed")
        peer_gradient = ring.reduce(
            np.array(
                self.private.decrypt_encoded(
                    self._vector(self.public, answer["gradient"], self.peer_width, "gradient")
                ),
                dtype=object,
            )
        )
        own_gradient = ring.reduce(x_signed.T.astype(object) @ e - grad_masks)
        loss: float | None = None
        if labels is None and "loss" in answer:
            masked = int(
                self.private.decrypt_encoded(self._vector(self.public, answer["loss"], 1, "loss"))[0]
            )
            peer.send(
                "sshe.loss", _ring_message(ring.reduce(np.array([masked + int(np.sum(z * z))], dtype=object)))
            )
        elif labels is not None:
            host_part = ring.from_bytes(peer.recv("sshe.loss"), 1)[0]
            local_part = int(np.sum(z * z - _scaled_labels(2.0 * labels - 1.0) * z))
            total = int(
                ring.signed(np.array([(host_part - loss_mask + local_part) % ring.MOD], dtype=object))[0]
            )
            loss = math.log(2.0) + total / (8.0 * 2.0 ** (2 * _SCALE) * count)

        rate = ring.reduce(np.array([round(lr / (4.0 * count) * 2.0**_RATE_FRAC_BITS)], dtype=object))[0]
        self.own_share = self._update(self.own_share, own_gradient, rate, lr, alpha, self.intercept)
        self.peer_share = self._update(self.peer_share, peer_gradient, rate, lr, alpha, self.peer_intercept)
        return loss

    def _update(
        self, share: np.ndarray, gradient: np.ndarray, rate: int, lr: float, alpha: float, intercept: bool
    ) -> np.ndarray:
        keep = np.full(len(share), round((1.0 - lr * alpha) * 2.0**_TRUNCATE), dtype=object)
        if intercept and len(share):
            keep[-1] = 1 << _TRUNCATE
        return ring.truncate(ring.reduce(share * keep - gradient * rate), _TRUNCATE, self.index)

    def _vector(self, public: PublicKey, obj: Any, length: int, what: str) -> EncryptedVector:
        return he_ops.received_vector(public, obj, length, what, SsheError)

    def close(self) -> None:
        """Stop making obfuscators in the background."""
        self.share_pool.close()
        self.pack_pool.close()

    def reveal_own(self, ctx: Context) -> np.ndarray:
        """Swap shares so each party learns its own weights (and only those)."""
        peer = ctx.peer(self._peer_role(ctx))
        peer.send("sshe.reveal", _ring_message(self.peer_share))
        theirs = ring.from_bytes(peer.recv("sshe.reveal"), self.width)
        return ring.decode(ring.reduce(self.own_share + theirs), WEIGHT_FRAC_BITS)

    def fingerprint(self) -> str:
        """A digest of our shares (kept in the model for warm starts; reveals nothing about them)."""
        return hashlib.sha256(ring.to_bytes(self.own_share) + ring.to_bytes(self.peer_share)).hexdigest()[:16]
