"""One secure-aggregation round between real parties: the `client` roles and the `server` role of a step.

The federation gives what the in-process simulator cannot: authenticated channels between every two parties.
So each client sends its public keys to its neighbours directly (over the mutual-TLS channel between them) as
well as to the server: the server cannot swap a key to read the shares, which it only routes, sealed with
AES-GCM. Round id and neighbour graph are derived from the job, the step, the round number and the
participants, so every party recomputes them and the server picks neither. The server waits for each stage
until a deadline; a client silent by then has dropped out, and the round goes on without it (its masks are
removed from the survivors' shares). Each message's client number must be its sender's: a party cannot speak
for another.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from fedbench.errors import FedbenchError
from fedbench.federation import Context
from fedbench.federation.context import PeerHandle
from fedbench.secagg.client import SecAggClient
from fedbench.secagg.config import GRAPH_SEED_BYTES, ROUND_ID_BYTES, RoundConfig
from fedbench.secagg.errors import RoundAborted
from fedbench.secagg.messages import EncryptedShare, MaskedInput, UnmaskResponse, Withdrawal
from fedbench.secagg.server import AggregateResult, SecAggServer
from fedbench.secagg.wire import (
    keys_from_wire,
    keys_to_wire,
    request_from_wire,
    request_to_wire,
    response_from_wire,
    response_to_wire,
    shares_from_wire,
    shares_to_wire,
    vector_from_wire,
    vector_to_wire,
)

__all__ = ["client_numbers", "client_round", "round_config", "server_round"]

T = TypeVar("T")


def client_numbers(ctx: Context) -> dict[str, int]:
    """Each client party's number in the rounds: its place among the job's clients, sorted by name."""
    return {party: i for i, party in enumerate(sorted(ctx.roles.get("client", [])))}


def round_config(
    ctx: Context, round_number: int, participants: list[int], length: int, **options: Any
) -> RoundConfig:
    """The public configuration of a round, which every party derives alone from the job's own records."""
    basis = f"{ctx.job_id}\0{ctx.step}\0{round_number}\0{sorted(participants)}".encode()
    round_id = hashlib.sha256(b"fedbench secagg round id\0" + basis).digest()[:ROUND_ID_BYTES]
    graph_seed = hashlib.sha256(b"fedbench secagg graph\0" + basis).digest()[:GRAPH_SEED_BYTES]
    return RoundConfig(
        tuple(sorted(participants)), length, round_id=round_id, graph_seed=graph_seed, **options
    )


def _handles(ctx: Context) -> dict[int, PeerHandle]:
    return {n: PeerHandle(ctx, party) for party, n in client_numbers(ctx).items()}


def client_round(ctx: Context, config: RoundConfig, update: np.ndarray, stage_timeout: float) -> bool:
    """Take part in one round with `update`; True when the server counted it, False when it did not.

    `ctx` is the round's sub-context (`ctx.iter(round)`). A neighbour that sends no keys within `stage_timeout`
    is left out; too few neighbours, or a refused update, make this client withdraw with its reason.
    """
    number = client_numbers(ctx)[ctx.party]
    server = ctx.peer("server")
    handles = _handles(ctx)
    me = SecAggClient(number, config)
    advertised = keys_to_wire(me.advertise())
    server.send("keys", advertised)
    neighbours = sorted(config.neighbours(number))
    for n in neighbours:
        handles[n].send("keys", advertised)
    heard = []
    deadline = time.monotonic() + stage_timeout
    for n in neighbours:
        try:
            keys = keys_from_wire(handles[n].recv("keys", timeout=_left(deadline)))
        except FedbenchError as exc:
            ctx.log(f"secure aggregation: no usable keys from client {n} ({exc}); it is left out")
            continue
        if keys.client == n:
            heard.append(keys)
    shares: list[EncryptedShare] = []
    problem = ""
    try:
        shares = me.share_keys(heard)
    except RoundAborted as exc:
        problem = str(exc)
    server.send("shares", shares_to_wire(shares))
    routed = shares_from_wire(server.recv("routed"))
    vector: MaskedInput | Withdrawal = Withdrawal(number, problem)
    if not problem:
        try:
            me.receive_shares(routed)
            vector = me.masked_input(update)
        except RoundAborted as exc:
            vector = Withdrawal(number, str(exc))
    server.send("vector", vector_to_wire(vector))
    if isinstance(vector, Withdrawal):
        ctx.warn(f"this round went on without our update: {vector.reason}")
    request = request_from_wire(server.recv("unmask"))
    if request is None or number not in request.survivors:
        return False
    server.send("unmasked", response_to_wire(me.unmask(request)))
    return True


def _left(deadline: float) -> float:
    return max(0.2, deadline - time.monotonic())


def _collect(
    handles: Mapping[int, PeerHandle],
    tag: str,
    parse: Callable[[Any], T],
    owner: Callable[[T], int],
    seconds: float,
    server: SecAggServer | None,
) -> dict[int, T]:
    """Each client's `tag` message within `seconds`; a silent one is missing, a malformed one excluded.

    Without a `server` (the last stage, after the sum), a bad answer is only left out.
    """
    deadline = time.monotonic() + seconds
    out: dict[int, T] = {}
    for n, handle in handles.items():
        try:
            message = parse(handle.recv(tag, timeout=_left(deadline)))
        except FedbenchError as exc:
            if exc.code != "recv_timeout" and server is not None:
                server.exclude(n, f"client {n} at {tag}: {exc}")
            continue
        if owner(message) != n:
            if server is not None:
                server.exclude(n, f"client {n} at {tag}: it sent a message of client {owner(message)}")
            continue
        out[n] = message
    return out


def _sender(shares: list[EncryptedShare]) -> int:
    senders = {s.sender for s in shares}
    return senders.pop() if len(senders) == 1 else -1


def server_round(ctx: Context, config: RoundConfig, stage_timeout: float) -> AggregateResult:
    """Aggregate one round of the participating clients: the survivors' sum, and who dropped or was excluded.

    A client that missed a stage is not waited for at the later ones (only told how the round ends).

    Raises `RoundAborted` (after telling every client) when fewer than the threshold sent a usable vector.
    """
    server = SecAggServer(config)
    every = _handles(ctx)
    handles = {n: every[n] for n in config.clients}
    keys = _collect(handles, "keys", keys_from_wire, lambda m: m.client, stage_timeout, server)
    server.receive_keys(list(keys.values()))
    advertised = {n: handles[n] for n in keys if n not in server.excluded}
    bundles = _collect(advertised, "shares", shares_from_wire, _sender, stage_timeout, server)
    routed = server.receive_shares([s for n, b in bundles.items() if n not in server.excluded for s in b])
    for n, handle in handles.items():
        handle.send("routed", shares_to_wire(routed.get(n, [])))
    sharing = {n: handles[n] for n in bundles if n not in server.excluded}
    vectors = _collect(sharing, "vector", vector_from_wire, lambda m: m.client, stage_timeout, server)
    try:
        request = server.receive_masked(vectors.values())
    except RoundAborted:
        for handle in handles.values():
            handle.send("unmask", request_to_wire(None))
        raise
    for handle in handles.values():
        handle.send("unmask", request_to_wire(request))
    survivors = {n: handles[n] for n in sorted(request.survivors)}
    answers: dict[int, UnmaskResponse] = _collect(
        survivors, "unmasked", response_from_wire, lambda m: m.client, stage_timeout, None
    )
    return server.finish(list(answers.values()))
