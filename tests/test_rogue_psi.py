"""Rogue PSI peers against an unmodified victim node (issue #14, hole 5): a counting side that masks each ID
with its own scalar and reports a false count; a peer that brings more IDs than our terms allow it; a peer that
sends more values than it declared. The rogue is the guest (the initiator); the host is the victim.

In a two-party project the first attack succeeds (the documented semi-honest caveat, an expected failure). In
a project with an arbiter (`fed3`, the same sandbox's arbiter as a third member) the arbiter counts under
`count_only` or a minimum: the same rogue gets nothing computed from its own IDs back, the victim shows the
arbiter's count, and a rogue that leaves the arbiter out of the job is refused. One sandbox serves both kinds
of project: the arbiter node takes part only in the projects it is a member of. The rogue changes its
deviation between attacks without a restart (`reconfigure_rogue`: every deviation here is played in a step's
worker)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rogue import reconfigure_rogue, rogue_sandbox, victim_run_ended

import fedbench
from fedbench import sandbox
from fedbench.client.runs import RunFailed

_names = itertools.count()


@pytest.fixture(scope="module")
def fed3(tmp_path_factory: pytest.TempPathFactory):
    """Guest (the rogue), host (the victim) and a data-less arbiter; the rogue starts honest."""
    root = tmp_path_factory.mktemp("rogue-psi")
    rogue_sandbox(root, patches=["fb_rogue_psi"], settings={}, rogue="guest", demo_data=False, arbiter=True)
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def fed(fed3: Path) -> Path:
    """The same sandbox, for projects of guest and host alone (two-party PSI, no arbiter)."""
    return fed3


def _project(fed: Path, guest_ids: list[str], host_ids: list[str], **terms: object):
    """A fresh project between the rogue guest and the victim host whose datasets hold these IDs."""
    n = next(_names)
    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    rng = np.random.default_rng(n)
    guest.datasets.upload(
        pd.DataFrame({"id": guest_ids, "y": rng.integers(0, 2, len(guest_ids))}),
        name=f"rg{n}",
        id_column="id",
        label_column="y",
    )
    host.datasets.upload(
        pd.DataFrame({"id": host_ids, "x": rng.normal(size=len(host_ids))}), name=f"rh{n}", id_column="id"
    )
    guest.projects.propose(f"rogue{n}", partners="host", datasets=[f"rg{n}"], **{"psi_runs": 5, **terms})
    host.projects.accept(f"rogue{n}", datasets=[f"rh{n}"])
    return guest.project(f"rogue{n}"), host.project(f"rogue{n}"), {"guest": f"rg{n}", "host": f"rh{n}"}


def _host_refusals(fed: Path, text: str) -> pd.DataFrame:
    events = fedbench.connect(home=fed / "host").audit()
    return events[~events["allowed"] & events["reason"].str.contains(text, regex=False)]


def _victim_still_serves_an_honest_psi(fed: Path) -> None:
    reconfigure_rogue(fed, {})
    guest, host, data = _project(
        fed,
        [f"c{i}" for i in range(150)],
        [f"c{i}" for i in range(50, 250)],
        release="both",
        min_intersection=10,
    )
    run = guest.run("psi", data=data, id_column="id").wait(timeout=300, show_progress=False)
    assert run.output("metrics").value()["intersection_size"] == 100
    assert host.run_by_id(run.job_id).output("metrics").value()["intersection_size"] == 100


def test_a_counting_side_that_tags_each_id_learns_which_matched(fed: Path, tmp_path: Path) -> None:
    """The documented limit of `count_only` and `min_intersection` against modified code in a two-party
    project (docs/protocols/psi.md, "Against a party running modified code"): two-party ECDH-PSI cannot stop
    it, and no proof over the elements can (the verifier never knows the bases, H(id)). Recorded as an
    expected failure of the guarantee: two-party projects keep this caveat; projects with an arbiter close it
    (the arbiter gate, tested below on `fed3`)."""
    leak = tmp_path / "leak.json"
    reconfigure_rogue(fed, {"psi": "tag", "leak_file": str(leak), "claimed_count": 100})
    probes = [f"probe-{i}" for i in range(20)]
    padding = [f"pad-{i}" for i in range(100)]
    host_ids = [f"customer-{i}" for i in range(300)] + probes[:10]
    guest, host, data = _project(fed, probes + padding, host_ids, release="count_only", min_intersection=100)
    run = guest.run("psi", data=data, id_column="id")
    try:
        run.wait(timeout=300, show_progress=False)
    except RunFailed:
        victim_run_ended(host, run.job_id)
        assert not _host_refusals(fed, "psi").empty, "a refusal must be audited on the victim"
        _victim_still_serves_an_honest_psi(fed)
        return
    seen_by_host = host.run_by_id(run.job_id).output("metrics").value()
    assert seen_by_host["intersection_size"] == 100, "the victim took the rogue's count"
    assert seen_by_host["intersection_size_from"] == "peer", "and says it is the peer's report, not its own"
    learned = set(json.loads(leak.read_text())["matched"])
    _victim_still_serves_an_honest_psi(fed)
    if learned == set(probes[:10]):
        pytest.xfail(
            "known limit: a counting side running modified code learns which of its IDs matched "
            "(count_only, and below min_intersection); see docs/protocols/psi.md"
        )
    assert not learned, f"the rogue learned {sorted(learned)}"


def test_a_peer_bringing_more_ids_than_our_terms_allow_is_refused_and_audited(fed: Path) -> None:
    reconfigure_rogue(fed, {"psi": "oversize", "extra_ids": 40})
    guest, host, data = _project(fed, [f"c{i}" for i in range(60)], [f"c{i}" for i in range(30, 90)])
    run = guest.run("psi", data=data, id_column="id")
    with pytest.raises(RunFailed, match="max_peer_rows"):
        run.wait(timeout=300, show_progress=False)
    victim_run_ended(host, run.job_id)
    refused = _host_refusals(fed, "declared 100 rows, more than the 60 rows")
    assert len(refused) == 1 and refused["action"].iloc[0] == "step.psi"
    _victim_still_serves_an_honest_psi(fed)


def test_a_peer_sending_more_values_than_it_declared_is_refused_and_audited(fed: Path) -> None:
    reconfigure_rogue(fed, {"psi": "overflow", "extra_values": 7})
    guest, host, data = _project(fed, [f"c{i}" for i in range(60)], [f"c{i}" for i in range(30, 90)])
    run = guest.run("psi", data=data, id_column="id")
    with pytest.raises(RunFailed, match="more 'x1' values than it declared"):
        run.wait(timeout=300, show_progress=False)
    victim_run_ended(host, run.job_id)
    refused = _host_refusals(fed, "more 'x1' values than it declared (67 in one chunk, 60 left")
    assert len(refused) == 1 and refused["action"].iloc[0] == "step.psi"
    _victim_still_serves_an_honest_psi(fed)


# ----- projects with an arbiter: the arbiter counts ---------------------------------------------------------


def _arbiter_project(fed: Path, guest_ids: list[str], host_ids: list[str], **terms: object):
    """Like `_project`, with the arbiter as a third member that brings no data."""
    n = next(_names)
    guest, host, arbiter = (fedbench.connect(home=fed / p) for p in ("guest", "host", "arbiter"))
    guest.datasets.upload(pd.DataFrame({"id": guest_ids}), name=f"ag{n}", id_column="id")
    host.datasets.upload(pd.DataFrame({"id": host_ids}), name=f"ah{n}", id_column="id")
    guest.projects.propose(
        f"arb{n}", partners=["host", "arbiter"], datasets=[f"ag{n}"], **{"psi_runs": 5, **terms}
    )
    arbiter.projects.accept(f"arb{n}", datasets=[])
    host.projects.accept(f"arb{n}", datasets=[f"ah{n}"])
    projects = tuple(side.project(f"arb{n}") for side in (guest, host, arbiter))
    return (*projects, {"guest": f"ag{n}", "host": f"ah{n}"})


def _outcome(project: Any, job_id: str) -> dict[str, Any]:
    """A party's own metrics output of the PSI step, once its record of the job is final."""
    victim_run_ended(project, job_id)
    value: dict[str, Any] = project.run_by_id(job_id).output("metrics").value()
    return value


