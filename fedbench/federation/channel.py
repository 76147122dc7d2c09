"""One message stream with one peer under one key: the only place protocol code meets a `Transport`.

Every wait is cut into short slices, between which the task's cancellation is checked, so a cancelled task
stops waiting within about a second whatever its overall timeout (a PSI's is half an hour). What arrives is a
`Message`: either content or an `ErrorRecord` the peer sent when it stopped; `recv` raises the record as the
class of its code and checks the content's type, so a protocol reads each exchange as one typed call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from fedbench.errors import RecvTimeout
from fedbench.federation.errors import Cancelled, ErrorRecord, UnexpectedMessage
from fedbench.net.transport import Transport

__all__ = ["SLICE", "Channel", "Message"]

SLICE = 1.0
"""Seconds of one wait in the mailbox, between two checks of cancellation."""

T = TypeVar("T")


@dataclass(frozen=True)
class Message:
    """What one receive got from the peer: its content, or the error record it sent instead."""

    content: Any = None
    error: ErrorRecord | None = None


class Channel:
    """The FIFO stream of messages between us and `peer` under `key`, with sliced, cancellable waits.

    `peer_failed` is the record the peer sent, once one arrived: then `fail` does not answer it with ours.
    """

    def __init__(
        self,
        transport: Transport,
        peer: str,
        key: str,
        *,
        timeout: float = 600.0,
        is_cancelled: Callable[[], bool] | None = None,
        step: str = "",
    ) -> None:
        self.transport = transport
        self.party = transport.party
        self.peer = peer
        self.key = key
        self.timeout = timeout
        self._is_cancelled = is_cancelled or (lambda: False)
        self._step = step
        self.peer_failed: ErrorRecord | None = None

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if our task was asked to stop."""
        if self._is_cancelled():
            where = f"step {self._step!r}" if self._step else f"the exchange with {self.peer!r}"
            raise Cancelled(f"{where} was cancelled")

    def send(self, content: Any) -> None:
        """Send one message to the peer (after checking we were not cancelled)."""
        self.check_cancelled()
        self.transport.send(self.peer, self.key, content)

    def recv_message(self, timeout: float | None = None) -> Message:
        """The peer's next message, content or error record, waiting up to `timeout` (default: the channel's)."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            self.check_cancelled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RecvTimeout(
                    f"no message from {self.peer!r} under key {self.key!r} within {wait:g} s; "
                    "check that the peer's step is running and uses the same key"
                )
            try:
                value = self.transport.recv(self.peer, self.key, timeout=max(min(SLICE, remaining), 0.01))
            except RecvTimeout:
                continue
            record = ErrorRecord.from_wire(value)
            if record is not None:
                self.peer_failed = record
                return Message(error=record)
            return Message(content=value)

    @overload
    def recv(self, expect: None = None, *, timeout: float | None = None, what: str = "") -> Any: ...

    @overload
    def recv(self, expect: type[T], *, timeout: float | None = None, what: str = "") -> T: ...

    def recv(self, expect: type[Any] | None = None, *, timeout: float | None = None, what: str = "") -> Any:
        """The peer's next message; its error record raised as the class of its code; its type checked."""
        message = self.recv_message(timeout)
        if message.error is not None:
            raise message.error.exception(self.peer)
        if expect is not None and not isinstance(message.content, expect):
            got = type(message.content).__name__
            raise UnexpectedMessage(
                f"{self.peer!r} sent a {got} where {what or repr(self.key)} should be of type {expect.__name__}: "
                "it left the protocol, so the step stops here"
            )
        return message.content

    def fail(self, exc: BaseException) -> None:
        """Tell the peer we stopped (best effort), so it does not wait for its timeout.

        Not when the failure came from the peer, nor when we were cancelled: our node tells the job's other
        parties of a cancel itself, and a record would race with it and turn their cancel into a failure.
        """
        if self.peer_failed is not None or isinstance(exc, Cancelled):
            return
        with contextlib.suppress(Exception):
            self.transport.send(self.peer, self.key, ErrorRecord.of(exc, self.party).to_wire())
