"""Secure aggregation rounds through the in-process simulator, real cryptography: exact sums over the
survivors with dropouts at each stage, bad input excluded with its reason, and the consistency rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedbench.secagg import (
    RoundAborted,
    RoundConfig,
    SecAggClient,
    SecAggServer,
    ShareRefused,
    simulate_round,
)
from fedbench.secagg.messages import MaskedInput, UnmaskRequest, Withdrawal

CLIENTS = 20
LENGTH = 300
GRAPH_SEED = bytes(range(32))
"""A stated graph seed, so the dropout sets below are checked against one known graph (SecAgg+'s recovery
is certain only while every client keeps `threshold` neighbours; a random graph meets that very likely)."""


def _updates(clients: int = CLIENTS, length: int = LENGTH, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, length) for _ in range(clients)]


def _config(clients: int = CLIENTS, length: int = LENGTH, **options: object) -> RoundConfig:
    clients_ = tuple(range(clients))
    return RoundConfig(clients_, length, graph_seed=GRAPH_SEED, **options)  # type: ignore[arg-type]


def _expected_fixed(config: RoundConfig, updates: list[np.ndarray], survivors: set[int]) -> np.ndarray:
    total = np.zeros(config.length, dtype=np.uint32)
    for client in survivors:
        total += config.quantizer.encode(updates[client])
    return total


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3])
def test_sum_is_exact_over_survivors_after_dropout_after_shares(fraction: float) -> None:
    updates = _updates()
    config = _config(dropout=max(fraction, 0.1))
    dropped = set(np.random.default_rng(7).choice(CLIENTS, round(fraction * CLIENTS), replace=False).tolist())
    run = simulate_round(updates, config=config, dropped_after_shares=dropped)
    result = run.result
    survivors = set(range(CLIENTS)) - dropped
    assert set(result.survivors) == survivors
    assert set(result.dropped) == dropped
    assert result.excluded == {}
    np.testing.assert_array_equal(result.fixed_sum, _expected_fixed(config, updates, survivors))
    plain = np.sum([updates[c] for c in survivors], axis=0)
    assert np.abs(result.total - plain).max() <= config.quantizer.error_bound(len(survivors))


def test_a_sparse_graph_recovers_dropped_clients_from_their_neighbours() -> None:
    clients = 40
    updates = _updates(clients=clients, length=50)
    config = _config(clients=clients, length=50, degree=8)
    assert config.threshold == 5
    dropped = {3, 14, 25, 36}
    run = simulate_round(updates, config=config, dropped_after_shares=dropped)
    survivors = set(range(clients)) - dropped
    assert set(run.result.survivors) == survivors
    np.testing.assert_array_equal(run.result.fixed_sum, _expected_fixed(config, updates, survivors))


def test_dropouts_at_every_stage_still_give_the_survivors_sum() -> None:
    updates = _updates()
    config = _config()
    run = simulate_round(
        updates,
        config=config,
        dropped_after_keys={0},
        dropped_after_shares={5, 11},
        dropped_after_masking={3, 17},
    )
    survivors = set(range(CLIENTS)) - {0, 5, 11}
    assert set(run.result.survivors) == survivors
    np.testing.assert_array_equal(run.result.fixed_sum, _expected_fixed(config, updates, survivors))


def test_a_vector_of_the_wrong_length_is_excluded_with_its_reason() -> None:
    updates = _updates()
    config = _config()

    def truncate(message: MaskedInput | Withdrawal) -> MaskedInput | Withdrawal:
        assert isinstance(message, MaskedInput)
        return dataclasses.replace(message, vector=message.vector[:-4])

    run = simulate_round(updates, config=config, rewrite={4: truncate})
    assert run.result.excluded == {
        4: f"client 4 at masked input: it sent a vector of {LENGTH - 1} coordinates "
        f"({(LENGTH - 1) * 4} bytes); "
        f"the round's vectors have {LENGTH}"
    }
    survivors = set(range(CLIENTS)) - {4}
    assert set(run.result.survivors) == survivors
    np.testing.assert_array_equal(run.result.fixed_sum, _expected_fixed(config, updates, survivors))


def test_a_malformed_or_repeated_public_key_excludes_its_client() -> None:
    config = _config(clients=6, length=8)
    members = {c: SecAggClient(c, config) for c in config.clients}
    advertised = [m.advertise() for m in members.values()]
    advertised[1] = dataclasses.replace(advertised[1], mask_public=advertised[1].mask_public[:31])
    advertised[2] = dataclasses.replace(advertised[2], share_public=advertised[0].share_public)
    server = SecAggServer(config)
    forwarded = server.receive_keys(advertised)
    assert server.excluded == {
        1: "client 1 at key advertisement: its mask public key is not 32 bytes",
        2: "client 2 at key advertisement: it advertised a public key another client already advertised",
    }
    assert set(forwarded) == {0, 3, 4, 5}
    assert all(m.client not in (1, 2) for peers in forwarded.values() for m in peers)


def test_an_update_out_of_range_withdraws_its_client_and_the_round_completes() -> None:
    updates = _updates()
    updates[2] = updates[2].copy()
    updates[2][7] = np.nan
    updates[9] = updates[9].copy()
    updates[9][3] = 5.0
    config = _config(on_out_of_range="refuse")
    run = simulate_round(updates, config=config)
    assert run.result.excluded == {
        2: "client 2 withdrew: coordinate 7 of the update is nan, not a finite number",
        9: "client 9 withdrew: coordinate 3 of the update is 5.0, outside the clip range [-1.0, 1.0]; "
        "scale the update or raise clip",
    }
    survivors = set(range(CLIENTS)) - {2, 9}
    np.testing.assert_array_equal(run.result.fixed_sum, _expected_fixed(config, updates, survivors))


def test_too_few_answers_to_unmask_abort_the_round_naming_the_client() -> None:
    config = _config(clients=6, degree=4, threshold=3)
    with pytest.raises(RoundAborted, match=r"shares of client \d's self-mask seed arrived; 3 are needed"):
        simulate_round(_updates(clients=6), config=config, dropped_after_masking={0, 1, 2, 3})


def _round_to_unmasking(clients: int = 6) -> tuple[RoundConfig, dict[int, SecAggClient]]:
    """Clients of a complete-graph round that have all sent their masked vectors."""
    config = _config(clients=clients, length=8, degree=clients - 1, threshold=3)
    members = {c: SecAggClient(c, config) for c in config.clients}
    advertised = [m.advertise() for m in members.values()]
    shares = [s for m in members.values() for s in m.share_keys(advertised)]
    for c, member in members.items():
        member.receive_shares([s for s in shares if s.recipient == c])
        member.masked_input(np.zeros(8))
    return config, members


def test_a_client_refuses_to_give_both_kinds_of_share_of_one_client() -> None:
    _, members = _round_to_unmasking()
    honest = members[1]
    everyone = frozenset(range(6))
    first = honest.unmask(UnmaskRequest(survivors=everyone, dropped=frozenset()))
    assert 0 in first.seed_shares
    # A server that now claims client 0 dropped would get its mask key too, and with the seed unmask it alone.
    with pytest.raises(ShareRefused, match="already gave the other kind of share of client 0"):
        honest.unmask(UnmaskRequest(survivors=everyone - {0}, dropped=frozenset({0})))
    with pytest.raises(ShareRefused, match="client 0 as both a survivor and dropped"):
        members[2].unmask(UnmaskRequest(survivors=everyone, dropped=frozenset({0})))


def test_a_key_share_then_a_seed_share_of_the_same_client_is_refused() -> None:
    _, members = _round_to_unmasking()
    honest = members[4]
    rest = frozenset(range(6)) - {0}
    answer = honest.unmask(UnmaskRequest(survivors=rest, dropped=frozenset({0})))
    assert set(answer.key_shares) == {0}
    assert 0 not in answer.seed_shares
    with pytest.raises(ShareRefused, match="already gave the other kind of share of client 0"):
        honest.unmask(UnmaskRequest(survivors=frozenset(range(6)), dropped=frozenset()))


def test_a_malformed_unmasking_answer_is_ignored_with_its_reason_and_the_round_completes() -> None:
    config = _config(clients=6, length=8, degree=5, threshold=3)
    updates = _updates(clients=6, length=8)
    members = {c: SecAggClient(c, config) for c in config.clients}
    server = SecAggServer(config)
    forwarded = server.receive_keys([m.advertise() for m in members.values()])
    routed = server.receive_shares([s for c, m in members.items() for s in m.share_keys(forwarded[c])])
    vectors = []
    for c, member in members.items():
        member.receive_shares(routed[c])
        vectors.append(member.masked_input(updates[c]))
    request = server.receive_masked(vectors)
    answers = [members[c].unmask(request) for c in sorted(request.survivors)]
    answers[2] = dataclasses.replace(answers[2], key_shares={0: answers[2].seed_shares[0]})
    result = server.finish(answers)
    assert result.ignored_answers == {
        2: "client 2 at unmasking: it sent key shares of clients that did not drop out"
    }
    np.testing.assert_array_equal(result.fixed_sum, _expected_fixed(config, updates, set(range(6))))
