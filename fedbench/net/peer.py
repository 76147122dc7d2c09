"""The sending side of the federation channel: one mutual-TLS gRPC channel to one peer node.

`push` streams a payload in chunks under a message id; if the peer is down or the stream breaks, it retries
the same message (the receiver drops duplicates) with exponential backoff until the deadline, then raises
`PeerUnavailable`. Refusals from the peer (bad identity, over a limit, malformed) are not retried.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from fedbench.errors import FedbenchError, PeerUnavailable
from fedbench.net import codec
from fedbench.net.federation import FEDERATION_SERVICE, PushHeader
from fedbench.net.rpc import CHUNK_BYTES, chunked, error_from_rpc, unanswered
from fedbench.net.tls import TlsMaterial, channel_options, client_credentials

__all__ = ["PeerClient"]

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE}
_RECONNECT_OPTIONS: list[tuple[str, object]] = [("grpc.max_reconnect_backoff_ms", 1000)]
"""A peer that was down is dialled again at least every second (gRPC's default backoff grows to 120 s)."""
_RECONNECT_WAIT = 1.5
"""Seconds a request waits for a failing channel to reconnect before it fails: a peer back up is reached."""
_CLOSE_GRACE = 1.0
"""Seconds a channel stays open after its last readiness wait: gRPC's connectivity-polling thread outlives the
wait by up to two of its 0.2 s polls, and a channel closed under it makes it raise "Channel closed!" in the
background (grpc/grpc#18995)."""
_log = logging.getLogger(__name__)


class PeerClient:
    """A channel to `peer` at `address`, authenticated as `party` with its TLS material.

    `is_cancelled` (a worker passes its task's cancel flag) stops a push that is retrying an unreachable peer.
    """

    def __init__(
        self,
        party: str,
        peer: str,
        address: str,
        tls: TlsMaterial,
        *,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.party = party
        self.peer = peer
        self.address = address
        self._is_cancelled = is_cancelled or (lambda: False)
        self._channel = grpc.secure_channel(
            address, client_credentials(tls), options=[*channel_options(peer), *_RECONNECT_OPTIONS]
        )
        self._ping = self._channel.unary_unary(f"/{FEDERATION_SERVICE}/Ping")
        self._push = self._channel.stream_unary(f"/{FEDERATION_SERVICE}/Push")
        self._deliver = self._channel.unary_unary(f"/{FEDERATION_SERVICE}/Deliver")
        self._request = self._channel.unary_unary(f"/{FEDERATION_SERVICE}/Request")
        self._awaited_at = -float("inf")

    def close(self) -> None:
        """Close the channel: at once, or from a background timer when a readiness wait ended less than
        `_CLOSE_GRACE` seconds ago (its polling thread is still running; the caller does not wait for it)."""
        left = self._awaited_at + _CLOSE_GRACE - time.monotonic()
        if left <= 0:
            self._channel.close()
            return
        timer = threading.Timer(left, self._channel.close)
        timer.daemon = True
        timer.start()

    def ping(self, timeout: float = 5.0) -> dict[str, Any]:
        """One round trip through the real channel: the peer's party name and version."""
        try:
            reply = self._ping(b"", timeout=timeout, metadata=[("fb-party", self.party)])
        except grpc.RpcError as exc:
            raise self._failure(exc) from None
        answer = codec.decode(reply)
        if not isinstance(answer, dict):
            raise PeerUnavailable(f"{self._describe()} sent a malformed ping answer")
        return answer

    def request(
        self,
        action: str,
        body: dict[str, Any],
        *,
        project: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Ask the peer's node to do `action`; its refusal comes back as our error (not retried)."""
        message = codec.encode({"action": action, "project": project, "token": token, "body": body})
        self._await_channel(min(_RECONNECT_WAIT, timeout))
        try:
            reply = self._request(message, timeout=timeout, metadata=[("fb-party", self.party)])
        except grpc.RpcError as exc:
            raise self._failure(exc) from None
        return codec.decode(reply)

    def push(
        self,
        key: str,
        payload: Any,
        *,
        deadline: float = 60.0,
        message_id: str | None = None,
        project: tuple[str, str] | None = None,
    ) -> bool:
        """Deliver `payload` under `key` exactly once; returns False if the peer had it already.

        `project` is (project id, token) for messages of a project's job: the receiver checks them.
        """
        return self.push_encoded(
            key, codec.encode_parts(payload), deadline=deadline, message_id=message_id, project=project
        )

    def push_encoded(
        self,
        key: str,
        parts: list[bytes | memoryview],
        *,
        deadline: float = 60.0,
        message_id: str | None = None,
        project: tuple[str, str] | None = None,
    ) -> bool:
        """`push` for a payload already encoded with the codec (as buffers whose concatenation is the message)."""
        header = PushHeader(
            sender=self.party,
            key=key,
            message_id=message_id or uuid.uuid4().hex,
            size=sum(memoryview(p).nbytes for p in parts),
            project=project[0] if project else "",
            token=project[1] if project else "",
        )
        give_up = time.monotonic() + deadline
        delay = 0.05
        while True:
            try:
                if header.size <= CHUNK_BYTES:
                    body = b"".join(parts)
                    reply = self._deliver(body, metadata=header.metadata(), wait_for_ready=False)
                else:
                    reply = self._push(chunked(parts), metadata=header.metadata(), wait_for_ready=False)
                return bool(codec.decode(reply).get("delivered"))
            except grpc.RpcError as exc:
                if exc.code() not in _RETRYABLE:
                    raise self._failure(exc) from None
                if time.monotonic() + delay > give_up:
                    raise self._failure(exc, f"did not answer within {deadline:g} s") from None
            if self._cancelled_during(delay * (0.5 + random.random())):
                raise PeerUnavailable(
                    f"{self.peer} is not reachable: its node at {self.address} does not answer, and our task "
                    "was cancelled while we retried"
                )
            delay = min(delay * 2, 2.0)

    def _cancelled_during(self, pause: float) -> bool:
        """Sleep `pause` s between two attempts, or less if our task is cancelled meanwhile (then True)."""
        end = time.monotonic() + pause
        while not self._is_cancelled():
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.2))
        return True

    def _await_channel(self, wait: float) -> None:
        """Give a channel that lost its peer up to `wait` s to connect again (at once when it is connected).

        A call on a channel still waiting to redial fails at once, even when the peer's node is back: a job
        run again right after its partner restarted would be refused with "not reachable" for no reason.
        Waiting here, before anything is sent, never sends a request twice.
        """
        ready = grpc.channel_ready_future(self._channel)
        try:
            ready.result(timeout=wait)
        except grpc.FutureTimeoutError:
            ready.cancel()  # else it stays subscribed, and the polling thread with it, until the channel closes
        finally:
            self._awaited_at = time.monotonic()

    def _describe(self) -> str:
        return f"party {self.peer!r} at {self.address}"

    def _failure(self, exc: grpc.RpcError, what: str = "does not answer") -> FedbenchError:
        """The peer's own error if it answered; else "<peer> is not reachable", the transport's words logged."""
        status = unanswered(exc)
        if status is None:
            return error_from_rpc(exc, what=self._describe())
        detail = f"{status.name}: {exc.details()}"
        _log.debug("%s %s: %s", self._describe(), what, detail)
        return PeerUnavailable(
            f"{self.peer} is not reachable: its node at {self.address} {what}. Ask {self.peer} to check that "
            "their node is running and reachable from ours (on the local sandbox: `fedbench sandbox up`).",
            detail=detail,
        )
