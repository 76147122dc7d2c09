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

With the `fourier` approximation (`approximation.py`) the residual of warm-up batches is the quadratic one of
curvature C, refine batches first run the exchange (`fourier_exchange`) on the angles of the z shares for
shares of sigma_F(z), and step 4 is a Newton step: each party maps the peer's encrypted share of its weights
and its encrypted gradient part through its own matrices W and A, so the peer decrypts its new share directly.
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
from fedbench.ml.approximation import (
    CURVATURE,
    HARMONICS,
    LOSS_CONSTANT,
    OMEGAS,
    PERIOD_BITS,
    PERIOD_MULTIPLIER,
    newton_inverse,
)
from fedbench.ml.design import FIXED_BITS, FIXED_FRAC_BITS, fixed_point
from fedbench.ml.fourier_exchange import FRAC_BITS, FourierExchange, angles_of_shares

__all__ = ["SsheError", "SsheParty", "WEIGHT_FRAC_BITS"]

WEIGHT_FRAC_BITS = 24
"""Fractional bits of the weight shares."""
_RATE_FRAC_BITS = 32
_SCALE = FIXED_FRAC_BITS + WEIGHT_FRAC_BITS
_TRUNCATE = 2 * FIXED_FRAC_BITS + _RATE_FRAC_BITS
_OFFSET = 1 << (FIXED_BITS - 1)
_NEWTON_KEEP_BITS = 64
"""Fractional bits of W = I - lr alpha M^-1 D (times weights at 2^24: 2^88)."""
_NEWTON_RATE_BITS = 32
"""Fractional bits of A = lr C M^-1 / rows (times X^T e at 2^56: 2^88)."""
_NEWTON_TRUNCATE = _NEWTON_KEEP_BITS


