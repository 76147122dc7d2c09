"""A partner's node killed in the middle of a step: our run fails soon with a plain reason, and resumes later.

The host node (and its worker processes) is killed with SIGKILL while a PSI runs between two real nodes. The
guest's heartbeat must notice and fail the run with "host stopped answering" (without it, the guest waits for
minutes on a message that never comes). Once the host is back, running the same pipeline again reuses the
steps that had succeeded and runs only the failed one.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import job_states, up_with_test_components

import fedbench
from fedbench import sandbox, ui
from fedbench.client.runs import RunFailed
from fedbench.errors import PeerUnavailable
from fedbench.pipeline import Pipeline

IDS = 40_000
"""Enough IDs that the PSI is still running when its host is killed, few enough that the rerun is quick."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two nodes of this module alone (a node gets killed) with a project `death` over 40,000 IDs each."""
    root = tmp_path_factory.mktemp("death")
    up_with_test_components(root)
    guest = fedbench.connect(home=root / "guest")
    host = fedbench.connect(home=root / "host")
    guest.datasets.upload(
        pd.DataFrame({"id": [f"c{i}" for i in range(IDS)], "y": [i % 2 for i in range(IDS)]}),
        name="ids",
        id_column="id",
        label_column="y",
    )
    host.datasets.upload(
        pd.DataFrame({"id": [f"c{i}" for i in range(IDS // 2, IDS + IDS // 2)], "x": range(IDS)}),
        name="ids",
        id_column="id",
    )
    guest.projects.propose("death", partners="host", datasets=["ids"], psi_runs=10, release="both")
    host.projects.accept("death", datasets=["ids"])
    yield root
    sandbox.down(root)


def _kill_node_and_workers(home: Path) -> None:
    """SIGKILL a sandbox node and every process of its session (its workers and their pools)."""
    pid = int((home / "node.pid").read_text())
    os.killpg(os.getpgid(pid), signal.SIGKILL)


def test_killed_host_fails_the_run_plainly_and_the_rerun_resumes_at_the_failed_step(fed: Path) -> None:
    project = fedbench.connect(home=fed / "guest").project("death")
    pipeline = (
        Pipeline("match")
        .add("cut", "head", inputs={"data": "ids"}, n=IDS)
        .add("match", "psi", inputs={"data": Pipeline.ref("cut", "data")}, id_column="id", workers=1)
    )
    run = project.run_pipeline(pipeline)
    deadline = time.monotonic() + 120
    while job_states(fed, "host", run.job_id, settle=False)[1].get("match") != "running":
        assert time.monotonic() < deadline, "the PSI step did not start on the host"
        time.sleep(0.1)
    time.sleep(1.0)
    _kill_node_and_workers(fed / "host")

    with pytest.raises(RunFailed, match="host stopped answering") as failed:
        run.wait(timeout=60, show_progress=False)
    assert isinstance(failed.value, PeerUnavailable), "a notebook can catch it as PeerUnavailable"
    steps = {s["step"]: s for s in run.info["steps"]}
    assert steps["cut"]["state"] == "succeeded"
    assert steps["match"]["state"] == "failed"
    assert "host stopped answering" in steps["match"]["error"]
    assert not any(word in run.info["error"] for word in ("StatusCode", "grpc", "UNAVAILABLE"))
    assert job_states(fed, "guest", run.job_id) == ("failed", {"cut": "succeeded", "match": "failed"})
    stored = set(project.artifacts()["id"])
    assert not any(key.startswith(steps["match"]["key"]) for key in stored), "half a PSI was stored"
    assert f"{steps['cut']['key']}:data" in stored
    view = ui.monitor(run, start=False)
    view.follow(timeout=30)
    assert view.state == "failed" and "host stopped answering" in view.results.value
    assert view.rows["match"].bar.bar_style == "danger"

    up_with_test_components(fed)
    again = project.run_pipeline(pipeline).wait(timeout=300, show_progress=False)
    for party in ("guest", "host"):
        assert job_states(fed, party, again.job_id) == ("succeeded", {"cut": "reused", "match": "succeeded"})
    assert again.output("metrics", step="match").value()["intersection_size"] == IDS // 2


def test_a_partner_that_is_only_slow_to_answer_for_a_few_seconds_is_not_lost(fed: Path) -> None:
    """The host node frozen (SIGSTOP) for 3 s, under the heartbeat's patience: the run carries on and succeeds."""
    project = fedbench.connect(home=fed / "guest").project("death")
    run = project.run("slow", data="ids", seconds=8)
    deadline = time.monotonic() + 60
    while job_states(fed, "host", run.job_id, settle=False)[1].get("slow") != "running":
        assert time.monotonic() < deadline, "the slow step did not start on the host"
        time.sleep(0.1)
    pid = int((fed / "host" / "node.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(3.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    run.wait(timeout=120, show_progress=False)
    assert job_states(fed, "host", run.job_id) == ("succeeded", {"slow": "succeeded"})


def test_a_node_stopped_while_its_partner_is_gone_still_exits(fed: Path) -> None:
    """The host killed mid-PSI, then the guest's node asked to stop before its heartbeat gives up: the node
    exits within the stop's grace, though its step and its handlers still wait on the host."""
    project = fedbench.connect(home=fed / "guest").project("death")
    run = project.run_pipeline(
        Pipeline("stranded")
        .add("cut", "head", inputs={"data": "ids"}, n=IDS - 1)
        .add("match", "psi", inputs={"data": Pipeline.ref("cut", "data")}, id_column="id", workers=1)
    )
    deadline = time.monotonic() + 120
    while job_states(fed, "host", run.job_id, settle=False)[1].get("match") != "running":
        assert time.monotonic() < deadline, "the PSI step did not start on the host"
        time.sleep(0.1)
    time.sleep(1.0)
    _kill_node_and_workers(fed / "host")
    guest_pid = int((fed / "guest" / "node.pid").read_text())
    os.kill(guest_pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _alive(guest_pid):
        assert time.monotonic() < deadline, "the guest node still runs 60 s after SIGTERM"
        time.sleep(0.2)
    up_with_test_components(fed)
    assert job_states(fed, "guest", run.job_id)[0] == "failed"
    stopped = fedbench.connect(home=fed / "guest").project("death").run_by_id(run.job_id)
    assert "guest was stopped while the job ran" in stopped.info["error"], stopped.info["error"]


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
