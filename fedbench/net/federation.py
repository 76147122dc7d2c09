"""The federation service a party node serves to its peers over mutual TLS: Ping, Push, Deliver, Request.

Before anything is read, each call is checked: the TLS layer has already verified the client certificate
against the federation CA; here we check that it is not revoked, that the party it names is the party the
call claims to come from, and that this party is one of our configured peers. A message (Push, streamed, or
Deliver, one call) is then admitted by the node (it names a job running here and carries that job's project
token), its declared size is checked against the message limit and held against the mailbox bound, and only
then is the payload read, into a buffer that grows as chunks arrive; it is decoded with the safe codec under
size and type limits and filed in the mailbox exactly once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from fedbench import __version__
from fedbench.errors import CodecError, FedbenchError, Refused, Unauthenticated
from fedbench.net import codec
from fedbench.net.certs import RevocationList, certificate_serial, peer_identity
from fedbench.net.mailbox import Mailbox
from fedbench.net.rpc import guarded

__all__ = ["FEDERATION_SERVICE", "FederationService", "PushHeader", "RequestHandler"]

FEDERATION_SERVICE = "fedbench.Federation"
MAX_KEY_LENGTH = 512
MAX_REQUEST_BYTES = 16 << 20
_REQUEST_LIMITS = codec.CodecLimits(max_bytes=MAX_REQUEST_BYTES, max_depth=16, max_items=1_000_000)

RequestHandler = Callable[[str, str, "str | None", "str | None", Any], Any]
"""(verified sender, action, project id, token, body) -> answer; raises our errors to refuse."""


@dataclass(frozen=True)
class PushHeader:
    """What a Push call declares in its metadata before the payload streams in."""

    sender: str
    key: str
    message_id: str
    size: int
    project: str = ""
    token: str = ""

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> PushHeader:
        """Parse and bound the call metadata; a missing or malformed field is a codec error."""
        try:
            size = int(metadata["fb-size"])
            header = cls(
                metadata["fb-party"],
                metadata["fb-key"],
                metadata["fb-msg-id"],
                size,
                metadata.get("fb-project", ""),
                metadata.get("fb-token", ""),
            )
        except (KeyError, ValueError) as exc:
            raise CodecError(f"malformed push header: missing or invalid field {exc}") from None
        if size < 0 or not header.key or len(header.key) > MAX_KEY_LENGTH or not header.message_id:
            raise CodecError("malformed push header: empty key or message id, or negative size")
        return header

    def metadata(self) -> list[tuple[str, str]]:
        """The header as call metadata."""
        fields = [
            ("fb-party", self.sender),
            ("fb-key", self.key),
            ("fb-msg-id", self.message_id),
            ("fb-size", str(self.size)),
        ]
        if self.project:
            fields += [("fb-project", self.project), ("fb-token", self.token)]
        return fields


class FederationService:
    """Serves Ping and Push for one party node.

    `admit_push` is the node's admission of a message (raises to refuse; every push passes it, streamed or
    unary); `on_refusal` lets the node audit refused calls.
    """

    def __init__(
        self,
        party: str,
        peers: Callable[[], Mapping[str, str]],
        mailbox: Mailbox,
        revocations: RevocationList | None,
        limits: codec.CodecLimits,
        admit_push: Callable[[str, PushHeader], None],
        on_refusal: Callable[[str, str], None] | None = None,
        on_request: RequestHandler | None = None,
    ) -> None:
        self.party = party
        self._peers = peers
        self.mailbox = mailbox
        self._revocations = revocations
        self._limits = limits
        self._on_refusal = on_refusal
        self._on_request = on_request
        self._admit_push = admit_push

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic gRPC handler (raw bytes in and out) for `grpc.Server.add_generic_rpc_handlers`."""
        return grpc.method_handlers_generic_handler(
            FEDERATION_SERVICE,
            {
                "Ping": grpc.unary_unary_rpc_method_handler(guarded(self.ping)),
                "Push": grpc.stream_unary_rpc_method_handler(guarded(self.push)),
                "Deliver": grpc.unary_unary_rpc_method_handler(guarded(self.deliver)),
                "Request": grpc.unary_unary_rpc_method_handler(guarded(self.request)),
            },
        )

    def authenticate(self, context: grpc.ServicerContext, claimed: str | None) -> str:
        """The verified party name of the caller; refuses revoked, mismatched or unknown identities."""
        try:
            return self._authenticate(context, claimed)
        except FedbenchError as exc:
            if self._on_refusal is not None:
                self._on_refusal(claimed or "?", str(exc))
            raise

    def _authenticate(self, context: grpc.ServicerContext, claimed: str | None) -> str:
        certs = context.auth_context().get("x509_pem_cert")
        if not certs:
            raise Unauthenticated("no client certificate: connect with mutual TLS using a federation cert")
        identity, serial = _certificate_facts(certs[0])
        if self._revocations is not None:
            self._revocations.refresh()
            if self._revocations.is_revoked(serial):
                raise Unauthenticated(
                    f"the certificate of {identity!r} has been revoked by the federation CA"
                )
        if claimed is not None and claimed != identity:
            raise Unauthenticated(
                f"the request claims to come from {claimed!r} but its certificate names {identity!r}"
            )
        if identity not in self._peers():
            raise Refused(f"party {identity!r} is not a configured peer of {self.party!r}")
        return identity

    def ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Answer a reachability check with our party name and version."""
        metadata = dict(context.invocation_metadata())
        caller = self.authenticate(context, metadata.get("fb-party"))
        return codec.encode({"party": self.party, "version": __version__, "caller": caller})

    def request(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        """Answer a peer's request (project negotiation, job admission) through the node's handler."""
        metadata = dict(context.invocation_metadata())
        sender = self.authenticate(context, metadata.get("fb-party"))
        if len(body) > MAX_REQUEST_BYTES:
            raise CodecError(f"a request is limited to {MAX_REQUEST_BYTES} bytes; stream data with Push")
        message = codec.decode(body, _REQUEST_LIMITS)
        if not isinstance(message, dict) or not isinstance(message.get("action"), str):
            raise CodecError(
                "a request is {'action': str, 'project': str|None, 'token': str|None, 'body': dict}"
            )
        if self._on_request is None:
            raise Refused(f"{self.party!r} answers no requests")
        answer = self._on_request(
            sender, message["action"], message.get("project"), message.get("token"), message.get("body") or {}
        )
        return codec.encode(answer)

    def deliver(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        """Receive a small message in one call (cheaper than a stream for the many small messages)."""
        return self.push([body], context)

    def push(self, chunks: Iterable[bytes], context: grpc.ServicerContext) -> bytes:
        """Receive one message in chunks, validate it and file it in the mailbox.

        Every check runs before a byte of the payload is read: identity, admission (the node's: a running job
        of ours, its project's token), the size limit, and room in the mailbox for the declared size. The
        buffer then grows with the bytes that arrive, so a declared size alone allocates nothing.
        """
        header = PushHeader.from_metadata(dict(context.invocation_metadata()))
        self.authenticate(context, header.sender)
        self._admit_push(header.sender, header)
        if header.size > self._limits.max_bytes:
            raise self._refuse(
                header.sender,
                f"message of {header.size} bytes is over this node's limit of {self._limits.max_bytes} bytes",
            )
        if self.mailbox.seen(header.message_id):
            return codec.encode({"delivered": False, "duplicate": True})
        try:
            hold = self.mailbox.hold(header.size)
        except Refused as exc:
            raise self._refuse(header.sender, str(exc)) from None
        with hold:
            buffer = bytearray()
            for chunk in chunks:
                if len(buffer) + len(chunk) > header.size:
                    raise CodecError(f"message is longer than its declared size of {header.size} bytes")
                buffer += chunk
            if len(buffer) != header.size:
                raise CodecError(f"message ended after {len(buffer)} of its declared {header.size} bytes")
            payload = codec.decode(buffer, self._limits)
            delivered = self.mailbox.put(header.sender, header.key, header.message_id, payload, header.size)
        return codec.encode({"delivered": delivered, "duplicate": not delivered})

    def _refuse(self, sender: str, reason: str) -> Refused:
        """Report a refused push to the node (to audit it) and return the error to raise."""
        if self._on_refusal is not None:
            self._on_refusal(sender, reason)
        return Refused(reason)


@functools.lru_cache(maxsize=256)
def _certificate_facts(pem: bytes) -> tuple[str, int]:
    """Party name and serial of a peer certificate, parsed once per distinct certificate."""
    return peer_identity(pem), certificate_serial(pem)
