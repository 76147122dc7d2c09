"""A component only the sandbox benchmark loads: plaintext and secure aggregation rounds of the same vectors.

`benchmarks/secure_aggregation_sandbox.py` starts its nodes with this module (`component_modules`), so no other
project can pick it. Each repeat is a plaintext FedAvg round (every client sends its float32 vector in the
clear to the server, which averages them: the baseline), then a SecAgg+ round of the same vectors over the
same job's federation context (`fedbench.secagg.federated`), then one where the first `withdraw` clients leave
after their shares (their update fails its check: a NaN), so the server rebuilds their mask keys and removes
their pairwise masks as for any client dropped after its shares (without waiting out a stage's deadline).
Each is timed on the server from its first message to the aggregate.
"""

from __future__ import annotations

import time

import numpy as np
from pydantic import BaseModel, Field

from fedbench.components import Component, Context, Port, register
from fedbench.secagg.federated import client_numbers, client_round, round_config, server_round


class RoundBenchParams(BaseModel):
    """The vectors' length, the repeats and how long the server waits for a stage."""

    length: int = Field(default=1_000_000, ge=1, le=10_000_000)
    repeats: int = Field(default=3, ge=1, le=20)
    stage_timeout: float = Field(default=600.0, gt=0.0)
    withdraw: int = Field(default=1, ge=0)


bench_secagg_round = register(
    Component(
        name="bench_secagg_round",
        version="1",
        params=RoundBenchParams,
        roles=("client", "server"),
        use="train",
        inputs=(),
        outputs=(Port("metrics", "metrics"),),
        description="Benchmark only: plaintext and secure aggregation rounds of random vectors, timed.",
    )
)


def _update(ctx: Context, length: int) -> np.ndarray:
    return np.random.default_rng(client_numbers(ctx)[ctx.party]).uniform(-1, 1, length).astype(np.float32)


@bench_secagg_round.role("client")
def _client(ctx: Context, params: RoundBenchParams) -> None:
    update = _update(ctx, params.length)
    broken = update.copy()
    broken[0] = np.nan
    leaves = client_numbers(ctx)[ctx.party] < params.withdraw
    server = ctx.peer("server")
    for repeat in range(params.repeats):
        server.recv(f"plain-{repeat}", dict)
        server.send(f"plain-vector-{repeat}", {"vector": update.tobytes()})
        for kind in ("secure", "dropout"):
            go = server.recv(f"{kind}-{repeat}", dict)
            number = int(go["round"])
            config = round_config(ctx.iter(number), number, list(go["participants"]), params.length, clip=1.0)
            sent = broken if kind == "dropout" and leaves else update
            client_round(ctx.iter(number), config, sent, params.stage_timeout)
    ctx.output("metrics", {"party": ctx.party})


@bench_secagg_round.role("server")
def _server(ctx: Context, params: RoundBenchParams) -> None:
    numbers = client_numbers(ctx)
    participants = sorted(numbers.values())
    seconds: dict[str, list[float]] = {"plain": [], "secure": [], "dropout": []}
    errors, survivors = [], {}
    configs = {}
    for repeat in range(params.repeats):
        start = time.perf_counter()
        ctx.broadcast("client", f"plain-{repeat}", {})
        gathered = ctx.gather("client", f"plain-vector-{repeat}", dict)
        vectors = {
            numbers[party]: np.frombuffer(sent["vector"], dtype=np.float32)
            for party, sent in gathered.items()
        }
        total = np.zeros(params.length, dtype=np.float64)
        for vector in vectors.values():
            total += vector
        total /= len(vectors)
        seconds["plain"].append(time.perf_counter() - start)

        for offset, kind in enumerate(("secure", "dropout")):
            number = 2 * repeat + offset + 1
            start = time.perf_counter()
            ctx.broadcast("client", f"{kind}-{repeat}", {"round": number, "participants": participants})
            config = round_config(ctx.iter(number), number, participants, params.length, clip=1.0)
            result = server_round(ctx.iter(number), config, params.stage_timeout)
            seconds[kind].append(time.perf_counter() - start)
            kept = sorted(result.survivors)
            expected = np.sum([vectors[n].astype(np.float64) for n in kept], axis=0) / len(kept)
            errors.append(float(np.abs(result.mean - expected).max()))
            survivors[kind], configs[kind] = len(kept), config
    ctx.output(
        "metrics",
        {
            "plain_seconds": seconds["plain"],
            "secure_seconds": seconds["secure"],
            "dropout_seconds": seconds["dropout"],
            "survivors": survivors,
            "max_error_of_mean": max(errors),
            "clients": len(participants),
            "degree": configs["secure"].degree,
            "threshold": configs["secure"].threshold,
        },
    )
