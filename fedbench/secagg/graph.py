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


def default_degree(clients: int) -> int:
    """2 * ceil(log2 N) neighbours (an even number), or everyone else when N is small."""
    if clients < 2:
        raise SecAggError(f"a round needs at least 2 clients, not {clients}")
    return min(clients - 1, 2 * math.ceil(math.log2(clients)))


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
