"""Coordinated (arbiter) logistic regression, FATE's hetero-LR design: an arbiter holds the Paillier key and
sees only masked gradients and the loss. See docs/protocols/hetero_lr.md for the flow and what each party sees.

Per mini-batch: the host sends [[u_h / 4]] (its partial scores, encrypted under the arbiter's key) and
[[sum(u_h^2) / 8]]; the guest forms [[d]] = [[u_h / 4]] + u_g / 4 + 1/2 - y (the residual under the first-order
Taylor expansion of the sigmoid), rerandomizes it and sends it to the host; each party computes X^T [[d]],
adds a random mask and asks the arbiter to decrypt; the guest also sends the encrypted Taylor loss. Each party
then holds its own plaintext batch gradient (its known leak) and steps its own optimizer.

The host learns X_h^T d for each batch. With a batch no larger than a few times the host's features (over the
epochs) it could solve for the residuals and so the labels: `check_batch_size` refuses such batches.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fedbench.crypto.paillier import EncryptedVector, PrivateKey, PublicKey, generate_keypair
from fedbench.errors import FedbenchError
from fedbench.federation import Context, PeerHandle
from fedbench.ml import he_ops, ring
from fedbench.ml.approximation import LOSS_CONSTANT, PERIOD
from fedbench.ml.design import FIXED_FRAC_BITS, fixed_point
from fedbench.ml.fourier_exchange import FRAC_BITS, FourierExchange, angles_of_reals

__all__ = [
    "MIN_SAFE_BATCH",
    "CoordinatedError",
    "arbiter_epoch",
    "arbiter_setup",
    "check_batch_size",
    "exchange_keys",
    "guest_refine_step",
    "guest_step",
    "host_refine_step",
    "host_step",
    "receive_key",
]

MIN_SAFE_BATCH = 100
"""The smallest batch the coordinated protocol accepts, whatever the features."""
_FRAC = 32
_OFFSET = 1 << 23


class CoordinatedError(FedbenchError):
    """The coordinated protocol cannot run safely or a message does not fit."""

    code = "coordinated"


def safe_batch_bound(host_features: int) -> int:
    """The batch size below which the host's batch gradients could reveal the residuals, hence the labels.

    With zero starting weights the first residuals are 1/2 - y, and a batch gradient is `host_features`
    linear equations in them: a batch not much larger than the features is solvable (its unknowns are even
    binary). Ten rows per host feature, and never fewer than MIN_SAFE_BATCH, is our bound.
    """
    return max(MIN_SAFE_BATCH, 10 * (max(1, host_features) + 1))


def check_batch_size(batch: int, rows: int, host_features: int) -> None:
    """Refuse a batch size that lets the host recover labels from its gradients (a full batch counts as `rows`)."""
    effective = rows if batch <= 0 or batch >= rows else batch
    bound = safe_batch_bound(host_features)
    if effective < bound:
        raise CoordinatedError(
            f"batch size {effective} is unsafe for the coordinated protocol: the host learns each batch's "
            f"gradient, and with {host_features} host features a batch below {bound} rows lets it solve for the "
            f"residuals and so the labels; use a batch size of at least {bound} (0 for full batches) or "
            "protocol 'sshe'"
        )


def arbiter_setup(ctx: Context, key_bits: int) -> PrivateKey:
    """Make the key pair and send the public key to the guest and the host."""
    public, private = generate_keypair(bits=key_bits)
    for role in ("guest", "host"):
        ctx.peer(role).send("coord.key", public.to_dict())
    return private


def receive_key(ctx: Context) -> PublicKey:
    """The arbiter's public key (guest and host), validated; a malformed one raises `PeerKeyError`."""
    try:
        return PublicKey.from_dict(ctx.peer("arbiter").recv("coord.key"))
    except (ValueError, TypeError) as exc:
        raise CoordinatedError(f"the arbiter's public key is malformed: {exc}") from None


def _vector(public: PublicKey, obj: Any, length: int, what: str) -> EncryptedVector:
    return he_ops.received_vector(public, obj, length, what, CoordinatedError)


def _masked_gradient(d: EncryptedVector, x: np.ndarray) -> tuple[EncryptedVector, np.ndarray]:
    signed = fixed_point(x) - _OFFSET
    product = d.dot(signed)
    bits = max(1, product.bound.bit_length()) + he_ops.SLOT_MARGIN_BITS
    masks = ring.random_ints(x.shape[1], bits)
    # Rerandomised (with our own base, see PublicKey.hs): the arbiter must not relate it to [[d]]'s randomness.
    return he_ops.add_ints(product, list(masks)).rerandomize(), masks


def _unmask(plain: Any, masks: np.ndarray, frac_bits: int, count: int) -> np.ndarray:
    values = [int(p) - int(m) for p, m in zip(plain, masks, strict=True)]
    return np.array([v / 2.0 ** (frac_bits + FIXED_FRAC_BITS) for v in values]) / count


