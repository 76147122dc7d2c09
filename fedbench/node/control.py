"""The control API: how a local kernel (notebook, dashboard, CLI) talks to its own party node.

It listens on loopback only and every call but `health` and `version` must carry the node's API token
(`authorization: Bearer <token>`, the token read from the 0600 file in the node home). Three raw-bytes RPCs
cover every method: `Call` (small request, small answer), `Upload` (a streamed body, e.g. a table to register
or a payload to send) and `Download` (a streamed answer, e.g. a received payload or a table).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from fedbench import __version__
from fedbench.errors import CodecError, ConfigError, NotFound, Unauthenticated
from fedbench.net import codec
from fedbench.net.rpc import chunked, guarded, guarded_stream
from fedbench.store.tables import read_table_source, table_to_parquet_bytes

if TYPE_CHECKING:
    from fedbench.node.server import PartyNode

__all__ = ["CONTROL_SERVICE", "ControlService", "MAX_UPLOAD_BYTES"]

CONTROL_SERVICE = "fedbench.Control"
MAX_UPLOAD_BYTES = 16 << 30
_OPEN_METHODS = {"health", "version"}


class ControlService:
    """Dispatches control-API methods to the node; each method is a plain function of named arguments."""

    def __init__(self, node: PartyNode) -> None:
        self.node = node
        self._calls: dict[str, Callable[..., Any]] = {
            "health": self.health,
            "version": lambda: {"version": __version__},
            "peers": self.peers,
            "ping_peer": self.ping_peer,
            "datasets.list": lambda: [d.model_dump(mode="json") for d in node.datasets.list()],
            "datasets.get": lambda name: node.datasets.get(name).model_dump(mode="json"),
            "datasets.preview": lambda name, n=10: table_to_parquet_bytes(node.datasets.preview(name, n)),
            "datasets.summary": lambda name: table_to_parquet_bytes(
                node.datasets.summary(name).reset_index()
            ),
            "datasets.delete": lambda name: node.datasets.delete(name),
        }
        self._uploads: dict[str, Callable[..., Any]] = {
            "datasets.register": self.register_dataset,
            "send": self.send,
        }
        self._downloads: dict[str, Callable[..., list[bytes | memoryview]]] = {
            "recv": self.recv,
            "datasets.load": lambda name: [table_to_parquet_bytes(node.datasets.load(name))],
        }

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic gRPC handler (raw bytes) for the control server."""
        return grpc.method_handlers_generic_handler(
            CONTROL_SERVICE,
            {
                "Call": grpc.unary_unary_rpc_method_handler(guarded(self._call)),
                "Upload": grpc.stream_unary_rpc_method_handler(guarded(self._upload)),
                "Download": grpc.unary_stream_rpc_method_handler(guarded_stream(self._download)),
            },
        )

    def health(self) -> dict[str, Any]:
        """Liveness and identity of the node."""
        config = self.node.config
        return {
            "ok": True,
            "party": config.party,
            "version": __version__,
            "federation_address": config.federation_address,
            "peers": sorted(config.peers),
        }

    def peers(self) -> list[dict[str, str]]:
        """The configured peers and their addresses."""
        return [{"party": p, "address": a} for p, a in sorted(self.node.config.peers.items())]

    def ping_peer(self, party: str, timeout: float = 5.0) -> dict[str, Any]:
        """A live check of one peer through the real mutual-TLS channel."""
        return self.node.ping_peer(party, timeout)

    def register_dataset(
        self, data: bytes, name: str, id_column: str, label_column: str | None = None
    ) -> Any:
        """Register an uploaded parquet table as a dataset of this party."""
        table = read_table_source(data, fmt="parquet")
        info = self.node.datasets.register(table, name=name, id_column=id_column, label_column=label_column)
        return info.model_dump(mode="json")

    def send(self, data: bytes, party: str, key: str, deadline: float = 60.0) -> dict[str, bool]:
        """Forward an already encoded payload to a peer (validated first, so we never relay garbage)."""
        codec.decode(data)
        delivered = self.node.peer(party).push_encoded(key, [data], deadline=deadline)
        return {"delivered": delivered}

    def recv(self, party: str, key: str, timeout: float = 60.0) -> list[bytes | memoryview]:
        """Wait for a message in the mailbox and hand it over encoded."""
        return codec.encode_parts(self.node.mailbox.get(party, key, timeout))

    def _authorize(self, method: str, context: grpc.ServicerContext) -> None:
        if method in _OPEN_METHODS:
            return
        given = dict(context.invocation_metadata()).get("authorization", "")
        expected = f"Bearer {self.node.api_token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthenticated(
                "missing or wrong control-API token; use fedbench.connect(home=...) on the node's machine "
                "(it reads the token from <home>/api_token)"
            )

    def _lookup(self, table: dict[str, Callable[..., Any]], method: str) -> Callable[..., Any]:
        if method not in table:
            raise NotFound(f"unknown control method {method!r}; available: {sorted(table)}")
        return table[method]

    @staticmethod
    def _request(data: bytes) -> tuple[str, dict[str, Any]]:
        request = codec.decode(data)
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            raise CodecError("a control request is {'method': str, 'args': dict}")
        args = request.get("args") or {}
        if not isinstance(args, dict):
            raise CodecError("control request args must be a dict")
        return request["method"], args

    def _call(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        method, args = self._request(data)
        self._authorize(method, context)
        return codec.encode(_invoke(self._lookup(self._calls, method), args))

    def _upload(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        method = metadata.get("fb-method", "")
        self._authorize(method, context)
        target = self._lookup(self._uploads, method)
        try:
            args = json.loads(metadata.get("fb-args", "{}"))
        except ValueError:
            raise CodecError("fb-args metadata must be a JSON object") from None
        body = bytearray()
        for chunk in chunks:
            body += chunk
            if len(body) > MAX_UPLOAD_BYTES:
                raise CodecError(f"upload over {MAX_UPLOAD_BYTES} bytes")
        return codec.encode(_invoke(target, {**args, "data": bytes(body)}))

    def _download(self, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        method, args = self._request(data)
        self._authorize(method, context)
        yield from chunked(_invoke(self._lookup(self._downloads, method), args))


def _invoke(function: Callable[..., Any], args: dict[str, Any]) -> Any:
    try:
        return function(**args)
    except TypeError as exc:
        if "argument" in str(exc):
            raise ConfigError(f"bad arguments for control method: {exc}") from None
        raise
