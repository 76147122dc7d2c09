"""The error of the SecureBoost protocol: a message that does not fit, data or a key that cannot be used."""

from __future__ import annotations

from fedbench.errors import FedbenchError

__all__ = ["SecureBoostError"]


class SecureBoostError(FedbenchError):
    """SecureBoost cannot go on: a peer's message is malformed or inconsistent, or the data or key do not fit.
    The message names what is wrong, where, and the fix."""

    code = "secureboost"
