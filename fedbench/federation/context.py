"""The federation context a role function receives as `ctx`: the only way protocol code talks to peers.

It hides where the code runs: `ctx.peer("host").send(tag, obj)` / `.recv(tag, int)` talk to the party playing
a role, under keys derived from job, step and iteration (`ctx.iter(i)`), so rounds never collide;
`ctx.broadcast(role, tag, obj)` and `ctx.gather(role, tag, kind)` do the same with every party of a role. Every
wait is sliced (`channel.Channel`), so cancellation is seen within about a second, and a peer's error record
is raised as the class of its code. Inputs are opened and outputs written through it (only what the node
resolved for this task: the project's authorised datasets and earlier artifacts of the project); progress,
metrics, logs and cancellation go back to the node. `ctx.psi_releases()` reads one thing of the node's own
records: what each PSI of the project released to whom.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from fedbench.errors import ConfigError
from fedbench.federation.channel import Channel, Message
from fedbench.federation.errors import Cancelled
from fedbench.net.transport import Transport, message_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Cancelled", "Context", "Metrics", "PeerHandle", "PsiRelease", "TaskIO", "keyed_rng"]

T = TypeVar("T")


@dataclass(frozen=True)
class PsiRelease:
    """One PSI step of the project as our node recorded it: its two parties, who its policy gave the rows, ours.

    `released_to` follows the release the PSI ran under (our own metrics output of it); `our_rows` reads our rows
    in its intersection, or is None when the policy gave us none (then we cannot know which rows were released).
    """

    job_id: str
    step: str
    parties: tuple[str, ...]
    released_to: tuple[str, ...]
    our_rows: Callable[[], pd.DataFrame] | None


@dataclass(frozen=True)
class TaskIO:
    """How a context reads inputs, writes outputs and reports; the worker supplies real ones, tests fakes."""

    read_input: Callable[[str], Any]
    write_output: Callable[[str, Any], None]
    emit: Callable[[dict[str, Any]], None]
    is_cancelled: Callable[[], bool]
    psi_releases: Callable[[], list[PsiRelease]] | None = None
    """Our node's records of the project's PSI outputs; None where there is no node (then nothing was released)."""


class PeerHandle:
    """The party playing one role, seen from a context: send and receive under the context's namespace."""

    def __init__(self, context: Context, party: str) -> None:
        self._context = context
        self.party = party

    def channel(self, tag: str, timeout: float | None = None) -> Channel:
        """The message stream with this party under `tag` (one key, FIFO), for a protocol of many messages."""
        context = self._context
        return Channel(
            context.transport,
            self.party,
            context.key(tag),
            timeout=context.recv_timeout if timeout is None else timeout,
            is_cancelled=context.io.is_cancelled,
            step=context.step,
        )

    def send(self, tag: str, obj: Any) -> None:
        """Send `obj` to this party under `tag` (within the current step and iteration)."""
        self.channel(tag).send(obj)

    @overload
    def recv(self, tag: str, expect: None = None, *, timeout: float | None = None) -> Any: ...

    @overload
    def recv(self, tag: str, expect: type[T], *, timeout: float | None = None) -> T: ...

    def recv(self, tag: str, expect: type[Any] | None = None, *, timeout: float | None = None) -> Any:
        """What this party sent under `tag`, checked to be an `expect` when given (else `UnexpectedMessage`).

        Waits in short slices so cancellation is prompt; an error record from the peer is raised as its class.
        """
        return self.channel(tag).recv(expect, timeout=timeout, what=f"its {tag!r} message")

    def recv_message(self, tag: str, timeout: float | None = None) -> Message:
        """What this party sent under `tag` as a value: its content, or the error record it sent instead."""
        return self.channel(tag).recv_message(timeout)


