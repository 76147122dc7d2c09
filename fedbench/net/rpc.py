"""gRPC plumbing shared by the federation and control services: raw-bytes methods and errors as values.

We use gRPC's generic handlers with bytes in and out (no protobuf code generation): every payload is our own
safe codec. A failure crosses the wire as a status whose details are "<code>: <reason>", which the other side
turns back into the matching `FedbenchError` subclass; nothing is ever pickled.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc

from fedbench.errors import (
    ERRORS_BY_CODE,
    FedbenchError,
    NodeError,
    PeerUnavailable,
    RecvTimeout,
    Refused,
    Unauthenticated,
    error_from_code,
)

__all__ = [
    "CHUNK_BYTES",
    "abort_with",
    "chunked",
    "error_from_rpc",
    "guarded",
    "status_for",
    "unanswered",
]

CHUNK_BYTES = 1 << 20
"""Size of one streamed chunk: far under gRPC's 4 MiB message cap, large enough to keep per-message cost low."""

_STATUS_BY_ERROR: list[tuple[type[FedbenchError], grpc.StatusCode]] = [
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (Refused, grpc.StatusCode.PERMISSION_DENIED),
    (RecvTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (PeerUnavailable, grpc.StatusCode.UNAVAILABLE),
]

F = TypeVar("F", bound=Callable[..., Any])


def status_for(error: FedbenchError) -> grpc.StatusCode:
    """The gRPC status that carries `error` (the exact class travels in the details)."""
    for cls, status in _STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return grpc.StatusCode.FAILED_PRECONDITION


def abort_with(context: grpc.ServicerContext, error: FedbenchError) -> None:
    """End the call with `error` as a (code, reason) value; never returns."""
    context.abort(status_for(error), f"{error.code}: {error}")


def guarded(handler: F) -> F:
    """Wrap a servicer method so our errors become status values and anything else a generic node error."""

    @functools.wraps(handler)
    def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return handler(request, context)
        except FedbenchError as exc:
            abort_with(context, exc)
        except Exception as exc:  # the node keeps serving; the caller gets the reason, not a traceback
            abort_with(context, NodeError(f"internal error: {type(exc).__name__}: {exc}"))

    return wrapper  # type: ignore[return-value]


def guarded_stream(handler: F) -> F:
    """Like `guarded`, for handlers that yield a response stream."""

    @functools.wraps(handler)
    def wrapper(request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            yield from handler(request, context)
        except FedbenchError as exc:
            abort_with(context, exc)
        except Exception as exc:
            abort_with(context, NodeError(f"internal error: {type(exc).__name__}: {exc}"))

    return wrapper  # type: ignore[return-value]


def error_from_rpc(exc: grpc.RpcError, *, what: str) -> FedbenchError:
    """Turn a failed call back into our error: the peer's (code, reason) if it sent one, else a transport error."""
    details = (exc.details() if hasattr(exc, "details") else None) or ""
    code, _, reason = details.partition(": ")
    if code in ERRORS_BY_CODE and reason:
        return error_from_code(code, reason)
    status = exc.code() if hasattr(exc, "code") else None
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return PeerUnavailable(f"{what} did not answer: {details or status}")
    return NodeError(f"{what} failed: {status}: {details}")


def unanswered(exc: grpc.RpcError) -> grpc.StatusCode | None:
    """`UNAVAILABLE` or `DEADLINE_EXCEEDED` when the call got no answer from the other end (stopped,
    unreachable, too slow); None when it answered, even with an error (one of ours travels as `code: reason`)."""
    details = (exc.details() if hasattr(exc, "details") else None) or ""
    code, _, reason = details.partition(": ")
    if code in ERRORS_BY_CODE and reason:
        return None
    status = exc.code() if hasattr(exc, "code") else None
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return status
    return None


def chunked(parts: Sequence[bytes | memoryview], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Cut buffers into chunks of at most `size` bytes, copying each byte once.

    Small parts (headers) are gathered into one chunk; a large part is sliced straight into chunks.
    """
    pending = bytearray()
    for part in parts:
        view = memoryview(part).cast("B")
        if len(pending) + len(view) <= size:
            pending += view
            continue
        if pending:
            yield bytes(pending)
            pending = bytearray()
        for start in range(0, len(view), size):
            piece = view[start : start + size]
            if len(piece) < size:
                pending += piece
            else:
                yield bytes(piece)
    if pending:
        yield bytes(pending)