def host_step(
    ctx: Context,
    public: PublicKey,
    x: np.ndarray,
    weights: np.ndarray,
    obfuscators: list[Any],
    curvature: float = 0.25,
) -> np.ndarray:
    """Send [[C u]] and [[C sum u^2 / 2]] (C = 1/4: Taylor), receive [[d]], have the arbiter unmask our gradient."""
    guest = ctx.peer("guest")
    u = x @ weights
    quarter = _encode(u * curvature)
    guest.send("coord.u", he_ops.encrypt_ints(public, quarter, obfuscators, _FRAC).to_dict())
    guest.send("coord.uu", public.encrypt(np.array([float(u @ u) * (0.5 * curvature)])).to_dict())
    return _host_gradient(ctx, public, x)


def _host_gradient(ctx: Context, public: PublicKey, x: np.ndarray) -> np.ndarray:
    """Receive [[d]] from the guest, have the arbiter unmask X^T [[d]] (masked by us); return our gradient."""
    guest, arbiter = ctx.peer("guest"), ctx.peer("arbiter")
    d = _vector(public, guest.recv("coord.d"), len(x), "encrypted residuals")
    masked, masks = _masked_gradient(d, x)
    arbiter.send("coord.g", {"gradient": masked.to_dict()})
    plain = arbiter.recv("coord.g")
    return _unmask(plain["gradient"], masks, masked.frac_bits, len(x))


def _encode(values: np.ndarray) -> list[int]:
    return [int(v) for v in np.rint(np.ldexp(np.asarray(values, dtype=np.float64), _FRAC)).tolist()]


def guest_step(
    ctx: Context,
    public: PublicKey,
    x: np.ndarray,
    weights: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    obfuscators: list[Any],
    curvature: float = 0.25,
) -> np.ndarray:
    """Form and rerandomize [[d]] = [[C u_h]] + C u_g + 1/2 - y for the host (C = 1/4: Taylor), have the
    arbiter unmask our gradient and the loss."""
    host = ctx.peer("host")
    count = len(x)
    u = x @ weights
    quarter = _vector(public, host.recv("coord.u"), count, "encrypted partial scores")
    squares = _vector(public, host.recv("coord.uu"), 1, "encrypted sum of squares")
    plain = u * curvature + 0.5 - y
    d = quarter + plain
    y_pm = 2.0 * y - 1.0
    constant = float(np.sum(math.log(2.0) - 0.5 * y_pm * u + 0.5 * curvature * u * u))
    loss = quarter.dot(u - (2.0 * y_pm) * (0.25 / curvature)) + squares + constant
    return _guest_gradient(ctx, x, d, sample_weight, obfuscators, loss)


def _guest_gradient(
    ctx: Context,
    x: np.ndarray,
    d: EncryptedVector,
    sample_weight: np.ndarray | None,
    obfuscators: list[Any],
    loss: EncryptedVector,
) -> np.ndarray:
    """Weight and rerandomize [[d]], send it to the host; have the arbiter unmask our gradient and the loss."""
    host, arbiter = ctx.peer("host"), ctx.peer("arbiter")
    count = len(x)
    if sample_weight is not None:
        d = d.multiply(np.asarray(sample_weight, dtype=np.float64))
    d = _rerandomized(d, obfuscators)
    host.send("coord.d", d.to_dict())
    masked, masks = _masked_gradient(d, x)
    arbiter.send(
        "coord.g", {"gradient": masked.to_dict(), "loss": loss.rerandomize().to_dict(), "rows": count}
    )
    answer = arbiter.recv("coord.g")
    return _unmask(answer["gradient"], masks, masked.frac_bits, count)


def _rerandomized(vector: EncryptedVector, obfuscators: list[Any]) -> EncryptedVector:
    nsq = vector.public.nsq
    cts = [c * r % nsq for c, r in zip(vector._ct, obfuscators, strict=True)]
    return EncryptedVector(vector.public, cts, vector.frac_bits, vector.bound)


def arbiter_epoch(ctx: Context, private: PrivateKey, batches: int) -> float:
    """Decrypt each batch's masked gradients and the guest's loss; return the epoch's mean loss."""
    public = private.public
    total, rows = 0.0, 0
    for b in range(batches):
        step = ctx.iter(b)
        for role, handle in (("guest", step.peer("guest")), ("host", step.peer("host"))):
            message = handle.recv("coord.g")
            if not isinstance(message, dict) or "gradient" not in message:
                raise CoordinatedError(f"the {role}'s masked gradient is malformed")
            vector = EncryptedVector.from_dict(public, message["gradient"])
            reply: dict[str, Any] = {"gradient": private.decrypt_encoded(vector)}
            if role == "guest":
                loss = EncryptedVector.from_dict(public, message["loss"])
                total += float(private.decrypt(loss)[0])
                rows += int(message["rows"])
            handle.send("coord.g", reply)
    return total / max(rows, 1)


