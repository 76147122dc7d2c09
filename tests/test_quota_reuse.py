"""The PSI-run quota counts PSIs that run, not reruns that reuse a stored PSI (#15 item 8), on every node.

Each node counts from its own records: a PSI step counts unless that node holds its outputs already; one it
held but runs after all (the partner lost its part) counts when the job starts. A forced rerun counts. Real
nodes (the suite's shared two-party sandbox; this module's projects are `quota<n>`) and small tables.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from conftest import Federation

import fedbench
from fedbench.client.runs import Run
from fedbench.errors import Refused

_names = itertools.count()


@pytest.fixture(scope="module")
def fed(shared_sandbox: Federation) -> Path:
    return shared_sandbox.root


def _project(fed: Path, psi_runs: int) -> tuple[fedbench.Project, fedbench.Project, dict[str, str]]:
    """A fresh project of two small tables (40 and 30 IDs, 20 shared) allowing `psi_runs` PSI runs."""
    n = next(_names)
    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    guest.datasets.upload(
        pd.DataFrame({"id": [f"c{i}" for i in range(40)], "y": [i % 2 for i in range(40)]}),
        name=f"qg{n}",
        id_column="id",
        label_column="y",
    )
    host.datasets.upload(
        pd.DataFrame({"id": [f"c{i}" for i in range(20, 50)], "x": [float(i) for i in range(30)]}),
        name=f"qh{n}",
        id_column="id",
    )
    terms = {"psi_runs": psi_runs, "min_intersection": 1, "release": "both"}
    guest.projects.propose(f"quota{n}", partners="host", datasets=[f"qg{n}"], **terms)
    host.projects.accept(f"quota{n}", datasets=[f"qh{n}"])
    return guest.project(f"quota{n}"), host.project(f"quota{n}"), {"guest": f"qg{n}", "host": f"qh{n}"}


def _psi_runs(*views: fedbench.Project) -> list[int]:
    return [int(view.usage()["psi_runs"]) for view in views]


def _psi_state(run: Run) -> str:
    return str(run.steps().set_index("step").loc["psi", "state"])


def test_reruns_that_reuse_the_psi_cost_no_run_and_new_psis_do(fed: Path) -> None:
    guest, host, data = _project(fed, psi_runs=2)
    first = guest.run("psi", data=data).wait(show_progress=False)
    assert _psi_state(first) == "succeeded"
    assert _psi_runs(guest, host) == [1, 1]
    for _ in range(3):
        again = guest.run("psi", data=data).wait(show_progress=False)
        assert _psi_state(again) == "reused"
    assert _psi_runs(guest, host) == [1, 1], "a reused PSI moved no ID and counts on neither node"
    other = guest.run("psi", data=data, lower=True).wait(show_progress=False)
    assert _psi_state(other) == "succeeded"
    assert _psi_runs(guest, host) == [2, 2], "a PSI that ran counts on both nodes"
    reused = guest.run("psi", data=data).wait(show_progress=False)
    assert _psi_state(reused) == "reused", "with every run used, a rerun that reuses a PSI is still admitted"
    with pytest.raises(Refused, match="quota exhausted: 2 PSI runs"):
        guest.run("psi", data=data, force=True)
    with pytest.raises(Refused, match="quota exhausted: 2 PSI runs"):
        guest.run("psi", data=data, normalise="phone")
    assert _psi_runs(guest, host) == [2, 2]


def test_a_psi_we_hold_counts_when_it_runs_because_the_partner_lost_its_part(fed: Path) -> None:
    guest, host, data = _project(fed, psi_runs=3)
    first = guest.run("psi", data=data).wait(show_progress=False)
    assert _psi_runs(guest, host) == [1, 1]
    key = str(first.steps().set_index("step").loc["psi", "key"])
    con = sqlite3.connect(fed / "host" / "fedbench.db")
    try:
        paths = [row[0] for row in con.execute("select path from artifact where key like ?", (f"{key}:%",))]
    finally:
        con.close()
    assert paths
    for stored in paths:
        for found in (fed / "host").rglob(Path(stored).name):
            found.unlink()
    rerun = guest.run("psi", data=data).wait(show_progress=False)
    assert _psi_state(rerun) == "succeeded", "the host no longer holds its part: the PSI ran again"
    assert _psi_runs(guest, host) == [2, 2], (
        "the guest held its part at admission and counted the run at start"
    )
