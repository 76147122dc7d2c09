"""A component only the sandbox benchmark loads: plaintext and secure aggregation rounds of the same vectors.

`benchmarks/secure_aggregation_sandbox.py` starts its nodes with this module (`component_modules`), so no other
project can pick it. Each repeat is a plaintext FedAvg round (every client sends its float32 vector in the
clear to the server, which averages them: the baseline) and then a SecAgg+ round of the same vectors over the
same job's federation context (`fedbench.secagg.federated`), both timed on the server from its first message
to the aggregate.
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
    server = ctx.peer("server")
    for repeat in range(params.repeats):
        server.recv(f"plain-{repeat}", dict)
        server.send(f"plain-vector-{repeat}", {"vector": update.tobytes()})
        go = server.recv(f"secure-{repeat}", dict)
        number = int(go["round"])
        config = round_config(ctx.iter(number), number, list(go["participants"]), params.length, clip=1.0)
        client_round(ctx.iter(number), config, update, params.stage_timeout)
    ctx.output("metrics", {"party": ctx.party})


@bench_secagg_round.role("server")
def _server(ctx: Context, params: RoundBenchParams) -> None:
    participants = sorted(client_numbers(ctx).values())
    plain_seconds, secure_seconds, errors = [], [], []
    degree = threshold = 0
    for repeat in range(params.repeats):
        start = time.perf_counter()
        ctx.broadcast("client", f"plain-{repeat}", {})
        vectors = ctx.gather("client", f"plain-vector-{repeat}", dict)
        total = np.zeros(params.length, dtype=np.float64)
        for sent in vectors.values():
            total += np.frombuffer(sent["vector"], dtype=np.float32)
        mean = total / len(vectors)
        plain_seconds.append(time.perf_counter() - start)

        number = repeat + 1
        start = time.perf_counter()
        ctx.broadcast("client", f"secure-{repeat}", {"round": number, "participants": participants})
        config = round_config(ctx.iter(number), number, participants, params.length, clip=1.0)
        result = server_round(ctx.iter(number), config, params.stage_timeout)
        secure_seconds.append(time.perf_counter() - start)
        errors.append(float(np.abs(result.mean - mean).max()))
        degree, threshold = config.degree, config.threshold
    ctx.output(
        "metrics",
        {
            "plain_seconds": plain_seconds,
            "secure_seconds": secure_seconds,
            "max_error_of_mean": max(errors),
            "clients": len(participants),
            "degree": degree,
            "threshold": threshold,
        },
    )