def exchange_keys(ctx: Context, role: str, key_bits: int) -> tuple[PrivateKey, PublicKey]:
    """Guest and host: a key pair of our own for the refine epochs' exchange, and the peer's public key."""
    peer = ctx.peer("host" if role == "guest" else "guest")
    public, private = generate_keypair(bits=key_bits)
    peer.send("coord.fkey", public.to_dict())
    try:
        theirs = PublicKey.from_dict(peer.recv("coord.fkey"))
    except (ValueError, TypeError) as exc:
        raise CoordinatedError(f"the peer's refine key is malformed: {exc}") from None
    if theirs.n_bits != public.n_bits:
        raise CoordinatedError(f"the peer's refine key has {theirs.n_bits} bits, ours {public.n_bits}")
    return private, theirs


def _refine_shares(exchange: FourierExchange, peer: PeerHandle, u: np.ndarray) -> tuple[list[int], int]:
    """Our shares (integers at 2^28; they are masked, so far larger than the values) of sigma_F(z) - 1/2 per
    row and of sum_k (c_k / w_k) cos(w_k z) over the batch."""
    return exchange.run(peer, angles_of_reals(u, PERIOD))


def host_refine_step(
    ctx: Context,
    public: PublicKey,
    x: np.ndarray,
    weights: np.ndarray,
    obfuscators: list[Any],
    exchange: FourierExchange,
    labels: dict[bytes, EncryptedVector],
    key: bytes,
) -> np.ndarray:
    """A refine batch: shares of sigma_F(z) with the guest; [[our share]] to it, and our part of the loss,
    sum (1 - 2y) u_h / 2 - our cosine share, under the arbiter's key (from the guest's encrypted labels)."""
    guest = ctx.peer("guest")
    u = x @ weights
    sines, cosine_sum = _refine_shares(exchange, guest, u)
    guest.send("coord.rs", he_ops.encrypt_ints(public, sines, obfuscators, 2 * FRAC_BITS).to_dict())
    sent = guest.recv("coord.y")
    if sent is not None:
        labels[key] = _vector(public, sent, len(x), "encrypted labels")
    if key not in labels:
        raise CoordinatedError("the guest did not send the labels of this batch for its refine loss")
    # value / 2^33 = sum (1/2 - y) u_h - our cosine share / 2^28
    linear = labels[key].dot(np.array(_encode(u), dtype=object).reshape(-1, 1))
    ours = -(cosine_sum << (_FRAC + 1 - 2 * FRAC_BITS))
    part = he_ops.add_ints(linear, [ours])
    guest.send("coord.lin", EncryptedVector(public, part._ct, _FRAC + 1, part.bound).rerandomize().to_dict())
    return _host_gradient(ctx, public, x)


def guest_refine_step(
    ctx: Context,
    public: PublicKey,
    x: np.ndarray,
    weights: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    obfuscators: list[Any],
    exchange: FourierExchange,
    labels: dict[bytes, EncryptedVector],
    key: bytes,
) -> np.ndarray:
    """A refine batch: [[d]] = [[host's share]] + our share + 1/2 - y of sigma_F(z) - y; the loss of sigma_F."""
    host = ctx.peer("host")
    count = len(x)
    u = x @ weights
    sines, cosine_sum = _refine_shares(exchange, host, u)
    theirs = _vector(public, host.recv("coord.rs"), count, "refine residual shares")
    if theirs.frac_bits != 2 * FRAC_BITS:
        raise CoordinatedError(f"the host's refine residual shares have scale 2^{theirs.frac_bits}, not 2^28")
    labels_term = np.rint(np.ldexp(0.5 - y, 2 * FRAC_BITS)).astype(np.int64).tolist()
    d = he_ops.add_ints(theirs, [s + t for s, t in zip(sines, labels_term, strict=True)])
    fresh = key not in labels
    if fresh:
        labels[key] = public.encrypt_encoded([1 - 2 * int(v) for v in y], 0)
    host.send("coord.y", labels[key].to_dict() if fresh else None)
    part = _vector(public, host.recv("coord.lin"), 1, "refine loss part")
    if part.frac_bits != _FRAC + 1:
        raise CoordinatedError(f"the host's refine loss part has scale 2^{part.frac_bits}, not 2^{_FRAC + 1}")
    plain = count * LOSS_CONSTANT + float(np.sum((0.5 - y) * u))
    ours = int(np.rint(np.ldexp(plain, _FRAC + 1))) - (cosine_sum << (_FRAC + 1 - 2 * FRAC_BITS))
    return _guest_gradient(ctx, x, d, sample_weight, obfuscators, he_ops.add_ints(part, [ours]))