_PROBES = [f"probe-{i}" for i in range(20)]
_ROGUE_IDS = _PROBES + [f"pad-{i}" for i in range(100)]
_VICTIM_IDS = [f"customer-{i}" for i in range(300)] + _PROBES[:10]
"""The rogue probes 20 IDs (and pads its set to 120); 10 of them are the victim's customers."""


def _nothing_came_back(leak: Path) -> None:
    leaked = json.loads(leak.read_text())
    assert leaked["matched"] == [], f"the rogue identified {leaked['matched']}"
    assert leaked["received"].get("x2", 0) == 0, "a value computed from the rogue's own IDs came back to it"
    assert leaked["received"].get("x1") == len(_VICTIM_IDS), "the rogue got only the victim's masked IDs"


def test_with_an_arbiter_count_only_holds_against_a_tagging_guest(fed3: Path, tmp_path: Path) -> None:
    """The attack of the expected failure above, in a project with an arbiter: no ID leaks, the victim shows
    the arbiter's count (a tagging rogue has in effect brought other IDs), never the rogue's claim; a rogue
    that masks honestly and claims 100 leaves the victim showing the true 10."""
    leak = tmp_path / "leak.json"
    reconfigure_rogue(fed3, {"psi": "tag", "leak_file": str(leak), "claimed_count": 100})
    guest, host, arbiter, data = _arbiter_project(
        fed3, _ROGUE_IDS, _VICTIM_IDS, release="count_only", min_intersection=100
    )
    run = guest.run("psi", data=data, id_column="id").wait(timeout=300, show_progress=False)
    _nothing_came_back(leak)
    seen_by_host, counted = _outcome(host, run.job_id), _outcome(arbiter, run.job_id)
    assert seen_by_host["intersection_size_from"] == "arbiter"
    assert seen_by_host["intersection_size"] == counted["intersection_size"] != 100
    assert (counted["size_guest"], counted["size_host"]) == (len(_ROGUE_IDS), len(_VICTIM_IDS))

    reconfigure_rogue(fed3, {"psi": "record", "leak_file": str(leak), "claimed_count": 100})
    run = guest.run("psi", data=data, id_column="id", force=True).wait(timeout=300, show_progress=False)
    _nothing_came_back(leak)
    seen_by_host = _outcome(host, run.job_id)
    assert (seen_by_host["intersection_size"], seen_by_host["intersection_size_from"]) == (10, "arbiter")
    assert _outcome(arbiter, run.job_id)["intersection_size"] == 10
    assert not seen_by_host["released"] and seen_by_host["rows_received"] is None