def _fixed(matrix: np.ndarray, bits: int) -> np.ndarray:
    """A real matrix as an object array of Python ints round(m 2^bits)."""
    out = np.empty(matrix.shape, dtype=object)
    out.ravel()[:] = [int(v) for v in np.rint(np.ldexp(matrix, bits)).ravel().tolist()]
    return out


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
        approximation: str = "taylor",
        alpha: float = 0.0,
    ):
        self.ctx = ctx
        self.approximation = approximation
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
        self.batch_rows = batch_rows
        self.minv: np.ndarray | None = None
        if approximation == "fourier":
            self.minv = newton_inverse(x, alpha, self.width - 1 if intercept else None)
        self.exchange: FourierExchange | None = None
        self.label_cache: dict[bytes, EncryptedVector] = {}
        self.sums: tuple[np.ndarray, np.ndarray] | None = None
        self.iterates = 0

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
        refining: bool = False,
    ) -> float | None:
        """One mini-batch over `rows`: shares of z, of the residual, of the gradients; update. Guest: the loss."""
        if self.approximation == "fourier":
            return self._step_fourier(ctx, rows, lr, alpha, labels, refining)
        return self._step_taylor(ctx, rows, lr, alpha, labels)

    def _step_taylor(
        self, ctx: Context, rows: np.ndarray, lr: float, alpha: float, labels: np.ndarray | None
    ) -> float | None:
        """A batch of the taylor approximation: the first-order Taylor residual, a plain SGD update."""
        peer = ctx.peer(self._peer_role(ctx))
        count = len(rows)
        x_signed = self.signed[rows]
        z, _ = self._shares_of_z(peer, rows)
        share_obfuscators = self.share_pool.take(count)
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

    def _shares_of_z(self, peer: PeerHandle, rows: np.ndarray) -> tuple[np.ndarray, EncryptedVector]:
        """Steps 1-2: our share of z = X_g w_g + X_h w_h for `rows`, and the peer's encrypted share of our weights."""
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

        reply = peer.recv("sshe.xw")
        try:
            vector = EncryptedVector.from_dict(self.public, reply)
            values = he_ops.unpack(self.private, vector.ciphertexts, count, self.peer_slot_bits)
        except (ValueError, TypeError) as exc:
            raise SsheError(f"the peer's packed scores are malformed: {exc}") from None
        offset_term = _OFFSET * int(sum(int(v) for v in self.peer_share))
        from_peer = ring.reduce(np.array(values, dtype=object) - offset_term)
        local = x_signed.astype(object) @ self.own_share
        return ring.reduce(local - masks + from_peer), their_weights

    def begin_epoch(self) -> None:
        """Start summing this epoch's iterates afresh (the model is the mean of the last epoch's)."""
        self.sums = None
        self.iterates = 0

    def _exchange(self) -> FourierExchange:
        if self.exchange is None:
            self.exchange = FourierExchange(
                self.private,
                self.peer_public,
                self.index,
                [c / CURVATURE for c in HARMONICS],
                [c / w for c, w in zip(HARMONICS, OMEGAS, strict=True)],
                self.batch_rows,
            )
        return self.exchange

    def _newton(self, lr: float, alpha: float, count: int) -> tuple[np.ndarray, np.ndarray]:
        """W = I - lr alpha M^-1 D at 2^64 and A = lr C M^-1 / count at 2^32, as object arrays of ints."""
        assert self.minv is not None
        penalised = np.ones(self.width)
        if self.intercept and self.width:
            penalised[-1] = 0.0
        w = np.eye(self.width) - lr * alpha * self.minv * penalised[None, :]
        a = lr * CURVATURE / max(count, 1) * self.minv
        return _fixed(w, _NEWTON_KEEP_BITS), _fixed(a, _NEWTON_RATE_BITS)

    def _step_fourier(
        self,
        ctx: Context,
        rows: np.ndarray,
        lr: float,
        alpha: float,
        labels: np.ndarray | None,
        refining: bool,
    ) -> float | None:
        """A batch of the fourier approximation: the warm-up's quadratic residual (refine: sigma_F's, through
        the exchange), a Newton step on the shares; the guest's loss of the same approximation."""
        peer = ctx.peer(self._peer_role(ctx))
        count = len(rows)
        x_signed = self.signed[rows]
        z, their_weights = self._shares_of_z(peer, rows)
        guest = labels is not None
        cosine_sum = 0
        if refining:
            angles = angles_of_shares(z, _SCALE, PERIOD_MULTIPLIER, PERIOD_BITS)
            sines, cosine_sum = self._exchange().run(peer, angles)
            e = ring.reduce(np.array(sines, dtype=object) * (1 << (_SCALE - 2 * FRAC_BITS)))
            key = rows.tobytes()
            if guest:
                assert labels is not None
                fresh = key not in self.label_cache
                if fresh:
                    signs = [1 - 2 * int(v) for v in labels]
                    self.label_cache[key] = self.private.encrypt_encoded(signs, 0)
                peer.send("sshe.y", self.label_cache[key].to_dict() if fresh else None)
            else:
                sent = peer.recv("sshe.y")
                if sent is not None:
                    self.label_cache[key] = self._vector(self.peer_public, sent, count, "encrypted labels")
                if key not in self.label_cache:
                    raise SsheError("the guest did not send the labels of this batch for its refine loss")
                # our part of the batch's loss: sum (1 - 2y) z_h - 2^13 sum cos-share, under the guest's key
                linear = self.label_cache[key].dot(z.reshape(-1, 1))
                ours = -(cosine_sum << (_SCALE - 2 * FRAC_BITS + 1))
                peer.send("sshe.loss", he_ops.add_ints(linear, [ours]).rerandomize().to_dict())
        else:
            e = z
        if guest:
            assert labels is not None
            e = ring.reduce(e + ring.encode((0.5 - labels) / CURVATURE, _SCALE))
        share_obfuscators = self.share_pool.take(count)
        peer.send("sshe.e", he_ops.encrypt_ints(self.public, list(e), share_obfuscators).to_dict())

        their_e = self._vector(self.peer_public, peer.recv("sshe.e"), count, "encrypted residual shares")
        keep, rate = self._newton(lr, alpha, count)
        # the peer's new share of our weights, W b - A X^T e_peer + mask, made under its key
        mapped = their_weights.dot(keep.T) + their_e.dot(x_signed).dot(-rate.T)
        value_bits = (
            2 * ring.BITS + FIXED_BITS + max(1, count).bit_length() + 2 * self.width.bit_length() + 72
        )
        weight_masks = ring.random_ints(self.width, value_bits + he_ops.SLOT_MARGIN_BITS)
        message: dict[str, Any] = {
            "weights": he_ops.add_ints(mapped, list(weight_masks)).rerandomize().to_dict()
        }
        loss_mask = 0
        if guest and not refining:
            loss_bits = 2 * ring.BITS + max(1, count).bit_length()
            loss_mask = int(ring.random_ints(1, loss_bits + he_ops.SLOT_MARGIN_BITS)[0])
            term = their_e.dot(ring.reduce(2 * e).reshape(-1, 1))
            message["loss"] = he_ops.add_ints(term, [loss_mask]).rerandomize().to_dict()
        peer.send("sshe.g", message)

        answer = peer.recv("sshe.g")
        if not isinstance(answer, dict) or "weights" not in answer:
            raise SsheError("the peer's weight message is malformed")
        decrypted = self.private.decrypt_encoded(
            self._vector(self.public, answer["weights"], self.peer_width, "new weight shares")
        )
        self.peer_share = ring.truncate(
            ring.reduce(np.array(decrypted, dtype=object)), _NEWTON_TRUNCATE, self.index
        )
        own_gradient = x_signed.T.astype(object) @ e
        own = keep @ self.own_share - rate @ own_gradient - weight_masks
        self.own_share = ring.truncate(ring.reduce(own), _NEWTON_TRUNCATE, self.index)
        if self.sums is None:
            self.sums = (self.own_share.copy(), self.peer_share.copy())
        else:
            self.sums = (
                ring.reduce(self.sums[0] + self.own_share),
                ring.reduce(self.sums[1] + self.peer_share),
            )
        self.iterates += 1

        if not guest:
            if not refining and "loss" in answer:
                masked = int(
                    self.private.decrypt_encoded(self._vector(self.public, answer["loss"], 1, "loss"))[0]
                )
                peer.send(
                    "sshe.loss",
                    _ring_message(ring.reduce(np.array([masked + int(np.sum(e * e))], dtype=object))),
                )
            return None
        assert labels is not None
        if refining:
            host_part = int(
                self.private.decrypt_encoded(
                    self._vector(self.public, peer.recv("sshe.loss"), 1, "refine loss")
                )[0]
            )
            label_signs = (1 - 2 * labels.astype(np.int64)).astype(object)
            total = host_part + int(np.dot(label_signs, z)) - (cosine_sum << (_SCALE - 2 * FRAC_BITS + 1))
            value = int(ring.signed(np.array([total % ring.MOD], dtype=object))[0])
            return LOSS_CONSTANT + value / 2.0 ** (_SCALE + 1) / count
        host_part = ring.from_bytes(peer.recv("sshe.loss"), 1)[0]
        total = int(
            ring.signed(np.array([(host_part - loss_mask + int(np.sum(e * e))) % ring.MOD], dtype=object))[0]
        )
        targets = (0.5 - labels) / CURVATURE
        return (
            math.log(2.0)
            + 0.5 * CURVATURE * (total / 2.0 ** (2 * _SCALE) - float(np.sum(targets**2))) / count
        )

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
        if self.exchange is not None:
            self.exchange.close()

    def reveal_own(self, ctx: Context) -> np.ndarray:
        """Swap shares so each party learns its own weights (and only those). With the fourier approximation
        the weights are the mean of the last epoch's iterates: we swap the sums of our shares and divide."""
        peer = ctx.peer(self._peer_role(ctx))
        own, held, count = self.own_share, self.peer_share, 1
        if self.approximation == "fourier" and self.sums is not None:
            own, held, count = self.sums[0], self.sums[1], self.iterates
        peer.send("sshe.reveal", _ring_message(held))
        try:
            theirs = ring.from_bytes(peer.recv("sshe.reveal"), self.width)
        except ValueError as exc:
            raise SsheError(f"the peer's revealed share is malformed: {exc}") from None
        return ring.decode(ring.reduce(own + theirs), WEIGHT_FRAC_BITS) / count

    def fingerprint(self) -> str:
        """A digest of our shares (kept in the model for warm starts; reveals nothing about them)."""
        return hashlib.sha256(ring.to_bytes(self.own_share) + ring.to_bytes(self.peer_share)).hexdigest()[:16]
