"""Jobs between two real nodes: re-run one stage, failures and resume, cross-job inputs, cancel, kernel-less.

Execution counts are read from each node's own task table, so "not executed again" is checked on both sides.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import job_states, up_with_test_components

import fedbench
from fedbench import sandbox
from fedbench.client.runs import RunFailed
from fedbench.errors import FedbenchError
from fedbench.pipeline import Pipeline
from fedbench.ui.monitor import RunMonitor

PROMPT = 120.0
"""How long a test waits for a failure or cancel that a partner tells us of within seconds: a node that is not
told would wait for its own `recv_timeout` (600 s), so a regression fails here on the wait, never as a slow pass."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """Two nodes with a project `jobs`: guest holds 200 rows, host 120 (for a step that fails on the host)."""
    root = tmp_path_factory.mktemp("jobs")
    up_with_test_components(root, demo_data=False)
    guest = fedbench.connect(home=root / "guest")
    host = fedbench.connect(home=root / "host")
    rng = np.random.default_rng(0)
    guest.datasets.upload(
        pd.DataFrame(
            {"id": [f"u{i}" for i in range(200)], "y": rng.integers(0, 2, 200), "x": rng.normal(size=200)}
        ),
        name="t",
        id_column="id",
        label_column="y",
    )
    host.datasets.upload(
        pd.DataFrame({"id": [f"u{i}" for i in range(120)], "z": rng.normal(size=120)}),
        name="t",
        id_column="id",
    )
    guest.projects.propose("jobs", partners="host", datasets=["t"], jobs_per_day=10_000)
    host.projects.accept("jobs", datasets=["t"])
    yield root
    sandbox.down(root)


def _executions(root: Path, party: str, job_id: str, *, settle: bool = True) -> dict[str, str]:
    """Each step's state in `party`'s own task table (waiting, by default, for that party to finish the job)."""
    return job_states(root, party, job_id, settle=settle)[1]


def _task_errors(root: Path, party: str, job_id: str) -> dict[str, str]:
    """Each failed step's error as `party`'s node recorded it for its own task."""
    import sqlite3

    con = sqlite3.connect(root / party / "fedbench.db")
    try:
        rows = con.execute("select step, error from task where job_id = ? and error is not null", (job_id,))
        return dict(rows.fetchall())
    finally:
        con.close()


def _three_steps(min_rows: int) -> Pipeline:
    return (
        Pipeline("three")
        .add("first", "head", inputs={"data": "t"}, n=110)
        .add("second", "head", inputs={"data": Pipeline.ref("first", "data")}, n=100)
        .add("count", "row_count", inputs={"data": Pipeline.ref("second", "data")}, min_rows=min_rows)
    )


def test_changing_the_last_step_reruns_only_that_step_on_both_sides(fed):
    project = fedbench.connect(home=fed / "guest").project("jobs")
    first = project.run_pipeline(_three_steps(0)).wait(show_progress=False)
    second = project.run_pipeline(_three_steps(50)).wait(show_progress=False)
    for party in ("guest", "host"):
        assert _executions(fed, party, first.job_id) == {
            "first": "succeeded",
            "second": "succeeded",
            "count": "succeeded",
        }
        assert _executions(fed, party, second.job_id) == {
            "first": "reused",
            "second": "reused",
            "count": "succeeded",
        }
    assert first.output("data", step="second").id == second.output("data", step="second").id
    assert (
        first.output("metrics").value()
        == second.output("metrics").value()
        == {"rows": {"guest": 100, "host": 100}, "total": 200}
    )
    assert set(first.metrics["name"]) == {"rows"}
    unchanged = project.run_pipeline(_three_steps(50)).wait(show_progress=False)
    assert set(_executions(fed, "host", unchanged.job_id).values()) == {"reused"}
    forced = project.run_pipeline(_three_steps(50), force=True).wait(show_progress=False)
    assert set(_executions(fed, "host", forced.job_id).values()) == {"succeeded"}


def test_failure_on_host_fails_the_guest_promptly_and_resume_runs_only_the_rest(fed):
    project = fedbench.connect(home=fed / "guest").project("jobs")
    pipeline = (
        Pipeline("fails")
        .add("cut", "head", inputs={"data": "t"}, n=60)
        .add("check", "row_count", inputs={"data": "t"}, min_rows=150)
        .add("after", "row_count", inputs={"data": Pipeline.ref("cut", "data")})
    )
    run = project.run_pipeline(pipeline)
    with pytest.raises(RunFailed, match="host failed .* fewer than min_rows=150"):
        run.wait(timeout=PROMPT, show_progress=False)
    assert _executions(fed, "host", run.job_id)["check"] == "failed"
    guest_check = _executions(fed, "guest", run.job_id)["check"]
    # The host fails `check` at once; the guest may get the news before it starts the step (it never runs
    # then). Once started, its task waits on the host and must end on the host's reason.
    assert guest_check in ("failed", "queued"), guest_check
    if guest_check == "failed":
        assert "fewer than min_rows=150" in _task_errors(fed, "guest", run.job_id)["check"], (
            "the guest's task ends on the host's reason, not on a wait of its own"
        )
    view = RunMonitor(run)
    assert view.state == "failed"
    after = view.rows["after"].state.value
    assert "not run" in after and "waiting" not in after, "a step the failure left unstarted will never run"
    pipeline.steps[1].params["min_rows"] = 100
    resumed = project.run_pipeline(pipeline).wait(show_progress=False)
    for party in ("guest", "host"):
        assert _executions(fed, party, resumed.job_id) == {
            "cut": "reused",
            "check": "succeeded",
            "after": "succeeded",
        }


def test_artifact_of_one_job_feeds_another(fed):
    project = fedbench.connect(home=fed / "guest").project("jobs")
    cut = project.run("head", data="t", n=30).wait(show_progress=False)
    counted = project.run("row_count", data=cut.output("data")).wait(show_progress=False)
    assert counted.output("metrics").value()["total"] == 60
    artifacts = project.artifacts()
    assert cut.output("data").id in set(artifacts["id"])
    table = cut.output("data").to_pandas()
    assert list(table["id"]) == [f"u{i}" for i in range(30)]


def test_cancel_a_running_job_stops_both_sides(fed):
    project = fedbench.connect(home=fed / "guest").project("jobs")
    run = project.run("slow", data="t", seconds=60)
    deadline = time.monotonic() + PROMPT
    while _executions(fed, "host", run.job_id, settle=False).get("slow") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    run.cancel()
    with pytest.raises(RunFailed, match="cancelled"):
        run.wait(timeout=PROMPT, show_progress=False)
    host_view = fedbench.connect(home=fed / "host").project("jobs").run_by_id(run.job_id)
    deadline = time.monotonic() + PROMPT
    while host_view.status != "cancelled":
        assert time.monotonic() < deadline, host_view.info
        time.sleep(0.2)
    assert _executions(fed, "host", run.job_id)["slow"] == "cancelled"


def test_job_finishes_without_the_kernel_and_is_readable_after_reconnecting(fed):
    wb = fedbench.connect(home=fed / "guest")
    run = wb.project("jobs").run("slow", data="t", seconds=1.5)
    job_id = run.job_id
    wb.close()
    time.sleep(0.5)
    again = fedbench.connect(home=fed / "guest").project("jobs").run_by_id(job_id)
    again.wait(timeout=PROMPT, show_progress=False)
    assert again.output("metrics").value() == {"rows": 200}
    assert job_id in set(fedbench.connect(home=fed / "guest").project("jobs").runs()["job_id"])


BAD = [
    (
        "unknown component",
        {"steps": [{"name": "a", "component": "nope", "inputs": {"data": "t"}}]},
        "unknown component",
    ),
    (
        "bad param",
        {"steps": [{"name": "a", "component": "head", "params": {"n": -5}, "inputs": {"data": "t"}}]},
        "step 'a' \\(head\\): n: Input should be greater than or equal to 1",
    ),
    (
        "unknown param",
        {"steps": [{"name": "a", "component": "head", "params": {"rows": 5}, "inputs": {"data": "t"}}]},
        "rows: Extra inputs are not permitted",
    ),
    (
        "cycle",
        {
            "steps": [
                {"name": "a", "component": "head", "inputs": {"data": {"step": "b", "output": "data"}}},
                {"name": "b", "component": "head", "inputs": {"data": {"step": "a", "output": "data"}}},
            ]
        },
        "cycle",
    ),
    ("missing input", {"steps": [{"name": "a", "component": "head"}]}, "missing input 'data'"),
    (
        "unknown step",
        {"steps": [{"name": "a", "component": "head", "inputs": {"data": {"step": "x", "output": "data"}}}]},
        "unknown step 'x'",
    ),
    (
        "dataset not authorised",
        {"steps": [{"name": "a", "component": "head", "inputs": {"data": "secret"}}]},
        "not authorised",
    ),
]


@pytest.mark.parametrize(("case", "pipeline", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_pipeline_is_refused_before_anything_runs(fed, case, pipeline, message):
    wb = fedbench.connect(home=fed / "guest")
    before = len(wb.project("jobs").runs())
    with pytest.raises(FedbenchError, match=message):
        wb.node.call("runs.submit", project="jobs", pipeline=pipeline)
    assert len(wb.project("jobs").runs()) == before


def test_wrong_role_mapping_and_bad_yaml_are_refused(fed, tmp_path):
    wb = fedbench.connect(home=fed / "guest")
    with pytest.raises(FedbenchError, match="roles"):
        wb.project("jobs").run("head", data="t", n=5, roles={"guest": ["guest"]})
    (tmp_path / "bad.yaml").write_text("steps: [unclosed")
    with pytest.raises(FedbenchError, match="not valid YAML"):
        Pipeline.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(FedbenchError, match="unknown component 'no_such_component'"):
        wb.project("jobs").run("no_such_component", data="t")


def test_messages_into_a_job_need_its_project_token(fed):
    from conftest import Federation

    from fedbench.errors import Refused

    federation = Federation(fed)
    project = fedbench.connect(home=fed / "guest").project("jobs")
    run = project.run("slow", data="t", seconds=20)
    try:
        intruder = federation.peer_client("host", "guest")
        key = f"{run.job_id}/slow/rows"
        with pytest.raises(Refused, match="must carry its project's token"):
            intruder.push(key, 999)
        with pytest.raises(Refused, match="wrong token"):
            intruder.push(key, 999, project=(project.info["id"], "0" * 64))
        audit = fedbench.connect(home=fed / "guest").audit()
        refused = audit[(audit["action"] == "job.message") & ~audit["allowed"]]
        assert len(refused) >= 2
    finally:
        run.cancel()


def test_revoking_the_project_cancels_its_running_job_on_both_sides(fed):
    """A revoked project stops at once: the running job is cancelled on both parties, new jobs are refused."""
    from fedbench.errors import Refused

    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    guest.projects.propose("short-lived", partners="host", datasets=["t"])
    host.projects.accept("short-lived", datasets=["t"])
    run = guest.project("short-lived").run("slow", data="t", seconds=60)
    deadline = time.monotonic() + PROMPT
    while _executions(fed, "guest", run.job_id, settle=False).get("slow") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    host.project("short-lived").revoke("partner withdrew consent")
    with pytest.raises(RunFailed, match="revoked"):
        run.wait(timeout=PROMPT, show_progress=False)
    for party in ("guest", "host"):
        assert _executions(fed, party, run.job_id) == {"slow": "cancelled"}
    with pytest.raises(Refused, match="revoked"):
        guest.project("short-lived").run("row_count", data="t")
    assert fedbench.connect(home=fed / "guest").project("jobs").state == "active", "only that project stops"
