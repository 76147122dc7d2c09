"""The neighbour graph of a round: each client shares keys and masks only with O(log N) neighbours.

As in SecAgg+ (Bell et al., CCS 2020), a Harary graph H(k, N) on a random ordering of the clients: placed on a
ring in that order, each client is joined to the k/2 nearest on each side. The ordering comes from the round's
public 256-bit graph seed, so every client recomputes the same graph from the round's configuration and no
client takes the server's word for who its neighbours are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedbench.secagg.errors import SecAggError

FAILURE_TARGET = 2.0**-20
"""The chance a default graph may leave some client with fewer than `threshold` surviving neighbours."""


def default_degree(clients: int, dropout: float = 0.1) -> int:
    """The least even degree k that survives losing a `dropout` fraction of clients, else N - 1.

    With the default threshold (a majority, k // 2 + 1), recovery fails when more than k - t of a client's k
    neighbours drop; k is the least with N * P(Binomial(k, dropout) > k - t) <= 2^-20 (Bell et al.: k grows
    as log N for a fixed dropout rate; 34 for N = 100 at 10%, 42 for N = 10,000; at 30% N = 100 needs all 99).
    """
    if clients < 2:
        raise SecAggError(f"a round needs at least 2 clients, not {clients}")
    if not 0 <= dropout < 0.5:
        raise SecAggError(f"the dropout to tolerate must be at least 0 and below 0.5, not {dropout}")
    for degree in range(2, clients - 1, 2):
        lost = degree - (degree // 2 + 1) + 1
        tail = sum(
            math.comb(degree, i) * dropout**i * (1 - dropout) ** (degree - i) for i in range(lost, degree + 1)
        )
        if clients * tail <= FAILURE_TARGET:
            return degree
    return clients - 1


def neighbours(seed: bytes, clients: Sequence[int], degree: int) -> dict[int, frozenset[int]]:
    """Each client's neighbours in the Harary graph of `degree` on the seed's ordering of `clients`.

    An odd degree below N - 1 is rounded up to the next even number (the ring joins both sides alike);
    `degree >= N - 1` gives the complete graph. The graph is symmetric.
    """
    count = len(clients)
    if len(set(clients)) != count:
        raise SecAggError("the round's client ids are not distinct")
    if degree < 1:
        raise SecAggError(f"a neighbour graph needs degree 1 or more, not {degree}")
    if degree >= count - 1:
        return {client: frozenset(c for c in clients if c != client) for client in clients}
    generator = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int.from_bytes(seed, "big"))))
    order = [clients[i] for i in generator.permutation(count)]
    half = (degree + 1) // 2
    return {
        client: frozenset(order[(position + offset) % count] for offset in range(-half, half + 1) if offset)
        for position, client in enumerate(order)
    }
