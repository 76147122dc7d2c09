"""The dashboards and the run monitor read runs as typed records (`Run.record`), and `%fedbench status` says an
unreachable partner once, plainly. One two-node sandbox for the module; the last test stops the host's node.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import small_two_party_project
from IPython.core.interactiveshell import InteractiveShell

import fedbench
from fedbench import sandbox
from fedbench.client.records import RunInfo, StepInfo
from fedbench.client.runs import Run
from fedbench.ui.choices import earlier_results
from fedbench.ui.dashboards.model_runs import (
    Outputs,
    reuse_sentence,
    run_state_words,
    step_of,
    trained_models,
)
from fedbench.ui.dashboards.psi_outcome import psi_step
from fedbench.ui.monitor import RunMonitor

PROJECT = "records"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two nodes (no demo data) with a project over one 20-row table `t` on each side."""
    root = tmp_path_factory.mktemp("ui_records")
    sandbox.up(root, demo_data=False)
    small_two_party_project(root, PROJECT)
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def counted(fed: Path) -> Run:
    """A succeeded `row_count` run of the project, as the guest's kernel holds it."""
    project = fedbench.connect(home=fed / "guest").project(PROJECT)
    return project.run("row_count", data="t").wait(timeout=120, show_progress=False)


def test_the_ui_helpers_read_the_typed_record_of_a_run(fed: Path, counted: Run) -> None:
    record = counted.record
    step = step_of(record, "row_count")
    assert isinstance(step, StepInfo) and step.done and step.key
    assert psi_step(record) is None
    assert reuse_sentence(record) == "Row_count ran."
    assert run_state_words(record) == "succeeded"
    assert record.reason == "" and record.warnings == ()
    workbench = fedbench.connect(home=fed / "guest")
    project = workbench.project(PROJECT)
    runs = [r.record for r in project.list_runs()]
    assert [r.job_id for r in runs] == [counted.job_id]
    results = earlier_results(project.artifact_records(), runs)
    assert {r.artifact_id for r in results} == {f"{step.key}:metrics"}
    assert all(r.usable and r.job_id == counted.job_id and r.step == "row_count" for r in results)
    assert trained_models(runs, Outputs(workbench)) == [], "no hetero_lr step, no model"
    assert isinstance(record, RunInfo) and record is counted.record, "one record per answer of the node"
    assert counted.refresh().record is not record, "a refresh gives a new record"


def test_the_monitor_draws_a_finished_run_from_its_record(counted: Run) -> None:
    view = RunMonitor(counted, show_results=True)
    assert view.state == "succeeded" and set(view.rows) == {"row_count"}
    assert view.rows["row_count"].bar.value == 1.0
    view.follow(timeout=60)
    assert view.done and "row_count → metrics" in view.results.value
    assert "row_count" in counted._repr_html_() and "succeeded" in repr(counted)


def _stop(root: Path, party: str) -> None:
    """SIGTERM one node, as an operator would, and wait until it is gone."""
    (node,) = [n for n in sandbox.status(root) if n.party == party]
    assert node.pid is not None
    os.kill(node.pid, signal.SIGTERM)
    give_up = time.monotonic() + 30
    while any(n.running for n in sandbox.status(root) if n.party == party):
        assert time.monotonic() < give_up, f"{party}'s node did not stop"
        time.sleep(0.1)


def test_status_magic_says_an_unreachable_partner_once_plainly(fed: Path, capsys) -> None:
    _stop(fed, "host")
    shell = InteractiveShell.instance()
    assert shell.run_cell("%load_ext fedbench").success
    assert shell.run_cell(f"%fedbench status home={fed / 'guest'}").success
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "host" in line and "not reachable" in line.lower()]
    assert len(lines) == 1, out
    (line,) = lines
    assert line.strip().startswith("peer host"), out
    assert line.lower().count("reachable") == 1, f"said once: {line}"
    assert re.sub("`[^`]*`", "", line).count("host") == 1, f"the party named once: {line}"
    assert "its node is stopped" in line and "fedbench sandbox up --home" in line, "what to do stays"
    assert "UNREACHABLE" not in out
