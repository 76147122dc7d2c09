"""PSI as a component between two real nodes: exact results, release policies, limits, failures and reuse."""

from __future__ import annotations

import itertools
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest
from conftest import job_states

import fedbench
from fedbench import sandbox
from fedbench.client.runs import RunFailed
from fedbench.errors import Refused

_names = itertools.count()


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    root = tmp_path_factory.mktemp("psi")
    sandbox.up(root, demo_data=False)
    yield root
    sandbox.down(root)


def _phones(n: int, start: int = 0) -> list[str]:
    return [f"+44 (0)20 7946 {i:05d}" for i in range(start, start + n)]


def _project(fed, guest_ids, host_ids, host_max_rows=None, **terms):
    """A fresh project whose datasets hold these IDs (guest has a label, host a feature)."""
    n = next(_names)
    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    rng = np.random.default_rng(n)
    guest.datasets.upload(
        pd.DataFrame({"phone": guest_ids, "y": rng.integers(0, 2, len(guest_ids))}),
        name=f"g{n}",
        id_column="phone",
        label_column="y",
    )
    host.datasets.upload(
        pd.DataFrame({"phone": host_ids, "x": rng.normal(size=len(host_ids))}),
        name=f"h{n}",
        id_column="phone",
    )
    settings = {"psi_runs": 50, "min_intersection": 1, "release": "both", **terms}
    guest.projects.propose(f"psi{n}", partners="host", datasets=[f"g{n}"], **settings)
    host.projects.accept(f"psi{n}", datasets=[f"h{n}"], max_psi_rows=host_max_rows)
    return guest.project(f"psi{n}"), host.project(f"psi{n}"), {"guest": f"g{n}", "host": f"h{n}"}


def _states(fed, party, job_id, settle=True):
    return job_states(fed, party, job_id, settle=settle)


def test_intersection_matches_plaintext_and_rows_align(fed, tmp_path):
    guest_ids = _phones(1000)
    host_ids = [p.replace(" (0)", "").replace(" ", "-") for p in _phones(700, start=600)]
    guest, host, data = _project(fed, guest_ids, host_ids)
    run = guest.run("psi", data=data, id_column="phone", normalise="phone").wait(show_progress=False)
    ours = run.output("data").to_pandas()
    theirs = host.run_by_id(run.job_id).output("data").to_pandas()
    expected = {p for p in guest_ids[600:]}
    assert set(ours["phone"]) == expected and len(ours) == 400
    digits = lambda s: "".join(c for c in s if c.isdigit()).replace("440", "44", 1)  # noqa: E731
    assert [digits(a) for a in ours["phone"]] == [digits(b) for b in theirs["phone"]]
    metrics = run.output("metrics").value()
    assert metrics["intersection_size"] == 400 and metrics["size_peer"] == 700
    path = run.output("data").download(tmp_path / "matched.csv")
    assert len(pd.read_csv(path)) == 400


def test_unchanged_psi_is_reused_without_running(fed):
    guest, _, data = _project(fed, _phones(50), _phones(50, start=25))
    first = guest.run("psi", data=data, id_column="phone").wait(show_progress=False)
    again = guest.run("psi", data=data, id_column="phone").wait(show_progress=False)
    for party in ("guest", "host"):
        assert _states(fed, party, again.job_id) == ("succeeded", {"psi": "reused"})
    assert first.output("data").id == again.output("data").id


@pytest.mark.parametrize(
    ("release", "guest_rows", "host_rows"),
    [
        ("both", True, True),
        ("initiator", True, False),
        ("partner", False, True),
        ("count_only", False, False),
    ],
)
def test_release_policy_decides_who_receives_rows(fed, release, guest_rows, host_rows):
    guest, host, data = _project(fed, _phones(40), _phones(40, start=10), release=release)
    run = guest.run("psi", data=data, id_column="phone").wait(show_progress=False)
    for view, entitled in ((guest, guest_rows), (host, host_rows)):
        seen = view.run_by_id(run.job_id)
        metrics = seen.output("metrics").value()
        assert metrics["intersection_size"] == 30
        stored = set(view.artifacts()["name"]) if not view.artifacts().empty else set()
        assert ("data" in stored) == entitled, (release, view.name, stored)
        assert (metrics["rows_received"] is not None) == entitled


def test_a_run_may_narrow_but_not_widen_the_release(fed):
    guest, _, data = _project(fed, _phones(20), _phones(20), release="initiator")
    with pytest.raises(RunFailed, match="gives more than the project allows"):
        guest.run("psi", data=data, id_column="phone", release="both").wait(show_progress=False)
    narrowed = guest.run("psi", data=data, id_column="phone", release="count_only").wait(show_progress=False)
    assert narrowed.output("metrics").value()["rows_received"] is None


def test_intersection_below_minimum_releases_nothing(fed):
    guest, host, data = _project(fed, _phones(30), _phones(30, start=25), min_intersection=10)
    run = guest.run("psi", data=data, id_column="phone").wait(show_progress=False)
    metrics = run.output("metrics").value()
    assert metrics["released"] is False and metrics["refusal"]
    for view in (guest, host):
        names = set(view.artifacts()["name"])
        assert "data" not in names


