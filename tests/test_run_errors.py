"""A failed run raises, in the notebook, the class of the error that failed it (and `RunFailed` too), read
from typed run records; an existing node database gains the error-code columns when it opens.

The nodes load `tests/plugins/fb_kernel_unknown.py`, whose `fail_as` step fails on a chosen party with a
chosen error class.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import DATABASE_URL, small_two_party_project, up_with_test_components
from sqlalchemy import text

import fedbench
from fedbench import sandbox
from fedbench.client.records import Event, RunInfo, StepInfo
from fedbench.client.runs import RunFailed
from fedbench.components.spec import ParamsError
from fedbench.errors import Refused
from fedbench.psi.errors import PsiRefused
from fedbench.store import Database, Job, Task, sqlite_url


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two nodes with a project `errors` over 20 rows on each side."""
    root = tmp_path_factory.mktemp("run_errors")
    up_with_test_components(root, modules=("fb_kernel_unknown",))
    small_two_party_project(root, "errors")
    yield root
    sandbox.down(root)


def _failed(fed: Path, party: str, error: str) -> tuple[RunFailed, fedbench.client.runs.Run]:
    """Run `fail_as` failing on `party` with `error`; the exception the guest's `wait()` raised, and the run."""
    project = fedbench.connect(home=fed / "guest").project("errors")
    run = project.run("fail_as", data="t", party=party, error=error)
    with pytest.raises(RunFailed) as caught:
        run.wait(timeout=120, show_progress=False)
    return caught.value, run


def test_own_failure_raises_its_class_and_is_recorded_in_typed_records(fed: Path) -> None:
    error, run = _failed(fed, "guest", "psi_refused")
    assert isinstance(error, PsiRefused) and isinstance(error, Refused) and isinstance(error, RunFailed)
    assert "guest failed at step 'fail_as'" in str(error) and "raised on purpose by guest" in str(error)
    info = run.record
    assert isinstance(info, RunInfo) and info.state == "failed" and info.error_code == "psi_refused"
    (step,) = info.steps
    assert isinstance(step, StepInfo) and step.state == "failed" and step.error_code == "psi_refused"
    assert run.error_code == "psi_refused"
    with pytest.raises(FrozenInstanceError):
        info.state = "succeeded"  # type: ignore[misc]
    with pytest.raises(PsiRefused):  # as a notebook catches it (`except PsiRefused:`), waiting again
        run.wait(timeout=60, show_progress=False)
    events = list(run.events(timeout=60))
    assert events and all(isinstance(e, Event) for e in events)
    assert (
        events[-1].type == "job" and events[-1].state == "failed" and events[-1].error_code == "psi_refused"
    )


def test_peer_failure_keeps_the_peer_code(fed: Path) -> None:
    error, run = _failed(fed, "host", "params")
    assert isinstance(error, ParamsError) and isinstance(error, RunFailed)
    assert "host failed at step 'fail_as'" in str(error)
    assert run.record.error_code == "params"
    host_run = fedbench.connect(home=fed / "host").project("errors").run_by_id(run.job_id)
    with pytest.raises(ParamsError):
        host_run.wait(timeout=60, show_progress=False)
    assert host_run.record.steps[0].error_code == "params"


def test_refusal_from_the_peer_is_caught_as_refused(fed: Path) -> None:
    error, _ = _failed(fed, "host", "refused")
    assert isinstance(error, Refused) and not isinstance(error, PsiRefused)


def test_an_error_class_the_kernel_does_not_know_stays_a_plain_run_failed(fed: Path) -> None:
    error, run = _failed(fed, "host", "plugin_only")
    assert type(error) is RunFailed and "raised on purpose by host" in str(error)
    assert run.record.error_code == "plugin_only"


def test_a_run_that_succeeds_has_no_error_code(fed: Path) -> None:
    project = fedbench.connect(home=fed / "guest").project("errors")
    run = project.run("fail_as", data="t", party="nobody").wait(timeout=120, show_progress=False)
    assert run.record.state == "succeeded" and run.error_code is None
    assert [s.state for s in run.record.steps] == ["succeeded"]


def _database_url(tmp_path: Path) -> str:
    """SQLite in `tmp_path`, or a database of this test's own on FEDBENCH_TEST_DATABASE_URL's server."""
    if not DATABASE_URL:
        return sqlite_url(tmp_path)
    return DATABASE_URL.replace("{sandbox}", uuid.uuid4().hex[:10]).replace("{party}", "upgrade")


def test_an_existing_database_gains_the_error_code_columns(tmp_path: Path) -> None:
    url = _database_url(tmp_path)
    database = Database(url)
    with database.engine.begin() as connection:  # what a node home of the release before looks like
        for table in ("task", "job"):
            connection.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN error_code")
        connection.execute(
            text(
                "INSERT INTO job (id, project, name, use, initiator, datasets, spec, state, created_at) "
                "VALUES ('old', 'p', 'n', 'train', 'guest', '{}', '{}', 'failed', :when)"
            ),
            {"when": datetime(2026, 1, 1, tzinfo=UTC)},
        )
    database.close()
    database = Database(url)
    try:
        with database.session() as session:
            old = session.get(Job, "old")
            assert old is not None and old.state == "failed" and old.error_code is None
            session.add(
                Task(
                    id="old:s", job_id="old", component="c", role="guest", party="guest", error_code="params"
                )
            )
        with database.session() as session:
            task = session.get(Task, "old:s")
            assert task is not None and task.error_code == "params"
    finally:
        database.close()