class Metrics:
    """Per-step metrics: `ctx.metrics.log("loss", 0.41, step=3)` streams to the run's metrics table."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self._emit = emit

    def log(self, name: str, value: float, step: int | None = None) -> None:
        """Record one value of a metric (at an iteration `step`)."""
        self._emit({"type": "metric", "name": name, "value": float(value), "step": step})


def keyed_rng(key: bytes, purpose: str, seed: int) -> np.random.Generator:
    """The generator `Context.private_rng` gives a party holding `key`: `seed` keyed with HMAC-SHA256."""
    digest = hmac.new(key, f"{purpose}\0{seed}".encode(), hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


class Context:
    """What a role function sees: its party, role, params, peers, inputs, outputs and reporting."""

    def __init__(
        self,
        *,
        party: str,
        role: str,
        roles: Mapping[str, list[str]],
        job_id: str,
        step: str,
        params: Any,
        transport: Transport,
        io: TaskIO,
        namespace: str = "",
        recv_timeout: float = 600.0,
        project: Mapping[str, Any] | None = None,
        psi_key: bytes = b"",
        private_key: bytes = b"",
    ) -> None:
        self.party = party
        self.role = role
        self.roles = {r: list(p) for r, p in roles.items()}
        self.job_id = job_id
        self.step = step
        self.params = params
        self.transport = transport
        self.io = io
        self.namespace = namespace
        self.recv_timeout = recv_timeout
        self.project: dict[str, Any] = dict(project or {})
        """The project's id, initiator and terms (uses, quotas, PSI release policy)."""
        self.psi_key = psi_key
        """The per-project key PSI hashes IDs with (derived from the project token, never sent)."""
        self._private_key = private_key
        self.metrics = Metrics(io.emit)

    def key(self, tag: str) -> str:
        """The message key of `tag` in this step and iteration."""
        return message_key(self.job_id, self.step, f"{self.namespace}{tag}")

    def peer(self, role: str) -> PeerHandle:
        """The one party playing `role` (ConfigError if none or several)."""
        parties = self.roles.get(role, [])
        if not parties:
            raise ConfigError(
                f"no party plays role {role!r} in this job (an optional role?); check ctx.peers({role!r}) first"
            )
        if len(parties) != 1:
            raise ConfigError(f"role {role!r} is played by {parties}; use ctx.peers({role!r}) for several")
        return PeerHandle(self, parties[0])

    def peers(self, role: str) -> list[PeerHandle]:
        """Every party playing `role`."""
        return [PeerHandle(self, p) for p in self.roles.get(role, [])]

    def broadcast(self, role: str, tag: str, obj: Any) -> None:
        """Send `obj` under `tag` to every party playing `role` (none when nobody plays it)."""
        for handle in self.peers(role):
            handle.send(tag, obj)

    @overload
    def gather(self, role: str, tag: str, expect: None = None) -> dict[str, Any]: ...

    @overload
    def gather(self, role: str, tag: str, expect: type[T]) -> dict[str, T]: ...

    def gather(self, role: str, tag: str, expect: type[Any] | None = None) -> dict[str, Any]:
        """What every party playing `role` sent under `tag`, by party, each checked like `PeerHandle.recv`."""
        return {handle.party: handle.recv(tag, expect) for handle in self.peers(role)}

    def iter(self, i: int) -> Context:
        """A sub-context whose message keys are namespaced by iteration `i`."""
        return Context(
            party=self.party,
            role=self.role,
            roles=self.roles,
            job_id=self.job_id,
            step=self.step,
            params=self.params,
            transport=self.transport,
            io=self.io,
            namespace=f"{self.namespace}i{i}.",
            recv_timeout=self.recv_timeout,
            project=self.project,
            psi_key=self.psi_key,
            private_key=self._private_key,
        )

    def private_rng(self, purpose: str, seed: int) -> np.random.Generator:
        """A random generator only this party can reproduce: `seed` keyed with our own per-project key.

        For draws whose outcome a peer sees but must not be able to predict, e.g. a stratified split: drawn
        from the public `seed` alone, the assignment would let the peer test guesses of our labels.
        """
        if not self._private_key:
            raise ConfigError("this context has no private key: a node's worker or `simulate` gives one")
        return keyed_rng(self._private_key, purpose, seed)

    def input(self, name: str) -> Any:
        """An input of this step: a DataFrame for tables, the stored value for models and metrics."""
        return self.io.read_input(name)

    def psi_releases(self) -> list[PsiRelease]:
        """Every PSI of this project that released rows, as our node recorded it (never from a peer)."""
        return [] if self.io.psi_releases is None else self.io.psi_releases()

    def optional_input(self, name: str) -> Any:
        """An optional input of this step, or None when the step was not given it."""
        try:
            return self.io.read_input(name)
        except ConfigError:
            return None

    def output(self, name: str, value: Any) -> None:
        """Write an output of this step (a DataFrame for tables; a codec-encodable value otherwise)."""
        self.io.write_output(name, value)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far this step is, from 0 to 1."""
        self.io.emit(
            {"type": "progress", "fraction": max(0.0, min(1.0, float(fraction))), "message": message}
        )

    def log(self, message: str) -> None:
        """A line in the run's log."""
        self.io.emit({"type": "log", "message": str(message)})

    def warn(self, message: str) -> None:
        """A warning about this step's result, kept with the run and shown beside it; the step still succeeds."""
        self.io.emit({"type": "warning", "message": str(message)})

    @property
    def cancelled(self) -> bool:
        """Whether the task was asked to stop."""
        return self.io.is_cancelled()

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the task was asked to stop (call it in long loops)."""
        if self.io.is_cancelled():
            raise Cancelled(f"step {self.step!r} was cancelled")
