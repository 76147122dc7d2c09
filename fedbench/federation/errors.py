"""Errors of the federation layer, and the error record: how a party's failure travels to its peer as a value.

A record is Flower's `Error(code, reason)`: the code of one of our exception classes (`fedbench.errors`) and a
plain-English reason. On the wire it is ``{"error": code, "reason": text}`` (the PSI's format since v1), so
older peers read it unchanged; on the receiving side it is raised as the class of its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedbench.errors import ERRORS_BY_CODE, FedbenchError, Refused

__all__ = ["Cancelled", "ErrorRecord", "PeerFailed", "UnexpectedMessage"]

_MAX_REASON = 2000


class Cancelled(FedbenchError):
    """The task was cancelled (by a user, a failure on another party, or a revoked project)."""

    code = "cancelled"


class PeerFailed(FedbenchError):
    """The peer reported a failure whose code we do not know; the message carries the peer's reason."""

    code = "peer_failed"


class UnexpectedMessage(Refused):
    """A peer sent a message of the wrong kind or type for the exchange: it left the protocol."""

    code = "unexpected_message"


@dataclass(frozen=True)
class ErrorRecord:
    """A failure as a value: the code of its exception class and its reason, as the failing party said it."""

    code: str
    reason: str

    @classmethod
    def of(cls, exc: BaseException, party: str) -> ErrorRecord:
        """The record of our own failure: our code and words, or a plain note for an unexpected crash."""
        if isinstance(exc, FedbenchError):
            return cls(exc.code, str(exc))
        if isinstance(exc, KeyboardInterrupt):
            return cls("interrupted", f"{party!r} was interrupted")
        return cls("internal", f"{party!r} stopped on an internal error ({type(exc).__name__}); see its log")

    @classmethod
    def from_wire(cls, value: Any) -> ErrorRecord | None:
        """The record a received value is, or None when it is an ordinary message."""
        if not isinstance(value, dict) or not isinstance(value.get("error"), str):
            return None
        if not set(value) <= {"error", "reason"}:
            return None
        reason = value.get("reason")
        return cls(
            value["error"][:64], reason[:_MAX_REASON] if isinstance(reason, str) else "no reason given"
        )

    def to_wire(self) -> dict[str, str]:
        """The value sent to the peer."""
        return {"error": self.code, "reason": self.reason[:_MAX_REASON]}

    @property
    def error_class(self) -> type[FedbenchError]:
        """Our exception class of this code (`PeerFailed` for a code we do not know)."""
        return ERRORS_BY_CODE.get(self.code, PeerFailed)

    @property
    def is_refusal(self) -> bool:
        """Whether the peer refused (its code is a `Refused` class) rather than failed."""
        return issubclass(self.error_class, Refused)

    def exception(self, peer: str) -> FedbenchError:
        """The error to raise on our side: the class of the code, its message naming the peer."""
        message = f"{peer!r} {'refused' if self.is_refusal else 'failed'}: {self.reason}"
        try:
            return self.error_class(message)
        except TypeError:
            return PeerFailed(message)
