"""One round in one process: N clients and the server, real cryptography, chosen dropouts at each stage.

For tests and the benchmark: `simulate_round` returns the server's result and, unless `record=False`, every
message the server received (`ServerView`), which is all a curious server could study.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from fedbench.secagg.client import SecAggClient
from fedbench.secagg.config import RoundConfig
from fedbench.secagg.errors import SecAggError
from fedbench.secagg.messages import (
    AdvertiseKeys,
    EncryptedShare,
    MaskedInput,
    UnmaskRequest,
    UnmaskResponse,
    Withdrawal,
)
from fedbench.secagg.server import AggregateResult, SecAggServer

Rewrite = Callable[[MaskedInput | Withdrawal], MaskedInput | Withdrawal]


@dataclass
class ServerView:
    """Every message the server received in a round, by stage."""

    keys: list[AdvertiseKeys] = field(default_factory=list)
    shares: list[EncryptedShare] = field(default_factory=list)
    vectors: list[MaskedInput | Withdrawal] = field(default_factory=list)
    request: UnmaskRequest | None = None
    responses: list[UnmaskResponse] = field(default_factory=list)


@dataclass(frozen=True)
class SimulatedRound:
    """The server's result and what it saw."""

    result: AggregateResult
    view: ServerView
    config: RoundConfig


def simulate_round(
    updates: Sequence[np.ndarray] | Callable[[int], np.ndarray],
    *,
    clients: int | None = None,
    config: RoundConfig | None = None,
    dropped_after_keys: Collection[int] = (),
    dropped_after_shares: Collection[int] = (),
    dropped_after_masking: Collection[int] = (),
    rewrite: Mapping[int, Rewrite] | None = None,
    record: bool = True,
    seconds: dict[str, float] | None = None,
    cpu_seconds: dict[str, float] | None = None,
    **options: object,
) -> SimulatedRound:
    """Run one round. Client i's update is `updates[i]` (or `updates(i)`, made when the client needs it).

    `dropped_after_keys`: advertise keys, then vanish. `dropped_after_shares`: send shares, then no vector
    (the case dropout recovery is for). `dropped_after_masking`: send a vector, then never answer the unmask
    request. `rewrite[i]` replaces client i's stage-3 message on the wire (a misbehaving client). `options`
    go to `RoundConfig` (clip, dropout, bits, degree, threshold, on_out_of_range) when no `config` is given.
    `seconds`, when given, gets the wall seconds each party spent in its own steps (keys "server" and
    "client <i>"; making an update is not counted), for the benchmark's critical path; `cpu_seconds` the
    same in this process's CPU seconds (less swayed by other work on a shared machine).
    """
    clock = seconds if seconds is not None else {}
    cpu = cpu_seconds if cpu_seconds is not None else {}

    @contextmanager
    def timed(party: str) -> Iterator[None]:
        start, start_cpu = time.perf_counter(), time.process_time()
        yield
        clock[party] = clock.get(party, 0.0) + time.perf_counter() - start
        cpu[party] = cpu.get(party, 0.0) + time.process_time() - start_cpu

    if config is None:
        if callable(updates) and clients is None:
            raise SecAggError("simulate_round with an update function needs `clients` or a `config`")
        count = clients if clients is not None else len(updates)  # type: ignore[arg-type]
        length = len(np.asarray(updates(0) if callable(updates) else updates[0]).ravel())
        config = RoundConfig(tuple(range(count)), length, **options)  # type: ignore[arg-type]
    view = ServerView()
    server = SecAggServer(config)
    members = {c: SecAggClient(c, config) for c in config.clients}

    advertised = []
    for c, member in members.items():
        with timed(f"client {c}"):
            advertised.append(member.advertise())
    view.keys = advertised if record else []
    with timed("server"):
        forwarded = server.receive_keys(advertised)

    active = [c for c in forwarded if c not in set(dropped_after_keys)]
    shares = []
    for c in active:
        with timed(f"client {c}"):
            shares += members[c].share_keys(forwarded[c])
    view.shares = shares if record else []
    with timed("server"):
        routed = server.receive_shares(shares)

    masking = [c for c in routed if c in set(active) and c not in set(dropped_after_shares)]

    def stage_three() -> Iterator[MaskedInput | Withdrawal]:
        for c in masking:
            update = updates(c) if callable(updates) else updates[c]
            with timed(f"client {c}"):
                members[c].receive_shares(routed[c])
                message = members[c].masked_input(update)
            if rewrite and c in rewrite:
                message = rewrite[c](message)
            if record:
                view.vectors.append(message)
            start, start_cpu = time.perf_counter(), time.process_time()
            yield message
            clock["server"] = clock.get("server", 0.0) + time.perf_counter() - start
            cpu["server"] = cpu.get("server", 0.0) + time.process_time() - start_cpu

    request = server.receive_masked(stage_three())
    view.request = request

    answering = [c for c in sorted(request.survivors) if c not in set(dropped_after_masking)]
    responses = []
    for c in answering:
        with timed(f"client {c}"):
            responses.append(members[c].unmask(request))
    view.responses = responses
    with timed("server"):
        result = server.finish(responses)
    return SimulatedRound(result, view, config)
