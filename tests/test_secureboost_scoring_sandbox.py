"""Scoring with a SecureBoost model between real nodes (one sandbox for the module): the scores are the
plaintext booster's on the joined rows, an exported and imported pair scores the same, the host refuses rows
no PSI released, and the scoring dashboard lists the trees model beside a logistic regression and scores
with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import DATABASE_URL

import fedbench
from fedbench import sandbox
from fedbench.client.runs import Run, RunFailed
from fedbench.ml.trees import Booster
from fedbench.ml.trees.objectives import sigmoid
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards import scoring

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

TEMPLATE = Path(__file__).parent.parent / "templates" / "pipelines" / "credit_scoring.yaml"
TREES = {"trees": 3, "max_depth": 3, "bins": 16, "learning_rate": 0.3, "key_bits": 1024, "label": "default"}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("sb-scoring")
    sandbox.up(root, demo_data=True, database_url=DATABASE_URL, demo_rows=1_500)
    yield root
    sandbox.down(root)


def _template(train: dict[str, Any], score: dict[str, Any]) -> Pipeline:
    """The credit-scoring template with another training step and score params."""
    data = Pipeline.from_yaml(TEMPLATE).to_dict()
    for step in data["steps"]:
        if step["name"] == "train":
            step.update(train)
        if step["name"] == "score":
            step["params"] = score
    return Pipeline.from_dict(data)


@pytest.fixture(scope="module")
def trees(fed: Path) -> Run:
    """The credit-scoring template with hetero_secureboost as its training step (small key, three trees)."""
    pipeline = _template({"component": "hetero_secureboost", "params": TREES}, {})
    project = fedbench.connect(home=fed / "guest").project("demo")
    return project.run_pipeline(pipeline).wait(show_progress=False)


@pytest.fixture(scope="module")
def lr(fed: Path, trees: Run) -> Run:
    """The template as it is (logistic regression), after the trees run: its PSI and split are reused."""
    pipeline = _template({}, {"scorecard": True})
    data = pipeline.to_dict()
    for step in data["steps"]:
        if step["name"] == "train":
            step["params"].update(key_bits=1024, epochs=1)
    project = fedbench.connect(home=fed / "guest").project("demo")
    return project.run_pipeline(Pipeline.from_dict(data)).wait(show_progress=False)


def _host_run(fed: Path, run: Run) -> Run:
    return fedbench.connect(home=fed / "host").project("demo").run_by_id(run.job_id)


def test_sandbox_scores_are_the_plaintext_boosters_on_the_joined_rows(fed: Path, trees: Run) -> None:
    host_run = _host_run(fed, trees)
    guest_train, guest_test = (trees.output(p, step="split").to_pandas() for p in ("train", "test"))
    host_train, host_test = (host_run.output(p, step="split").to_pandas() for p in ("train", "test"))
    model = trees.output("model", step="train").value()
    params = {k: v for k, v in model["card"]["params"].items() if k not in ("label", "id_column", "key_bits")}

    def joined(guest: pd.DataFrame, host: pd.DataFrame) -> np.ndarray:
        return np.hstack(
            [guest.drop(columns=["id", "default"]).to_numpy(float), host.drop(columns=["id"]).to_numpy(float)]
        )

    booster = Booster(params).fit(joined(guest_train, host_train), guest_train["default"])
    scores = trees.output("scores", step="score").to_pandas()
    assert scores["id"].tolist() == guest_test["id"].tolist() == host_test["id"].tolist()
    expected = sigmoid(booster.predict_margin(joined(guest_test, host_test)))
    np.testing.assert_allclose(scores["score"], expected, rtol=0, atol=1e-9)
    assert "points" not in scores.columns
    assert host_run.output("metrics", step="score").value()["rows"] == len(guest_test)
    assert _host_run(fed, trees).output("model", step="train").value()["splits"], "the host took part"


def test_an_exported_and_imported_pair_scores_the_same(fed: Path, trees: Run, tmp_path: Path) -> None:
    imported = {}
    for party in ("guest", "host"):
        project = fedbench.connect(home=fed / party).project("demo")
        model = project.run_by_id(trees.job_id).output("model", step="train")
        path = project.export_model(model, tmp_path / f"{party}.json")
        imported[party] = project.import_model(path, name="credit_trees")
        assert json.dumps(imported[party].value(), sort_keys=True) == json.dumps(
            model.value(), sort_keys=True
        )
    assert imported["guest"].id == imported["host"].id
    test = trees.output("test", step="split")
    project = fedbench.connect(home=fed / "guest").project("demo")
    run = project.run("score", model=imported["guest"].as_ref(), data=test.as_ref()).wait(show_progress=False)
    pd.testing.assert_frame_equal(
        run.output("scores").to_pandas(), trees.output("scores", step="score").to_pandas()
    )


def test_the_host_refuses_to_walk_rows_no_psi_released(fed: Path, trees: Run) -> None:
    project = fedbench.connect(home=fed / "guest").project("demo")
    model = trees.output("model", step="train").as_ref()
    with pytest.raises(RunFailed) as failed:
        project.run("score", model=model, data="credit").wait(show_progress=False)
    assert "rows not released to 'guest' by a PSI of this project" in str(failed.value)


def test_the_scoring_dashboard_offers_trees_beside_lr_and_scores_with_them(
    fed: Path, trees: Run, lr: Run
) -> None:
    guest = scoring.app(fedbench.connect(home=fed / "guest"))
    tree_id, lr_id = (run.output("model", step="train").id for run in (trees, lr))
    labels = {v: k for k, v in guest.model.options}
    assert "· boosted trees" in labels[tree_id] and "· logistic regression" in labels[lr_id]
    assert "AUC" in labels[tree_id], "the trees run's evaluate step gives its AUC"
    guest.choose_model(lr_id)
    assert guest.options.fields["scorecard"].box.layout.display is None, "scorecard offered for LR"
    guest.choose_model(tree_id)
    assert "boosted trees, 3 trees" in guest.model_info.value
    assert guest.options.fields["scorecard"].box.layout.display == "none", "no scorecard for trees"
    assert guest.data.value == f"artifact:{trees.output('test', step='split').id}"
    guest.options.set(scorecard=True)
    run = guest.score(wait=True)
    assert run.status == "succeeded" and guest.shown == run.job_id
    assert "scorecard" not in run.record.step_of("score").params, "a hidden scorecard is never sent"
    pd.testing.assert_frame_equal(
        run.output("scores").to_pandas(), trees.output("scores", step="score").to_pandas()
    )
    assert list(guest.scores.columns) == ["id", "y", "score", "pred"]
    assert guest.chart.value.count("<img") == 1, "the score distribution, no scorecard points"
    assert "median score" in guest.result.value and "boosted trees" in guest.result.value

    host = scoring.app(fedbench.connect(home=fed / "host"))
    assert host.shown == run.job_id
    assert "At each split of yours in the model's trees" in host.result.value
    host_model = _host_run(fed, trees).output("model", step="train").value()
    assert f"<td>{len(host_model['features'])}</td>" in host.runs.value, "its features used"
