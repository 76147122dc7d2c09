"""Shamir's t-of-n sharing of a 32-byte secret, by PyCryptodome's `Shamir` (16-byte secrets over GF(2^128)).

A 32-byte secret (a self-mask seed or an X25519 private key) is split as two 16-byte halves with the same
holders and threshold; a share is its index and the two 16-byte half-shares, 32 bytes. `cryptography` has no
secret sharing, hence PyCryptodome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.Protocol.SecretSharing import Shamir

from fedbench.secagg.errors import RoundAborted, SecAggError

SECRET_BYTES = 32
_HALF = 16


@dataclass(frozen=True)
class Share:
    """One holder's share: its index (1..n) and 32 bytes (the shares of both halves)."""

    index: int
    value: bytes


def split(secret: bytes, threshold: int, holders: Sequence[int]) -> dict[int, Share]:
    """Share `secret` among `holders` (client ids, in the given order) so that any `threshold` rebuild it."""
    if len(secret) != SECRET_BYTES:
        raise SecAggError(f"a secret to share has {len(secret)} bytes; it must have {SECRET_BYTES}")
    if not 1 <= threshold <= len(holders):
        raise SecAggError(f"a threshold of {threshold} cannot be met by {len(holders)} holders")
    low = Shamir.split(threshold, len(holders), secret[:_HALF])
    high = Shamir.split(threshold, len(holders), secret[_HALF:])
    return {
        holder: Share(index=a_index, value=a + b)
        for holder, (a_index, a), (b_index, b) in zip(holders, low, high, strict=True)
        if a_index == b_index
    }


def combine(shares: Sequence[Share], threshold: int, *, owner: int, what: str) -> bytes:
    """The secret from at least `threshold` shares of distinct holders; RoundAborted with fewer."""
    distinct = {share.index: share for share in shares}
    if len(distinct) < threshold:
        raise RoundAborted(
            f"only {len(distinct)} shares of client {owner}'s {what} arrived; {threshold} are needed "
            "(too many of its neighbours dropped out before unmasking)"
        )
    chosen = [distinct[index] for index in sorted(distinct)[:threshold]]
    for share in chosen:
        if len(share.value) != SECRET_BYTES:
            raise SecAggError(f"a share of client {owner}'s {what} has {len(share.value)} bytes, not 32")
    low = Shamir.combine([(share.index, share.value[:_HALF]) for share in chosen])
    high = Shamir.combine([(share.index, share.value[_HALF:]) for share in chosen])
    return bytes(low) + bytes(high)