def test_psi_quota_and_declared_size_hold(fed):
    guest, host, data = _project(fed, _phones(30), _phones(30), psi_runs=1)
    guest.run("psi", data=data, id_column="phone").wait(show_progress=False)
    with pytest.raises(Refused, match="quota exhausted"):
        guest.run("psi", data=data, id_column="phone", lower=True)
    small, _, small_data = _project(fed, _phones(30), _phones(30), host_max_rows=10)
    with pytest.raises(Refused, match="more than its declared maximum of 10"):
        small.run("psi", data=small_data, id_column="phone")
    refusals = fedbench.connect(home=fed / "guest").audit()
    assert (refusals["reason"].str.contains("declared maximum") & ~refusals["allowed"]).any()


KILLED_IDS = 60_000
"""IDs a side of the PSI killed half way: on one worker process each side masks twice this many, so the step
still runs seconds after it started (the kill comes 1 s in), and the rerun stays short."""


def test_run_killed_half_way_fails_on_both_sides_and_rerun_succeeds(fed):
    half = KILLED_IDS // 2
    guest, host, data = _project(fed, _phones(KILLED_IDS), _phones(KILLED_IDS, start=half))
    run = guest.run("psi", data=data, id_column="phone", workers=1)
    deadline = time.monotonic() + 60
    while _states(fed, "host", run.job_id, settle=False)[1].get("psi") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)
    os.kill(int((fed / "host" / "node.pid").read_text()), signal.SIGKILL)
    sandbox.up(fed, demo_data=False)
    # whichever the guest notices first: the host back and saying so, or the heartbeat missing it for 6 s
    with pytest.raises(RunFailed, match="host was restarted|host stopped answering"):
        run.wait(timeout=120, show_progress=False)
    assert _states(fed, "host", run.job_id) == ("failed", {"psi": "failed"})
    again = guest.run("psi", data=data, id_column="phone").wait(timeout=300, show_progress=False)
    assert again.output("metrics").value()["intersection_size"] == half


@pytest.mark.parametrize("size", [0, 1, 1000, 70_000])
def test_intersection_equals_plaintext_for_many_sizes(fed, size):
    """Unicode IDs; the key is the number in each ID (a regex), so one row duplicates and one keys empty.

    The largest size still spans several of the protocol's chunks (65,536 IDs) on both sides (the host holds
    twice the guest's IDs) and pushes of 2 MiB; many chunks on worker processes: test_psi_protocol.py."""
    rng = np.random.default_rng(size)
    universe = np.arange(max(4 * size, 8))
    guest_numbers = list(rng.choice(universe, size=size, replace=False)) if size else []
    host_numbers = list(rng.choice(universe, size=max(size, 1) * 2, replace=False))
    expected = {str(n) for n in set(guest_numbers) & set(host_numbers)}
    guest_rows = (
        [f"客户-{n}-é" for n in guest_numbers] + ([f"Kunde {guest_numbers[0]}"] if size else []) + ["n/a"]
    )
    host_rows = [f"клиент {n}" for n in host_numbers] + ["unknown"]
    guest, host, data = _project(fed, guest_rows, host_rows, min_intersection=0)
    run = guest.run("psi", data=data, id_column="phone", regex=r"\d+", duplicates="first")
    run.wait(timeout=600, show_progress=False)
    metrics = run.output("metrics").value()
    assert metrics["intersection_size"] == len(expected)
    assert metrics["ids"]["duplicates"] == (1 if size else 0) and metrics["ids"]["empty"] == 1
    if expected:
        ours = run.output("data").to_pandas()
        theirs = host.run_by_id(run.job_id).output("data").to_pandas()
        assert {p.split("-")[1] for p in ours["phone"]} == expected
        assert [p.split("-")[1] for p in ours["phone"]] == [p.split(" ")[1] for p in theirs["phone"]]


def test_several_key_columns_combine_into_one_key(fed):
    n = next(_names)
    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    g = pd.DataFrame(
        {"id": [f"c{i}" for i in range(6)], "branch": [1, 1, 2, 2, 3, 3], "y": [0, 1, 0, 1, 0, 1]}
    )
    h = pd.DataFrame({"id": [f"c{i}" for i in range(4)], "branch": [1, 2, 2, 9]})
    guest.datasets.upload(g, name=f"mg{n}", id_column="id", label_column="y")
    host.datasets.upload(h, name=f"mh{n}", id_column="id")
    guest.projects.propose(
        f"multi{n}", partners="host", datasets=[f"mg{n}"], min_intersection=1, release="both"
    )
    host.projects.accept(f"multi{n}", datasets=[f"mh{n}"])
    data = {"guest": f"mg{n}", "host": f"mh{n}"}
    run = (
        guest.project(f"multi{n}").run("psi", data=data, id_column=["id", "branch"]).wait(show_progress=False)
    )
    assert run.output("metrics").value()["intersection_size"] == 2
    assert sorted(run.output("data").to_pandas()["id"]) == ["c0", "c2"]
