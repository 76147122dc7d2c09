"""Per-round X25519 key pairs, and the 256-bit keys HKDF-SHA256 derives from their agreements.

Each client makes two pairs a round: one whose agreements key the pairwise masks, one whose agreements key
the encryption of the Shamir shares it sends its neighbours. A derived key is bound to the round (HKDF salt),
to its purpose and to the unordered pair of clients (HKDF info), so no key serves two uses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedbench.secagg.errors import SecAggError

KEY_BYTES = 32
"""Bytes of an X25519 key (public or private) and of every derived key (256 bits)."""

MASK_PURPOSE = b"fedbench secagg pairwise mask"
SHARE_PURPOSE = b"fedbench secagg share encryption"


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair made fresh for one round."""

    private: X25519PrivateKey

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key (what the client advertises)."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def private_bytes(self) -> bytes:
        """The raw 32-byte private key (what the client secret-shares, for the mask pair only)."""
        return self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )


def generate() -> KeyPair:
    """A fresh key pair from the operating system's randomness."""
    return KeyPair(X25519PrivateKey.generate())


def from_private_bytes(raw: bytes) -> KeyPair:
    """The key pair of a raw private key (the server rebuilds a dropped client's mask pair with it)."""
    if len(raw) != KEY_BYTES:
        raise SecAggError(f"a private key has {len(raw)} bytes; X25519 keys have {KEY_BYTES}")
    return KeyPair(X25519PrivateKey.from_private_bytes(raw))


def check_public(raw: bytes, *, owner: int) -> None:
    """Raise SecAggError unless `raw` is a 32-byte X25519 public key (what a server checks on arrival)."""
    if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
        size = len(raw) if isinstance(raw, bytes) else type(raw).__name__
        raise SecAggError(f"client {owner} advertised a public key of {size} bytes; X25519 keys have 32")


def derive(pair: KeyPair, peer_public: bytes, *, round_id: bytes, purpose: bytes, a: int, b: int) -> bytes:
    """The 256-bit key of clients a (holding `pair`) and b (`peer_public`) for one purpose in one round.

    HKDF-SHA256 of their X25519 secret, salted with the round id, the purpose and both ids as its info.
    Raises SecAggError when the peer's key is unusable (X25519 refuses low-order points, whose agreement
    would be all zeros).
    """
    try:
        shared = pair.private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:
        raise SecAggError(
            f"client {b}'s public key gives no usable agreement ({exc}); it must be excluded"
        ) from exc
    info = purpose + struct.pack(">QQ", min(a, b), max(a, b))
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=round_id, info=info).derive(shared)