def test_with_an_arbiter_a_guest_that_leaves_it_out_is_refused_and_audited(fed3: Path) -> None:
    reconfigure_rogue(fed3, {"psi": "no_arbiter"})
    guest, host, _, data = _arbiter_project(
        fed3, [f"c{i}" for i in range(60)], [f"c{i}" for i in range(30, 90)], release="count_only"
    )
    before = len(_refusals(fed3, "host", "has an arbiter"))
    run = guest.run(
        "psi", data=data, id_column="id", roles={"guest": ["guest"], "host": ["host"], "arbiter": []}
    )
    with pytest.raises(RunFailed, match="has an arbiter"):
        run.wait(timeout=300, show_progress=False)
    victim_run_ended(host, run.job_id)
    refused = _refusals(fed3, "host", "run it with 'arbiter' as the arbiter")
    assert len(refused) == before + 1 and refused["action"].iloc[-1] == "step.psi"
    _victim_still_serves_an_honest_count(fed3)


def test_with_an_arbiter_no_rows_leave_below_the_minimum(fed3: Path, tmp_path: Path) -> None:
    """Release `initiator` with a minimum of 100: a tagging rogue initiator learns nothing, and one that masks
    honestly (recording what it gets) is refused the rows of a 10-ID intersection before anything computed
    from its IDs comes back."""
    leak = tmp_path / "leak.json"
    reconfigure_rogue(fed3, {"psi": "tag", "leak_file": str(leak)})
    guest, host, _, data = _arbiter_project(
        fed3, _ROGUE_IDS, _VICTIM_IDS, release="initiator", min_intersection=100
    )
    run = guest.run("psi", data=data, id_column="id").wait(timeout=300, show_progress=False)
    _nothing_came_back(leak)
    assert not _outcome(host, run.job_id)["released"]

    reconfigure_rogue(fed3, {"psi": "record", "leak_file": str(leak)})
    run = guest.run("psi", data=data, id_column="id", force=True).wait(timeout=300, show_progress=False)
    _nothing_came_back(leak)
    for side in (guest, host):
        seen = _outcome(side, run.job_id)
        assert (seen["intersection_size"], seen["intersection_size_from"]) == (10, "arbiter")
        assert not seen["released"] and "fewer than min_intersection=100" in seen["refusal"]
        assert seen["rows_received"] is None


