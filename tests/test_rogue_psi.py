"""Rogue PSI peers against an unmodified victim node (issue #14, hole 5): a counting side that masks each ID
with its own scalar and reports a false count; a peer that brings more IDs than our terms allow it; a peer that
sends more values than it declared. The rogue is the guest (the initiator); the host is the victim."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rogue import restart_rogue, rogue_sandbox, victim_run_ended

import fedbench
from fedbench import sandbox
from fedbench.client.runs import RunFailed

_names = itertools.count()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("rogue-psi")
    rogue_sandbox(root, patches=["fb_rogue_psi"], settings={}, rogue="guest", demo_data=False)
    yield root
    sandbox.down(root)


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
    restart_rogue(fed, {})
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
    """The documented limit of `count_only` and `min_intersection` against modified code (docs/protocols/psi.md,
    "Against a party running modified code"): two-party ECDH-PSI cannot stop it, and no proof over the
    elements can (the verifier never knows the bases, H(id)). Recorded as an expected failure of the
    guarantee until a protocol that holds (a third party or a verifiable shuffle) replaces it."""
    leak = tmp_path / "leak.json"
    restart_rogue(fed, {"psi": "tag", "leak_file": str(leak), "claimed_count": 100})
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
    restart_rogue(fed, {"psi": "oversize", "extra_ids": 40})
    guest, host, data = _project(fed, [f"c{i}" for i in range(60)], [f"c{i}" for i in range(30, 90)])
    run = guest.run("psi", data=data, id_column="id")
    with pytest.raises(RunFailed, match="max_peer_rows"):
        run.wait(timeout=300, show_progress=False)
    victim_run_ended(host, run.job_id)
    refused = _host_refusals(fed, "declared 100 rows, more than the 60 rows")
    assert len(refused) == 1 and refused["action"].iloc[0] == "step.psi"
    _victim_still_serves_an_honest_psi(fed)


def test_a_peer_sending_more_values_than_it_declared_is_refused_and_audited(fed: Path) -> None:
    restart_rogue(fed, {"psi": "overflow", "extra_values": 7})
    guest, host, data = _project(fed, [f"c{i}" for i in range(60)], [f"c{i}" for i in range(30, 90)])
    run = guest.run("psi", data=data, id_column="id")
    with pytest.raises(RunFailed, match="more 'x1' values than it declared"):
        run.wait(timeout=300, show_progress=False)
    victim_run_ended(host, run.job_id)
    refused = _host_refusals(fed, "more 'x1' values than it declared (67 in one chunk, 60 left")
    assert len(refused) == 1 and refused["action"].iloc[0] == "step.psi"
    _victim_still_serves_an_honest_psi(fed)
