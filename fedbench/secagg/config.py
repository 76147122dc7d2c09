"""The public configuration of one round: who takes part, the vector length, ring, graph and threshold."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from fedbench.secagg import graph
from fedbench.secagg.errors import SecAggError
from fedbench.secagg.quantize import Quantizer

ROUND_ID_BYTES = 16
GRAPH_SEED_BYTES = 32


@dataclass(frozen=True)
class RoundConfig:
    """Everything public about a round; every client and the server recompute the graph from it.

    `degree` defaults to `graph.default_degree(N, dropout)` (`dropout`: the fraction of clients the round
    should survive losing) and `threshold` to a majority of the neighbours (degree // 2 + 1). `round_id`
    and `graph_seed` are drawn fresh unless given.
    """

    clients: tuple[int, ...]
    length: int
    clip: float = 1.0
    bits: int = 32
    dropout: float = 0.1
    degree: int = 0
    threshold: int = 0
    on_out_of_range: Literal["clip", "refuse"] = "clip"
    round_id: bytes = field(default_factory=lambda: secrets.token_bytes(ROUND_ID_BYTES))
    graph_seed: bytes = field(default_factory=lambda: secrets.token_bytes(GRAPH_SEED_BYTES))

    def __post_init__(self) -> None:
        clients = tuple(int(c) for c in self.clients)
        object.__setattr__(self, "clients", clients)
        if len(clients) < 3:
            raise SecAggError(f"secure aggregation needs at least 3 clients, not {len(clients)}")
        if self.length < 1:
            raise SecAggError(f"the vector length must be positive, not {self.length}")
        degree = self.degree or graph.default_degree(len(clients), self.dropout)
        degree = min(degree + degree % 2, len(clients) - 1)
        object.__setattr__(self, "degree", degree)
        threshold = self.threshold or degree // 2 + 1
        if not 2 <= threshold <= degree:
            raise SecAggError(f"the threshold must be between 2 and the degree ({degree}), not {threshold}")
        object.__setattr__(self, "threshold", threshold)
        if len(self.round_id) != ROUND_ID_BYTES or len(self.graph_seed) != GRAPH_SEED_BYTES:
            raise SecAggError("round_id must have 16 bytes and graph_seed 32")
        _ = self.quantizer

    @cached_property
    def quantizer(self) -> Quantizer:
        """The round's encoding, with room for the sum of every client."""
        return Quantizer(self.clip, len(self.clients), self.bits, self.on_out_of_range)

    @cached_property
    def graph(self) -> dict[int, frozenset[int]]:
        """Each client's neighbours."""
        return graph.neighbours(self.graph_seed, self.clients, self.degree)

    def neighbours(self, client: int) -> frozenset[int]:
        """The neighbours of `client`."""
        return self.graph[client]

    @property
    def vector_bytes(self) -> int:
        """Bytes of one masked vector on the wire."""
        return self.length * self.bits // 8
