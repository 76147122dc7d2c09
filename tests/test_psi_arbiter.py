"""The PSI's arbiter gate in process (`simulate`: guest, host and arbiter over the in-memory transport): what
crosses between whom, the count, and the arbiter's refusals. The same gate against a rogue node over mutual
TLS is in tests/test_rogue_psi.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import fedbench.components.builtin.psi as psi_component
from fedbench.components.simulate import RecordedMessage, RoleFailed, simulate
from fedbench.errors import Refused
from fedbench.psi.arbiter_count import ArbiterLink

GUEST = pd.DataFrame({"id": [f"c{i}" for i in range(150)]})
HOST = pd.DataFrame({"id": [f"c{i}" for i in range(50, 250)]})
ROLES = {"guest": "guest", "host": "host", "arbiter": "arbiter"}


def _project(release: str, min_intersection: int, arbiters: tuple[str, ...] = ("arbiter",)) -> dict[str, Any]:
    """A project as the node describes it to a worker, with the arbiter our record holds."""
    return {
        "id": "p",
        "name": "p",
        "initiator": "guest",
        "arbiters": list(arbiters),
        "terms": {
            "uses": ["psi"],
            "release": release,
            "min_intersection": min_intersection,
            "max_psi_rows": {"guest": len(GUEST), "host": len(HOST), "arbiter": 0},
        },
    }


def _kinds(record: list[RecordedMessage], receiver: str) -> set[str]:
    return {m.payload.get("t") for m in record if m.receiver == receiver and isinstance(m.payload, dict)}


def test_count_only_is_counted_by_the_arbiter_and_nothing_returns_to_a_party() -> None:
    record: list[RecordedMessage] = []
    out = simulate(
        "psi", {"guest": GUEST, "host": HOST}, roles=ROLES, project=_project("count_only", 10), record=record
    )
    for party in ("guest", "host"):
        metrics = out[party]["metrics"]
        assert (metrics["intersection_size"], metrics["intersection_size_from"]) == (100, "arbiter")
        assert "data" not in out[party]
        assert _kinds(record, party) == {"hello", "ok", "x1", "count"}, "no x2, no permutation, no peer count"
    assert out["arbiter"]["metrics"]["intersection_size"] == 100
    assert _kinds(record, "arbiter") == {"hello", "values", "end"}
    values = [m.payload["data"] for m in record if m.receiver == "arbiter" and m.payload.get("t") == "values"]
    sent_x1 = {bytes(r) for m in record if m.payload.get("t") == "x1" for r in m.payload["data"]}
    assert sum(len(v) for v in values) == len(GUEST) + len(HOST)
    assert not sent_x1 & {bytes(r) for v in values for r in v}, "the arbiter sees doubly-masked values only"


def test_below_the_minimum_no_doubly_masked_value_returns_and_at_it_both_get_aligned_rows() -> None:
    record: list[RecordedMessage] = []
    out = simulate(
        "psi", {"guest": GUEST, "host": HOST}, roles=ROLES, project=_project("both", 101), record=record
    )
    for party in ("guest", "host"):
        metrics = out[party]["metrics"]
        assert not metrics["released"] and "fewer than min_intersection=101" in metrics["refusal"]
        assert "x2" not in _kinds(record, party)
    out = simulate("psi", {"guest": GUEST, "host": HOST}, roles=ROLES, project=_project("both", 100))
    ours, theirs = out["guest"]["data"]["id"].tolist(), out["host"]["data"]["id"].tolist()
    assert ours == theirs and sorted(ours) == sorted(f"c{i}" for i in range(50, 150))
    assert out["guest"]["metrics"]["intersection_size_from"] == "arbiter"


def test_both_with_no_minimum_keeps_the_two_party_protocol() -> None:
    record: list[RecordedMessage] = []
    out = simulate(
        "psi", {"guest": GUEST, "host": HOST}, roles=ROLES, project=_project("both", 0), record=record
    )
    assert not _kinds(record, "arbiter"), "the arbiter's role does nothing then"
    assert out["guest"]["metrics"]["intersection_size_from"] == "own count"
    assert "metrics" not in out.get("arbiter", {})


def test_the_arbiter_refuses_a_list_shorter_than_the_other_party_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    honest = ArbiterLink.count

    def short(self: ArbiterLink, values: np.ndarray, *, size: int, chunk: int) -> int:
        return honest(self, values[:-1] if self.role == "host" else values, size=size, chunk=chunk)

    monkeypatch.setattr(ArbiterLink, "count", short)
    with pytest.raises(RoleFailed) as failed:
        simulate("psi", {"guest": GUEST, "host": HOST}, roles=ROLES, project=_project("count_only", 0))
    refusal = failed.value.errors["arbiter"]
    assert isinstance(refusal, Refused)
    assert "'host' sent 149 values, but 'guest' declared 150 IDs" in str(refusal)


def test_a_party_that_has_no_arbiter_count_is_refused_by_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    honest = psi_component._counting_arbiter

    def rogue(ctx: Any, release: str, min_intersection: int) -> str | None:
        return None if ctx.role == "guest" else honest(ctx, release, min_intersection)

    monkeypatch.setattr(psi_component, "_counting_arbiter", rogue)
    with pytest.raises(RoleFailed) as failed:
        simulate("psi", {"guest": GUEST, "host": HOST}, roles=ROLES, project=_project("count_only", 0))
    assert "count the intersection differently" in str(failed.value.errors["host"])


def test_a_job_without_the_projects_arbiter_is_refused() -> None:
    roles = {"guest": "guest", "host": "host"}
    with pytest.raises(RoleFailed) as failed:
        simulate("psi", {"guest": GUEST, "host": HOST}, roles=roles, project=_project("count_only", 0))
    assert "run it with 'arbiter' as the arbiter" in str(failed.value)
    roles_with_self = {"guest": "guest", "host": "host", "arbiter": "mallory"}
    with pytest.raises(RoleFailed, match="gives the arbiter role to \\['mallory'\\]"):
        simulate(
            "psi", {"guest": GUEST, "host": HOST}, roles=roles_with_self, project=_project("count_only", 0)
        )
