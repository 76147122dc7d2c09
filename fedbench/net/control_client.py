"""The control API's name and its raw client: what a kernel and a node's worker use to call their own node.

It lives below both `node/` and `client/`, so a worker receives from its node's mailbox without importing the
kernel's client, and the kernel's client names the service without importing the node. Every call carries the
node's API token. Errors come back as (code, reason) values and are raised as the matching `FedbenchError`;
when the node itself does not answer, the error is `NodeUnavailable` in plain words, the transport's own words
going to the debug log and the error's `detail`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from fedbench.errors import FedbenchError, NodeUnavailable
from fedbench.net import codec
from fedbench.net.rpc import CHUNK_BYTES, chunked, error_from_rpc, unanswered

__all__ = ["CONTROL_SERVICE", "ControlClient"]

CONTROL_SERVICE = "fedbench.Control"
"""The gRPC service name of the control API."""

_log = logging.getLogger(__name__)


class ControlClient:
    """A connection to a node's control API at `address`, authenticated with `token`.

    `party`, when known, lets errors name the node; subclasses that know the node's home add its log file and
    the command that starts it (`log_file`, `start_command`).
    """

    def __init__(self, address: str, token: str | None, *, party: str | None = None) -> None:
        self.address = address
        self.party = party
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", 4 * CHUNK_BYTES),
                ("grpc.max_send_message_length", 4 * CHUNK_BYTES),
            ],
        )
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._call = self._channel.unary_unary(f"/{CONTROL_SERVICE}/Call")
        self._upload = self._channel.stream_unary(f"/{CONTROL_SERVICE}/Upload")
        self._download = self._channel.unary_stream(f"/{CONTROL_SERVICE}/Download")
        self._watch = self._channel.unary_stream(f"/{CONTROL_SERVICE}/Watch")

    @property
    def start_command(self) -> str | None:
        """The command that starts this node, when known (not here: the node's home is unknown)."""
        return None

    @property
    def log_file(self) -> Path | None:
        """The node's log file, when known (not here: the node's home is unknown)."""
        return None

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def call(self, method: str, timeout: float | None = 60.0, **args: Any) -> Any:
        """Invoke a small control method and return its decoded answer."""
        request = codec.encode({"method": method, "args": args})
        try:
            reply = self._call(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise self._failure(exc, method) from None
        return codec.decode(reply)

    def upload(self, method: str, data: bytes | list[bytes | memoryview], **args: Any) -> Any:
        """Invoke a method that takes a streamed body (`data`) plus small named arguments."""
        parts = data if isinstance(data, list) else [data]
        metadata = [*self._metadata, ("fb-method", method), ("fb-args", json.dumps(args))]
        try:
            reply = self._upload(chunked(parts), metadata=metadata)
        except grpc.RpcError as exc:
            raise self._failure(exc, method) from None
        return codec.decode(reply)

    def download(self, method: str, **args: Any) -> bytearray:
        """Invoke a method whose answer streams back; returns the reassembled bytes."""
        request = codec.encode({"method": method, "args": args})
        body = bytearray()
        try:
            for chunk in self._download(request, metadata=self._metadata):
                body += chunk
        except grpc.RpcError as exc:
            raise self._failure(exc, method) from None
        return body

    def watch(self, method: str, **args: Any) -> Iterator[Any]:
        """Invoke a method whose answer is a stream of events; yields each decoded event."""
        request = codec.encode({"method": method, "args": args})
        try:
            for message in self._watch(request, metadata=self._metadata):
                yield codec.decode(message)
        except grpc.RpcError as exc:
            raise self._failure(exc, method) from None

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """The node's health answer (no token needed)."""
        answer: dict[str, Any] = self.call("health", timeout=timeout)
        return answer

    def send(self, party: str, key: str, payload: Any, deadline: float = 60.0) -> bool:
        """Have the node deliver `payload` to `party` under `key`, a `job/task/tag` key of a job of ours.

        The user must be a member of the job's project (analyst or admin); the node adds the project's token.
        """
        answer = self.upload("send", codec.encode_parts(payload), party=party, key=key, deadline=deadline)
        return bool(answer["delivered"])

    def recv(self, party: str, key: str, timeout: float = 60.0) -> Any:
        """The next payload from `party` under `key` (of a job of a project the user is in) in the mailbox."""
        return codec.decode(self.download("recv", party=party, key=key, timeout=timeout))

    def _failure(self, exc: grpc.RpcError, method: str) -> FedbenchError:
        """The node's own error if it answered; else `NodeUnavailable` in plain words, the transport's logged."""
        status = unanswered(exc)
        if status is None:
            return error_from_rpc(exc, what=f"node at {self.address} ({method})")
        detail = f"{method}: {status.name}: {exc.details()}"
        _log.debug("the node at %s did not answer: %s", self.address, detail)
        who = f"Your node ({self.party})" if self.party else "Your node"
        command = self.start_command
        if status == grpc.StatusCode.DEADLINE_EXCEEDED:
            log = f" (its log: {self.log_file})" if self.log_file is not None else ""
            message = (
                f"{who} at {self.address} did not answer in time: it may be busy or stuck. Try again; if this "
                f"keeps happening, look at its log{log} or restart it."
            )
        else:
            how = (
                f"Start it with `{command}`"
                if command
                else "Start it (`fedbench node start --home <its home>`, or `fedbench sandbox up` for the local "
                "sandbox)"
            )
            message = f"{who} is not running (nothing answers at {self.address}). {how}, then try again."
        return NodeUnavailable(message, command=command, detail=detail)
