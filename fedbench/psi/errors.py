"""Exception classes of the PSI protocol and ID preparation, each with a stable `code` that crosses the wire.

A failure on one party reaches the other as a value ``{"error": code, "reason": text}`` and is raised there as
`PsiRefused` (the peer refused) or `PsiPeerError` (the peer failed), so neither side waits for a timeout.
"""

from __future__ import annotations

from fedbench.errors import FedbenchError, Refused

__all__ = [
    "DuplicateIdError",
    "IdPreparationError",
    "PsiError",
    "PsiPeerError",
    "PsiRefused",
]


class PsiError(FedbenchError):
    """The PSI protocol failed: bad arguments, a malformed or invalid message, inconsistent results."""

    code = "psi"


class PsiRefused(PsiError, Refused):
    """A party refused the PSI: a declared size over its limit, a mismatched policy or domain key, or a peer
    that left the protocol (more values than declared, a message out of order, an impossible count)."""

    code = "psi_refused"


class PsiPeerError(PsiError):
    """The peer reported that it failed; the message carries the peer's reason."""

    code = "psi_peer"


class IdPreparationError(PsiError):
    """The ID columns cannot be turned into PSI keys (missing column, bad option)."""

    code = "psi_ids"


class DuplicateIdError(IdPreparationError):
    """Several rows share one key, and duplicates were declared an error."""

    code = "psi_duplicate_ids"
