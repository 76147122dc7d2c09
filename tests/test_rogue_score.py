"""Hole 8 of issue #14: `score` must not be a membership oracle on the host's rows (real sandbox, rogue guest).

The project allows one PSI run, which is used to train a model. The guest then tries to learn about host rows
that PSI never released: by `ids` (held but unreleased IDs, and IDs the host does not hold), and by scoring the
host's whole dataset with an alignment message echoed back (`tests/plugins/fb_rogue_score.py`). The host
scores only rows a PSI of the project released to the guest, decided from its own records; it refuses the
rest with one message that does not depend on which IDs it holds, audits the refusal, and still serves an
honest scoring run afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rogue import reconfigure_rogue, rogue_sandbox, victim_run_ended

import fedbench
from fedbench import sandbox
from fedbench.client.runs import RunFailed
from fedbench.components.builtin.released import released_rows
from fedbench.errors import Refused
from fedbench.federation import Context, PsiRelease, TaskIO
from fedbench.net.transport import InMemoryFederation
from fedbench.node.releases import released_to
from fedbench.pipeline import Pipeline

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

PROJECT = "scoring"
GUEST_IDS = [f"c{i:04d}" for i in range(0, 250)]
HOST_IDS = [f"c{i:04d}" for i in range(50, 300)]
RELEASED = sorted(set(GUEST_IDS) & set(HOST_IDS))
UNRELEASED_HELD = ["c0260", "c0270", "c0281"]
NOT_HELD = ["zz-0001", "zz-0002", "zz-0003"]


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(8)
    every = {f"c{i:04d}": rng.normal(size=4) for i in range(300)}
    guest = pd.DataFrame(
        {
            "id": GUEST_IDS,
            "x1": [every[i][0] for i in GUEST_IDS],
            "x2": [every[i][1] for i in GUEST_IDS],
            "y": [int(every[i][0] + every[i][2] > 0) for i in GUEST_IDS],
        }
    )
    host = pd.DataFrame(
        {"id": HOST_IDS, "h1": [every[i][2] for i in HOST_IDS], "h2": [every[i][3] for i in HOST_IDS]}
    )
    return guest, host


@pytest.fixture(scope="module")
def scoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A sandbox with a rogue guest, a project allowing one PSI run, and a model trained on its output."""
    root = tmp_path_factory.mktemp("rogue_score") / "sb"
    federation = rogue_sandbox(
        root, patches=["fb_rogue_score"], settings={"echo_alignment": True}, rogue="guest", demo_data=False
    )
    try:
        guest = fedbench.connect(home=federation.home("guest").root)
        host = fedbench.connect(home=federation.home("host").root)
        guest_table, host_table = _tables()
        guest.datasets.upload(guest_table, name="sc", id_column="id", label_column="y")
        host.datasets.upload(host_table, name="sc", id_column="id")
        guest.projects.propose(
            PROJECT,
            partners="host",
            datasets=["sc"],
            uses=["psi", "train", "score"],
            psi_runs=1,
            min_intersection=10,
            release="both",
        )
        host.projects.accept(PROJECT, datasets=["sc"])
        pipeline = Pipeline("train")
        pipeline.add("psi", "psi", inputs={"data": "sc"})
        pipeline.add(
            "train",
            "hetero_lr",
            inputs={"train": pipeline.ref("psi", "data")},
            key_bits=1024,
            epochs=1,
            batch_size=0,
        )
        run = guest.project(PROJECT).run_pipeline(pipeline).wait(show_progress=False)
        yield {
            "root": root,
            "guest": guest,
            "host": host,
            "model": run.output("model", step="train").as_ref(),
            "aligned": run.output("data", step="psi").as_ref(),
        }
    finally:
        sandbox.down(root)


def _refusals(wb: Any) -> pd.DataFrame:
    audit = wb.project(PROJECT).audit()
    return audit[~audit["allowed"].astype(bool) & audit["reason"].str.contains("released", na=False)]


def _attempt(scoring: dict[str, Any], **params: Any) -> tuple[pd.DataFrame | None, str]:
    """Run a score job as the rogue guest: its output (the host's partial scores) or the run's error."""
    project = scoring["guest"].project(PROJECT)
    run = project.run("score", model=scoring["model"], data="sc", **params)
    try:
        run.wait(show_progress=False)
    except RunFailed as exc:
        victim_run_ended(scoring["host"].project(PROJECT), run.job_id)
        return None, str(exc)
    return run.output("scores").to_pandas(), ""


def _without_run_id(error: str) -> str:
    """A run's error without its leading "run <job id> failed:"."""
    return error.split(":", 1)[1]


def test_the_only_psi_run_is_used(scoring):
    project = scoring["guest"].project(PROJECT)
    with pytest.raises(fedbench.FedbenchError, match="quota exhausted: 1 PSI runs"):
        project.run("psi", data="sc", force=True).wait(show_progress=False)


