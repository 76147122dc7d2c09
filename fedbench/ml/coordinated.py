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
from fedbench.federation import Context
from fedbench.ml import he_ops, ring
from fedbench.ml.design import FIXED_FRAC_BITS, fixed_point

__all__ = [
    "MIN_SAFE_BATCH",
    "CoordinatedError",
    "arbiter_epoch",
    "arbiter_setup",
    "check_batch_size",
    "guest_step",
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
    ctx: Context, public: PublicKey, x: np.ndarray, weights: np.ndarray, obfuscators: list[Any]
) -> np.ndarray:
    """Send [[u/4]] and [[sum u^2 / 8]], receive [[d]], have the arbiter unmask our gradient; return it."""
    guest, arbiter = ctx.peer("guest"), ctx.peer("arbiter")
    u = x @ weights
    quarter = _encode(u / 4.0)
    guest.send("coord.u", he_ops.encrypt_ints(public, quarter, obfuscators, _FRAC).to_dict())
    guest.send("coord.uu", public.encrypt(np.array([float(u @ u) / 8.0])).to_dict())
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
) -> np.ndarray:
    """Form and rerandomize [[d]] for the host, have the arbiter unmask our gradient and the loss."""
    host, arbiter = ctx.peer("host"), ctx.peer("arbiter")
    count = len(x)
    u = x @ weights
    quarter = _vector(public, host.recv("coord.u"), count, "encrypted partial scores")
    squares = _vector(public, host.recv("coord.uu"), 1, "encrypted sum of squares")
    plain = u / 4.0 + 0.5 - y
    d = quarter + plain
    if sample_weight is not None:
        d = d.multiply(np.asarray(sample_weight, dtype=np.float64))
    d = _rerandomized(d, obfuscators)
    host.send("coord.d", d.to_dict())
    masked, masks = _masked_gradient(d, x)
    y_pm = 2.0 * y - 1.0
    constant = float(np.sum(math.log(2.0) - 0.5 * y_pm * u + 0.125 * u * u))
    loss = (quarter.dot(u - 2.0 * y_pm) + squares + constant).rerandomize()
    arbiter.send("coord.g", {"gradient": masked.to_dict(), "loss": loss.to_dict(), "rows": count})
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
