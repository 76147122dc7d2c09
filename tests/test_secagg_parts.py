"""The parts of secure aggregation: the fixed-point encoding's stated error bound and headroom, the
neighbour graph every client recomputes, and the batched Shamir rebuild against PyCryptodome's own."""

from __future__ import annotations

import numpy as np
import pytest
from Crypto.Protocol.SecretSharing import Shamir

from fedbench.secagg import Quantizer, RoundConfig, SecAggError, shamir
from fedbench.secagg.graph import default_degree, neighbours


@pytest.mark.parametrize("bits", [32, 64])
def test_quantization_error_stays_within_the_stated_bound(bits: int) -> None:
    clients, clip = 50, 2.0
    quantizer = Quantizer(clip, clients, bits)
    rng = np.random.default_rng(1)
    updates = [rng.uniform(-3, 3, 2000) for _ in range(clients)]
    total = np.zeros(2000, dtype=np.uint32 if bits == 32 else np.uint64)
    for update in updates:
        total += quantizer.encode(update)
    clipped = np.sum([np.clip(u, -clip, clip) for u in updates], axis=0)
    error = np.abs(quantizer.decode(total) - clipped).max()
    assert error <= quantizer.error_bound(clients)
    assert quantizer.error_bound(clients) < (3e-6 if bits == 32 else 1e-12)


def test_a_sum_of_every_client_at_the_clip_does_not_wrap() -> None:
    clients = 100
    quantizer = Quantizer(1.0, clients, 32)
    for sign in (1.0, -1.0):
        total = np.zeros(3, dtype=np.uint32)
        for _ in range(clients):
            total += quantizer.encode(np.full(3, sign * 7.0))
        np.testing.assert_allclose(
            quantizer.decode(total), sign * clients, atol=quantizer.error_bound(clients)
        )


def test_too_many_clients_for_the_ring_is_refused() -> None:
    with pytest.raises(SecAggError, match="do not fit a 32-bit ring"):
        Quantizer(1.0, 1 << 32, 32)


def test_the_graph_is_symmetric_logarithmic_and_the_same_for_everyone() -> None:
    clients = tuple(range(100))
    degree = default_degree(100)
    assert degree == 34
    assert default_degree(10_000) == 42
    assert default_degree(100, dropout=0.3) == 99
    graph = neighbours(b"\x01" * 32, clients, degree)
    assert all(len(n) == degree and c not in n for c, n in graph.items())
    assert all(c in graph[p] for c, n in graph.items() for p in n)
    assert neighbours(b"\x01" * 32, clients, degree) == graph
    assert neighbours(b"\x02" * 32, clients, degree) != graph


def test_the_default_threshold_is_a_majority_of_the_neighbours() -> None:
    config = RoundConfig(tuple(range(1000)), 4)
    assert config.degree == 38
    assert config.threshold == 20


def test_the_batched_shamir_rebuild_equals_pycryptodomes_combine_for_any_subset() -> None:
    rng = np.random.default_rng(3)
    secret = rng.bytes(32)
    shares = list(shamir.split(secret, 5, list(range(20, 29))).values())
    for _ in range(4):
        chosen = [shares[i] for i in rng.choice(len(shares), 5, replace=False)]
        low = Shamir.combine([(s.index, s.value[:16]) for s in chosen])
        high = Shamir.combine([(s.index, s.value[16:]) for s in chosen])
        assert shamir.combine(chosen, 5, owner=0, what="seed") == low + high == secret
