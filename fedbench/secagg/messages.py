"""The typed messages of a round, with bytes fields only (never pickled), and their checks on arrival.

Stages: 1. each client advertises two public keys; 2. it sends each neighbour its Shamir shares, encrypted and
authenticated; 3. it sends its masked vector (or withdraws, saying why); 4. the server asks each survivor for
shares and each answers. `problem()` on a message gives the reason the server excludes it, or None.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from fedbench.secagg.keys import KEY_BYTES
from fedbench.secagg.shamir import SECRET_BYTES, Share

SHARE_PLAINTEXT = struct.Struct(">QQH")
"""Header of an opened share bundle: sender, recipient, Shamir index; then the b_u and key shares."""
SHARE_PLAINTEXT_BYTES = SHARE_PLAINTEXT.size + 2 * SECRET_BYTES
NONCE_BYTES = 12
TAG_BYTES = 16


@dataclass(frozen=True)
class AdvertiseKeys:
    """Stage 1, client to server (and forwarded to its neighbours): the round's two X25519 public keys."""

    client: int
    mask_public: bytes
    share_public: bytes

    def problem(self) -> str | None:
        """Why this message is malformed, or None."""
        for name, key in (("mask", self.mask_public), ("share", self.share_public)):
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                return f"its {name} public key is not {KEY_BYTES} bytes"
        if self.mask_public == self.share_public:
            return "it advertised the same key twice"
        return None


@dataclass(frozen=True)
class EncryptedShare:
    """Stage 2, client to server to one neighbour: nonce + AES-GCM ciphertext of the share bundle."""

    sender: int
    recipient: int
    ciphertext: bytes

    def problem(self) -> str | None:
        """Why this message is malformed, or None."""
        if not isinstance(self.ciphertext, bytes):
            return "its ciphertext is not bytes"
        if len(self.ciphertext) != NONCE_BYTES + SHARE_PLAINTEXT_BYTES + TAG_BYTES:
            return f"its share ciphertext has {len(self.ciphertext)} bytes, not the bundle's size"
        return None


@dataclass(frozen=True)
class MaskedInput:
    """Stage 3, client to server: the masked vector, little-endian elements of Z_2^k, and its mask partners.

    `masked_with`: the neighbours whose pairwise masks are in the vector (those it exchanged shares with).
    """

    client: int
    vector: bytes
    masked_with: frozenset[int] = frozenset()

    def problem(self, vector_bytes: int, bits: int) -> str | None:
        """Why this vector cannot be summed (its length), or None."""
        if not isinstance(self.vector, bytes):
            return "its masked vector is not bytes"
        if len(self.vector) != vector_bytes:
            width = bits // 8
            count = (
                f"{len(self.vector) // width} coordinates" if len(self.vector) % width == 0 else "a partial"
            )
            return (
                f"it sent a vector of {count} ({len(self.vector)} bytes); "
                f"the round's vectors have {vector_bytes // width}"
            )
        return None


@dataclass(frozen=True)
class Withdrawal:
    """Stage 3 instead of a vector: the client leaves the round and says why (its update failed a check)."""

    client: int
    reason: str


@dataclass(frozen=True)
class UnmaskRequest:
    """Stage 4, server to each survivor: who sent a vector, and who sent shares but no vector."""

    survivors: frozenset[int]
    dropped: frozenset[int]


@dataclass(frozen=True)
class UnmaskResponse:
    """Stage 4, survivor to server: its shares of survivors' seeds b_u and of dropped clients' mask keys."""

    client: int
    seed_shares: dict[int, Share] = field(default_factory=dict)
    key_shares: dict[int, Share] = field(default_factory=dict)

    def problem(self, request: UnmaskRequest) -> str | None:
        """Why this answer does not fit the request, or None."""
        if not set(self.seed_shares) <= request.survivors:
            return "it sent seed shares of clients that are not survivors"
        if not set(self.key_shares) <= request.dropped:
            return "it sent key shares of clients that did not drop out"
        for share in (*self.seed_shares.values(), *self.key_shares.values()):
            if not isinstance(share, Share) or not isinstance(share.value, bytes):
                return "a share is malformed"
            if len(share.value) != SECRET_BYTES:
                return f"a share has {len(share.value)} bytes, not {SECRET_BYTES}"
        return None
