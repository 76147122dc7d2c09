"""The one interface protocol code talks through: `send(party, key, payload)` and `recv(party, key, timeout)`.

Two implementations: `GrpcTransport` (the real mutual-TLS channel between nodes) and `InMemoryFederation`
(every party in one process, for fast unit tests of protocol logic). Both pass payloads through the safe
codec, so a payload that would fail on the wire fails in memory too. Keys are namespaced by job, task and tag
with `message_key`, so messages of different runs never collide.
"""

from __future__ import annotations

import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from fedbench.errors import ConfigError
from fedbench.net import codec
from fedbench.net.mailbox import Mailbox
from fedbench.net.peer import PeerClient

__all__ = ["GrpcTransport", "InMemoryFederation", "Transport", "message_key"]

_KEY_PART = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def message_key(job: str, task: str, tag: str) -> str:
    """The namespaced key of one message: `job/task/tag`, each part a short plain name."""
    for label, part in (("job", job), ("task", task), ("tag", tag)):
        if not _KEY_PART.match(part):
            raise ConfigError(f"{label} {part!r} cannot be part of a message key: use letters, digits, _.:-")
    return f"{job}/{task}/{tag}"


class Transport(ABC):
    """Point-to-point messaging between parties, addressed by party name and key."""

    party: str

    @abstractmethod
    def send(self, party: str, key: str, payload: Any) -> None:
        """Deliver `payload` to `party` under `key`, exactly once."""

    @abstractmethod
    def recv(self, party: str, key: str, timeout: float = 60.0) -> Any:
        """The next payload `party` sent us under `key`, waiting up to `timeout` seconds."""

    def _unknown(self, party: str, known: Mapping[str, object]) -> ConfigError:
        return ConfigError(f"{party!r} is not a peer of {self.party!r}; known peers: {sorted(known)}")


class GrpcTransport(Transport):
    """Sends over the peers' mutual-TLS channels; receives from our node's mailbox (in or out of process).

    With `project` (id, token), every message carries the project's token, as a job's messages must.
    """

    def __init__(
        self,
        party: str,
        peer: Callable[[str], PeerClient],
        inbox: Callable[[str, str, float], Any],
        *,
        send_deadline: float = 60.0,
        project: tuple[str, str] | None = None,
    ) -> None:
        self.party = party
        self._peer = peer
        self._inbox = inbox
        self._send_deadline = send_deadline
        self._project = project

    def send(self, party: str, key: str, payload: Any) -> None:
        """Push to the peer's node, retrying while it is unreachable up to the send deadline."""
        self._peer(party).push(key, payload, deadline=self._send_deadline, project=self._project)

    def recv(self, party: str, key: str, timeout: float = 60.0) -> Any:
        """Wait for the message in our node's mailbox."""
        return self._inbox(party, key, timeout)


class InMemoryFederation:
    """Several parties in one process: `federation.transport("guest")` gives that party's transport."""

    def __init__(self, parties: list[str], limits: codec.CodecLimits = codec.DEFAULT_LIMITS) -> None:
        self._mailboxes = {party: Mailbox() for party in parties}
        self._limits = limits
        self._ids = itertools.count()

    def transport(self, party: str) -> Transport:
        """The transport of one member party."""
        if party not in self._mailboxes:
            raise ConfigError(f"{party!r} is not in this federation: {sorted(self._mailboxes)}")
        return _InMemoryTransport(party, self)

    def _deliver(self, sender: str, receiver: str, key: str, payload: Any) -> None:
        data = codec.encode(payload)
        decoded = codec.decode(data, self._limits)
        self._mailboxes[receiver].put(sender, key, f"m{next(self._ids)}", decoded, len(data))

    def _mailbox(self, party: str) -> Mailbox:
        return self._mailboxes[party]

    def parties(self) -> list[str]:
        """The member parties."""
        return list(self._mailboxes)


class _InMemoryTransport(Transport):
    def __init__(self, party: str, federation: InMemoryFederation) -> None:
        self.party = party
        self._federation = federation

    def send(self, party: str, key: str, payload: Any) -> None:
        if party == self.party or party not in self._federation.parties():
            raise self._unknown(party, {p: None for p in self._federation.parties() if p != self.party})
        self._federation._deliver(self.party, party, key, payload)

    def recv(self, party: str, key: str, timeout: float = 60.0) -> Any:
        return self._federation._mailbox(self.party).get(party, key, timeout)
