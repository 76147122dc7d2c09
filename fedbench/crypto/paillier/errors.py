"""Errors and the weak-key warning of the Paillier engine; each message says what went wrong and what to do.

They subclass `fedbench.errors.FedbenchError`, so a caller that catches fedbench errors catches these too.
"""

from __future__ import annotations

from fedbench.errors import FedbenchError, Refused

__all__ = [
    "KeyMismatchError",
    "KeySizeError",
    "MalformedCiphertextError",
    "PaillierError",
    "PaillierOverflowError",
    "PeerKeyError",
    "WeakKeyWarning",
]


class PaillierError(FedbenchError):
    """Base class of the Paillier engine's errors."""

    code = "paillier"


class KeyMismatchError(PaillierError):
    """Ciphertexts, keys or pools of two different keypairs were mixed (decrypt, operate, load)."""

    code = "paillier_key_mismatch"


class PaillierOverflowError(PaillierError):
    """A value, or the tracked bound of a result, could leave the plaintext range (|m| <= n // 3 - 1)."""

    code = "paillier_overflow"


class MalformedCiphertextError(PaillierError):
    """Serialized ciphertexts are malformed: bad header, length, width or a value outside Z*_{n^2}."""

    code = "paillier_malformed"


class KeySizeError(PaillierError):
    """A key is below the 1024-bit floor (or its modulus is not a plausible Paillier modulus)."""

    code = "paillier_key_size"


class PeerKeyError(PaillierError, Refused):
    """A peer's public key is refused on import: malformed, outside our size bounds, not a proper Paillier
    modulus, or carrying a field we never take from a peer (its obfuscation base)."""

    code = "paillier_peer_key"


class WeakKeyWarning(UserWarning):
    """A 1024-bit key was made or loaded: fit for tests only, use 2048 bits or more for real data."""
