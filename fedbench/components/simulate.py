"""`simulate(component, tables_by_party, **params)`: every role of a component in one process, no nodes.

Each party runs its role function in its own thread, over the in-memory transport (payloads pass the same
codec as on the wire), with inputs taken from `tables_by_party` and outputs checked against the component's
declared ports as a worker would. It is how tests exercise protocol code and how a component author tries a
new component before any node runs it. A failure in any role stops the other roles and is raised as
`RoleFailed`, naming the party. A role stops when it waits for a message that is not there (within a second),
so a party that detects the same problem from a message already sent to it still fails with its own reason
(both sides of a symmetric check report it); one that computes without waiting is cancelled a few seconds later.

Two optional hooks show what a node would keep: `record=` collects every message sent between parties (for
privacy checks of what a party received) and `events=` every progress, metric, log and warning event.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedbench.components.spec import Component, get
from fedbench.errors import ConfigError, FedbenchError, RecvTimeout
from fedbench.federation import Cancelled, Context, PsiRelease, TaskIO
from fedbench.federation.context import keyed_rng
from fedbench.net import codec
from fedbench.net.transport import InMemoryFederation, Transport

__all__ = ["RecordedMessage", "RoleFailed", "SimulationTimeout", "simulate", "simulated_private_rng"]

_ITERATION = re.compile(r"^(i\d+\.)*")
_SLICE = 0.5
"""How long one wait for a message lasts before the simulation checks whether it was stopped."""
_SETTLE = 5.0
"""How long after a failure the other roles may still finish what they are doing before they see `cancelled`."""
_GRACE = 30.0
"""How long the other roles get to stop after one failed, before the failure is raised regardless."""


@dataclass(frozen=True)
class RecordedMessage:
    """One message sent between two parties in a simulation, as the receiver decodes it."""

    sender: str
    receiver: str
    key: str
    payload: Any

    @property
    def tag(self) -> str:
        """The tag the role function used (the key's last part, without iteration prefixes such as `i3.`)."""
        return _ITERATION.sub("", self.key.rsplit("/", 1)[-1])


class RoleFailed(FedbenchError):
    """A role of a simulated component raised: `party` and `role` say where, `error` is what it raised.

    `errors` holds every party's own error (not the cancellations that followed the first one) and `outputs`
    what each party wrote before the simulation stopped.
    """

    code = "role_failed"

    def __init__(
        self,
        message: str,
        *,
        party: str,
        role: str,
        error: BaseException,
        errors: dict[str, BaseException],
        outputs: dict[str, dict[str, Any]],
    ) -> None:
        super().__init__(message)
        self.party = party
        self.role = role
        self.error = error
        self.errors = errors
        self.outputs = outputs


class SimulationTimeout(FedbenchError):
    """A simulation did not finish within its timeout; `parties` are those whose role was still running."""

    code = "simulation_timeout"

    def __init__(self, message: str, *, parties: list[str], outputs: dict[str, dict[str, Any]]) -> None:
        super().__init__(message)
        self.parties = parties
        self.outputs = outputs


def simulate(
    component: str | Component,
    tables_by_party: Mapping[str, pd.DataFrame | Mapping[str, Any]],
    *,
    roles: Mapping[str, str | Sequence[str]] | None = None,
    project: Mapping[str, Any] | None = None,
    record: list[RecordedMessage] | None = None,
    events: list[tuple[str, dict[str, Any]]] | None = None,
    timeout: float = 600.0,
    **params: Any,
) -> dict[str, dict[str, Any]]:
    """Run every role of `component` in this process and return each party's outputs, `{party: {name: value}}`.

    `tables_by_party` gives each party's inputs: a DataFrame for the component's one required table input, or
    a dict of input name to value (a table, or a model/metrics value from an earlier simulation); a party that
    brings nothing (an arbiter) may be left out. `roles` maps each role to its party (or parties); by default
    each required role is played by a party named after it, and so is each optional role (e.g. `arbiter`)
    named in `tables_by_party`. `project` is the project's id, name, initiator and terms as a node would give
    them (a default lets a PSI release to both parties); every table input counts as rows a PSI of the
    project released to every party. `params` are validated by the component's params model (ParamsError).

    Raises `RoleFailed` naming the first party whose role raised (the others are stopped), or
    `SimulationTimeout` when the roles are still running after `timeout` seconds.
    """
    spec = get(component) if isinstance(component, str) else component
    validated = spec.validate_params(params)
    missing = [role for role in spec.roles if role not in spec.functions]
    if missing:
        raise ConfigError(
            f"component {spec.name!r} declares roles {missing} without a function: "
            f"declare one with @component.role({missing[0]!r})"
        )
    played = _roles(spec, roles, tables_by_party)
    inputs = {
        party: _inputs(spec, party, tables_by_party.get(party))
        for parties in played.values()
        for party in parties
    }
    setting = dict(project) if project is not None else _project(spec, played, inputs)
    return _Simulation(spec, validated, played, inputs, setting, record, events).run(timeout)


class _Simulation:
    """One simulation: the parties' contexts and threads, the failures they raise and the outputs they write."""

    def __init__(
        self,
        spec: Component,
        params: Any,
        roles: dict[str, list[str]],
        inputs: dict[str, dict[str, Any]],
        project: dict[str, Any],
        record: list[RecordedMessage] | None,
        events: list[tuple[str, dict[str, Any]]] | None,
    ) -> None:
        self.spec = spec
        self.params = params
        self.roles = roles
        self.role_of = {party: role for role, parties in roles.items() for party in parties}
        self.parties = list(self.role_of)
        self.inputs = inputs
        self.project = project
        self.record = record
        self.events = events
        self.federation = InMemoryFederation(self.parties)
        self.failed = threading.Event()
        """Set when a role failed: waits for messages that are not there end with Cancelled."""
        self.cancelled = threading.Event()
        """Set a little later, or at the timeout: `ctx.cancelled` turns true everywhere."""
        self.lock = threading.Lock()
        self.failures: list[tuple[str, BaseException]] = []
        self.told: set[str] = set()
        """Parties that received a peer's error record: their failure repeats the peer's, it is not their own."""
        self.outputs: dict[str, dict[str, Any]] = {party: {} for party in self.parties}

    def run(self, timeout: float) -> dict[str, dict[str, Any]]:
        """Start one thread per party, wait for them, raise the first failure or return the outputs."""
        threads = {
            party: threading.Thread(
                target=self.play,
                args=(party, timeout),
                name=f"simulate-{self.spec.name}-{party}",
                daemon=True,
            )
            for party in self.parties
        }
        for thread in threads.values():
            thread.start()
        try:
            running = self.wait(threads, timeout)
        finally:
            if any(thread.is_alive() for thread in threads.values()):
                self.failed.set()
                self.cancelled.set()
        if self.failures:
            raise _failure(self.spec, self.role_of, self.failures, self.told, self.outputs)
        if running:
            raise SimulationTimeout(
                f"the simulation of {self.spec.name!r} did not finish within {timeout:g} s: {', '.join(running)} "
                "still running; check that every role sends what the others wait for, or give a longer timeout",
                parties=running,
                outputs=self.outputs,
            )
        return self.outputs

    def wait(self, threads: dict[str, threading.Thread], timeout: float) -> list[str]:
        """Wait for every thread, or the timeout, or a failure's grace period; the parties still running."""
        deadline = time.monotonic() + timeout
        failed_at: float | None = None
        running = list(threads)
        while running and time.monotonic() < deadline:
            if failed_at is None and self.failed.is_set():
                failed_at = time.monotonic()
                deadline = min(deadline, failed_at + _GRACE)
            if failed_at is not None and time.monotonic() >= failed_at + _SETTLE:
                self.cancelled.set()
            threads[running[0]].join(min(_SLICE, max(0.0, deadline - time.monotonic())))
            running = [party for party, thread in threads.items() if thread.is_alive()]
        return running

    def play(self, party: str, timeout: float) -> None:
        """Run one party's role function; what it raises is kept and stops the others."""
        try:
            self.spec.functions[self.role_of[party]](self.context(party, timeout), self.params)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported to the caller
            with self.lock:
                self.failures.append((party, exc))
            self.failed.set()

    def context(self, party: str, timeout: float) -> Context:
        """The `ctx` of one party, as a worker would build it, over the in-memory federation."""
        return Context(
            party=party,
            role=self.role_of[party],
            roles=self.roles,
            job_id="simulation",
            step=self.spec.name,
            params=self.params,
            transport=_Transport(
                self.federation.transport(party), self.failed, self.record, self.lock, self.told
            ),
            io=TaskIO(
                read_input=lambda name: self.read(party, name),
                write_output=lambda name, value: self.write(party, name, value),
                emit=lambda event: self.emit(party, event),
                is_cancelled=self.cancelled.is_set,
                psi_releases=lambda: self.releases(party),
            ),
            recv_timeout=timeout,
            project=self.project,
            psi_key=hashlib.sha256(f"fedbench-simulation|{self.project.get('id', '')}".encode()).digest(),
            private_key=_private_key(party),
        )

    def read(self, party: str, name: str) -> Any:
        """An input of the party: a fresh copy, as a worker reads a stored artifact each time."""
        self.spec.port(name, output=False)
        if name not in self.inputs[party]:
            raise ConfigError(f"{party} was given no input {name!r} in this simulation")
        value = self.inputs[party][name]
        return value.copy() if isinstance(value, pd.DataFrame) else codec.decode(codec.encode(value))

    def write(self, party: str, name: str, value: Any) -> None:
        """Keep an output, checked as a worker checks it (a declared port; a DataFrame for a table; encodable)."""
        port = self.spec.port(name, output=True)
        if port.kind == "table":
            if not isinstance(value, pd.DataFrame):
                raise ConfigError(
                    f"output {name!r} is a table: write a DataFrame, not {type(value).__name__}"
                )
            self.outputs[party][name] = value.copy()
        else:
            self.outputs[party][name] = codec.decode(codec.encode(value))

    def emit(self, party: str, event: dict[str, Any]) -> None:
        """Keep a progress, metric, log or warning event when the caller asked for them (`events=`)."""
        if self.events is not None:
            with self.lock:
                self.events.append((party, dict(event)))

    def releases(self, party: str) -> list[PsiRelease]:
        """Every table input of the party, as rows a PSI of the project released to every party."""
        tables = [v for v in self.inputs[party].values() if isinstance(v, pd.DataFrame)]
        if not tables:
            return []
        rows = pd.concat(tables)
        return [
            PsiRelease("simulation", "psi", tuple(self.parties), tuple(self.parties), lambda: rows.copy())
        ]


def _private_key(party: str) -> bytes:
    """The simulated party's own key (a node's is `NodeHome.party_key`): fixed, so simulations repeat."""
    return hashlib.sha256(f"fedbench-simulation-private|{party}".encode()).digest()


def simulated_private_rng(party: str, purpose: str, seed: int) -> np.random.Generator:
    """The generator `ctx.private_rng(purpose, seed)` gives `party` in `simulate`: for tests replaying its draws."""
    return keyed_rng(_private_key(party), purpose, seed)


def _failure(
    spec: Component,
    party_role: dict[str, str],
    failures: list[tuple[str, BaseException]],
    told: set[str],
    outputs: dict[str, dict[str, Any]],
) -> RoleFailed:
    """The first party's own failure: not a cancellation it caused in the others, nor its error record raised
    by a peer that received it (both can happen before the failing thread itself returns)."""
    own = [
        (party, error) for party, error in failures if not isinstance(error, Cancelled) and party not in told
    ]
    own = own or [(party, error) for party, error in failures if not isinstance(error, Cancelled)] or failures
    errors = dict(own)
    party, error = own[0]
    return RoleFailed(
        f"{party} (role {party_role[party]}) failed in the simulation of {spec.name!r}: {error}",
        party=party,
        role=party_role[party],
        error=error,
        errors=errors,
        outputs=outputs,
    )


def _roles(
    spec: Component,
    roles: Mapping[str, str | Sequence[str]] | None,
    tables_by_party: Mapping[str, Any],
) -> dict[str, list[str]]:
    """Each role's parties: as given, or named after the roles (optional ones only when given inputs)."""
    if roles is None:
        played = {
            role: [role] for role in spec.roles if role not in spec.optional_roles or role in tables_by_party
        }
    else:
        played = {
            role: [parties] if isinstance(parties, str) else list(parties) for role, parties in roles.items()
        }
    unknown = sorted(set(played) - set(spec.roles))
    if unknown:
        raise ConfigError(f"component {spec.name!r} has roles {list(spec.roles)}, not {unknown}")
    absent = [role for role in spec.required_roles() if not played.get(role)]
    if absent:
        raise ConfigError(f"component {spec.name!r} needs a party for roles {absent}; give them in roles=")
    seen: dict[str, str] = {}
    for role, parties in played.items():
        for party in parties:
            if party in seen:
                raise ConfigError(
                    f"party {party!r} plays both {seen[party]!r} and {role!r}: give each role its own party"
                )
            seen[party] = role
    strangers = sorted(set(tables_by_party) - set(seen))
    if strangers:
        raise ConfigError(
            f"tables were given for {strangers}, who play no role of {spec.name!r}; the parties are {sorted(seen)}"
        )
    return played


def _inputs(spec: Component, party: str, given: pd.DataFrame | Mapping[str, Any] | None) -> dict[str, Any]:
    """One party's inputs by port name: a lone DataFrame is the component's one required table input."""
    if given is None:
        return {}
    if isinstance(given, pd.DataFrame):
        tables = [p.name for p in spec.inputs if p.kind == "table" and not p.optional]
        if len(tables) != 1:
            raise ConfigError(
                f"component {spec.name!r} has {len(tables)} required table inputs {tables}: give {party}'s inputs "
                "as a dict of input name to value"
            )
        return {tables[0]: given}
    for name in given:
        spec.port(name, output=False)
    return dict(given)


def _project(
    spec: Component, played: Mapping[str, list[str]], inputs: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """A project as a node would describe it: the first guest initiates, PSI results go to both parties."""
    initiator = (played.get("guest") or next(iter(played.values())))[0]
    rows = {
        party: max([len(v) for v in values.values() if isinstance(v, pd.DataFrame)], default=0)
        for party, values in inputs.items()
    }
    return {
        "id": "simulation",
        "name": "simulation",
        "initiator": initiator,
        "terms": {
            "uses": [spec.use],
            "release": "both",
            "min_intersection": 0,
            "max_psi_rows": rows,
        },
    }


class _Transport(Transport):
    """A party's in-memory transport that records what it sends and stops waiting once a role has failed."""

    def __init__(
        self,
        inner: Transport,
        failed: threading.Event,
        record: list[RecordedMessage] | None,
        lock: threading.Lock,
        told: set[str],
    ) -> None:
        self.party = inner.party
        self._inner = inner
        self._failed = failed
        self._record = record
        self._lock = lock
        self._told = told

    def send(self, party: str, key: str, payload: Any) -> None:
        """Deliver through the codec; recorded as the receiver will decode it."""
        self._inner.send(party, key, payload)
        if self._record is not None:
            copy = codec.decode(codec.encode(payload))
            with self._lock:
                self._record.append(RecordedMessage(self.party, party, key, copy))

    def recv(self, party: str, key: str, timeout: float = 60.0) -> Any:
        """The next message, noting an error record (a peer's failure sent as a value)."""
        value = self._wait(party, key, timeout)
        if _is_error_record(value):
            with self._lock:
                self._told.add(self.party)
        return value

    def _wait(self, party: str, key: str, timeout: float) -> Any:
        """Wait in short slices; once a role has failed, take a message already there but wait for no other."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if self._failed.is_set():
                try:
                    return self._inner.recv(party, key, timeout=0.0)
                except RecvTimeout:
                    raise Cancelled(
                        f"the simulation stopped while {self.party} waited for {key!r} from {party}"
                    ) from None
            if remaining <= 0:
                raise RecvTimeout(
                    f"no message from {party!r} under key {key!r} within {timeout:g} s; "
                    "check that the peer's role sends it"
                )
            try:
                return self._inner.recv(party, key, timeout=min(_SLICE, remaining))
            except RecvTimeout:
                continue


def _is_error_record(value: Any) -> bool:
    """Whether a message is a party's failure sent as a value: `{"error": code, "reason": text}` on the wire."""
    return (
        isinstance(value, dict) and isinstance(value.get("error"), str) and set(value) <= {"error", "reason"}
    )