def test_with_an_arbiter_honest_runs_count_and_release_as_before(fed3: Path) -> None:
    """Honest parties in a project with an arbiter: at or above the minimum, `initiator` releases the
    initiator's rows and `both` aligned rows, as the two-party protocol does; `count_only` counts right."""
    reconfigure_rogue(fed3, {})
    guest_ids, host_ids = [f"c{i}" for i in range(150)], [f"c{i}" for i in range(50, 250)]
    expected = [f"c{i}" for i in range(50, 150)]
    guest, host, _, data = _arbiter_project(fed3, guest_ids, host_ids, release="both", min_intersection=10)
    assert any("the project's arbiter counts the intersection" in c for c in host.caveats), host.caveats
    run = guest.run("psi", data=data, id_column="id", release="initiator").wait(
        timeout=300, show_progress=False
    )
    assert run.output("data").to_pandas()["id"].tolist() == expected, (
        "the initiator's rows, in its table order"
    )
    seen_by_host = _outcome(host, run.job_id)
    assert seen_by_host["released"] and seen_by_host["rows_received"] is None
    assert seen_by_host["intersection_size_from"] == "arbiter"

    run = guest.run("psi", data=data, id_column="id").wait(timeout=300, show_progress=False)
    ours = run.output("data").to_pandas()["id"].tolist()
    theirs = host.run_by_id(run.job_id).output("data").to_pandas()["id"].tolist()
    assert ours == theirs and sorted(ours) == sorted(expected), "the same rows, aligned on both sides"
    assert _outcome(guest, run.job_id)["intersection_size_from"] == "arbiter"
    _victim_still_serves_an_honest_count(fed3)


def _refusals(fed: Path, party: str, text: str) -> pd.DataFrame:
    events = fedbench.connect(home=fed / party).audit()
    return events[~events["allowed"] & events["reason"].str.contains(text, regex=False)]


def _victim_still_serves_an_honest_count(fed: Path) -> None:
    """An honest `count_only` PSI in a fresh arbiter project: both parties show the arbiter's right count."""
    reconfigure_rogue(fed, {})
    guest, host, arbiter, data = _arbiter_project(
        fed, [f"c{i}" for i in range(150)], [f"c{i}" for i in range(50, 250)], release="count_only"
    )
    run = guest.run("psi", data=data, id_column="id").wait(timeout=300, show_progress=False)
    for side in (guest, host, arbiter):
        assert _outcome(side, run.job_id)["intersection_size"] == 100
    assert _outcome(host, run.job_id)["intersection_size_from"] == "arbiter"