def test_ids_the_psi_never_released_are_refused_alike_whether_the_host_holds_them_or_not(scoring):
    before = len(_refusals(scoring["host"]))
    held, held_error = _attempt(scoring, ids=UNRELEASED_HELD)
    absent, absent_error = _attempt(scoring, ids=NOT_HELD)
    assert held is None, f"the host scored rows no PSI released to the guest: {held}"
    assert absent is None
    for probe in NOT_HELD + UNRELEASED_HELD:
        assert probe not in held_error + absent_error
    assert _without_run_id(held_error) == _without_run_id(absent_error)
    assert "not released to 'guest' by a PSI of this project" in held_error
    assert len(_refusals(scoring["host"])) >= before + 2


def test_the_whole_host_dataset_is_not_scored_behind_an_echoed_alignment(scoring):
    before = len(_refusals(scoring["host"]))
    scores, error = _attempt(scoring)
    assert scores is None, f"the host sent partial scores of {len(scores)} rows, {len(HOST_IDS)} in its table"
    assert "not released to 'guest' by a PSI of this project" in error
    assert len(_refusals(scoring["host"])) == before + 1


def test_training_on_the_raw_dataset_sends_no_partial_scores_of_unreleased_rows(scoring):
    """hetero_lr's training scores (`score_rows`) are per-row partial scores too: the same check applies."""
    before = len(_refusals(scoring["host"]))
    project = scoring["guest"].project(PROJECT)
    run = project.run("hetero_lr", train="sc", key_bits=1024, epochs=1, batch_size=0)
    with pytest.raises(RunFailed, match="not released to 'guest' by a PSI of this project"):
        run.wait(show_progress=False)
    victim_run_ended(scoring["host"].project(PROJECT), run.job_id)
    assert len(_refusals(scoring["host"])) == before + 1


def test_an_honest_guest_still_scores_the_released_rows(scoring):
    reconfigure_rogue(scoring["root"], {}, rogue="guest")
    project = scoring["guest"].project(PROJECT)
    run = project.run("score", model=scoring["model"], data=scoring["aligned"]).wait(show_progress=False)
    scores = run.output("scores").to_pandas()
    assert sorted(scores["id"]) == RELEASED and scores["score"].between(0, 1).all()
    picked = RELEASED[5:8]
    run = project.run("score", model=scoring["model"], data="sc", ids=picked).wait(show_progress=False)
    assert list(run.output("scores").to_pandas()["id"]) == picked


def _host_context(releases: list[PsiRelease]) -> Context:
    """The host's context of a score step (no node, no messages): only its records of PSI releases matter."""
    io = TaskIO(
        read_input=lambda name: None,
        write_output=lambda name, value: None,
        emit=lambda event: None,
        is_cancelled=lambda: False,
        psi_releases=lambda: releases,
    )
    roles = {"guest": ["g"], "host": ["h"]}
    return Context(
        party="h",
        role="host",
        roles=roles,
        job_id="j",
        step="score",
        params=None,
        transport=InMemoryFederation(["g", "h"]).transport("h"),
        io=io,
    )


@pytest.mark.parametrize(
    ("release", "ours", "released"),
    [
        ("both", True, ("g", "h")),
        ("initiator", False, ("g",)),
        ("partner", True, ("h",)),
        ("count_only", False, ()),
    ],
)
def test_only_rows_a_psi_released_to_the_guest_and_that_the_host_can_name_are_scored(release, ours, released):
    """Under `initiator` (guest initiator) the host cannot name the released rows; under the rest the guest has none."""
    table = pd.DataFrame({"id": HOST_IDS, "h1": 0.0})
    assert released_to(release, ("g", "h"), "g") == released
    rows = (lambda: table[table["id"].isin(RELEASED)]) if ours else None
    ctx = _host_context([PsiRelease("j0", "psi", ("g", "h"), released, rows)])
    if release == "both":
        assert list(released_rows(ctx, table, "id", RELEASED[:3])["id"]) == RELEASED[:3]
        assert len(released_rows(ctx, table[table["id"].isin(RELEASED)], "id", None)) == len(RELEASED)
    else:
        with pytest.raises(Refused, match="not released to 'g'"):
            released_rows(ctx, table, "id", RELEASED[:3])
    messages = []
    for probe in (UNRELEASED_HELD, NOT_HELD):
        with pytest.raises(Refused) as refused:
            released_rows(ctx, table, "id", probe)
        messages.append(str(refused.value))
    assert messages[0] == messages[1] and not any(p in messages[0] for p in UNRELEASED_HELD + NOT_HELD)
    with pytest.raises(Refused, match="include rows not released"):
        released_rows(ctx, table, "id", None)
    if release == "initiator":
        assert "cannot check" in messages[0]
