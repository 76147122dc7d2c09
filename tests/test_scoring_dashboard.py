"""The scoring dashboard's app in-process (no browser), against a real sandbox: score a trained model's test
rows with a scorecard, score a dataset through a PSI first, download the scores, and the host's view.

`tests/test_dashboards_browser.py` drives the same app through Voila and chromium; here its methods are
called as its buttons call them, and what it shows is compared with what the nodes' stores hold.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATABASE_URL

import fedbench
from fedbench import sandbox
from fedbench.client.runs import Run
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards import scoring
from fedbench.ui.errors import FormError

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

TEMPLATE = Path(__file__).parent.parent / "templates" / "pipelines" / "credit_scoring.yaml"


DEMO_ROWS = 2_000
"""Rows of this module's demo credit table: a third of the suite's (`TEST_DEMO_ROWS`): the same flows and the
same assertions, with a third of the PSI and Paillier work per training."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("scoring-dashboard")
    sandbox.up(root, demo_data=True, database_url=DATABASE_URL, demo_rows=DEMO_ROWS)
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def trained(fed: Path) -> Run:
    """The credit-scoring template run once, with test-sized keys and two Taylor epochs (what is scored is any
    trained model; the default approximation's refine epochs cost three times as much)."""
    data = Pipeline.from_yaml(TEMPLATE).to_dict()
    for step in data["steps"]:
        if step["name"] == "train":
            step["params"].update(key_bits=1024, epochs=2, approximation="taylor")
    project = fedbench.connect(home=fed / "guest").project("demo")
    return project.run_pipeline(Pipeline.from_dict(data)).wait(show_progress=False)


def test_scoring_app_scores_the_test_rows_with_a_scorecard_and_offers_the_scores(
    fed: Path, trained: Run
) -> None:
    guest = scoring.app(fedbench.connect(home=fed / "guest"))
    model_id = trained.output("model", step="train").id
    auc = trained.output("metrics", step="evaluate").value()["validation"]["auc"]
    test_id = trained.output("test", step="split").id
    assert guest.model.value == model_id
    label = dict((v, k) for k, v in guest.model.options)[model_id]
    assert (
        label.startswith(f"run {trained.job_id[:8]} · credit_scoring · train · ")
        and f"AUC {auc:.3f}" in label
    )
    assert guest.data.value == f"artifact:{test_id}", "the test rows of the model's run are proposed"
    assert (
        f"test rows of run {trained.job_id[:8]} (split"
        in dict((v, k) for k, v in guest.data.options)[guest.data.value]
    )
    assert "same order on both sides" in guest.data_info.value
    assert guest.shown == trained.job_id, "the template's own score step is a scoring run of the project"
    assert "trained in this run (train)" in guest.result.value
    assert guest.cannot_score() is None and not guest.score_button.disabled

    guest.options.set(base_score=0, pdo=-1)
    with pytest.raises(FormError):
        guest.score()
    assert guest.message.text == "Please fix the highlighted options."
    guest.options.set(scorecard=False)
    assert guest.options.fields["pdo"].box.layout.display == "none", "scorecard settings show with it only"
    guest.options.set(scorecard=True, base_score=650, pdo=20)
    assert guest.options.fields["pdo"].box.layout.display is None

    run = guest.score(wait=True)
    assert run.status == "succeeded" and guest.shown == run.job_id
    assert run.info["name"] == f"scoring with model {model_id[:20]}"
    scores = run.output("scores").to_pandas()
    metrics = run.output("metrics").value()
    test = trained.output("test", step="split").to_pandas()
    assert metrics["rows"] == len(scores) == len(test)
    assert f'fb-scoring-rows"><div class="fb-figure-value">{metrics["rows"]:,}<' in guest.result.value
    assert f"run {trained.job_id[:8]} · credit_scoring · train" in guest.result.value
    odds = (1 - scores["score"]) / scores["score"]
    expected = 650 - 20 / np.log(2) * np.log(50) + 20 / np.log(2) * np.log(odds)
    np.testing.assert_allclose(scores["points"], expected, atol=0.06)
    assert f"{scores['points'].median():,.1f}" in guest.result.value
    assert guest.chart.value.count("<img") == 2, "the score distribution and the points"
    assert f"<td>{scores['id'].iloc[0]}</td>" in guest.preview.value
    assert guest.monitor is not None and guest.monitor.state == "succeeded"

    link = guest.download.value
    assert f'download="scores-demo-{run.job_id[:8]}.csv"' in link and 'href="data:text/csv;base64,' in link
    assert f'download="scores-demo-{run.job_id[:8]}.parquet"' in link
    csv, parquet = guest.prepare_download()
    saved = pd.read_csv(io.BytesIO(csv), dtype={"id": str})
    assert saved["id"].tolist() == scores["id"].tolist() and list(saved.columns) == list(scores.columns)
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(parquet)), scores)
    assert run.job_id[:8] in guest.runs.value and trained.job_id[:8] in guest.runs.value
    guest.choose_data(guest.data.options[0][1])
    guest.choose_model(model_id)
    assert guest.data.value == f"artifact:{test_id}", "choosing a model proposes its run's test rows again"

    host_wb = fedbench.connect(home=fed / "host")
    host = scoring.app(host_wb)
    assert host.shown == run.job_id
    host_rows = host_wb.project("demo").run_by_id(run.job_id).output("metrics").value()["rows"]
    assert host_rows == len(test)
    assert f'fb-scoring-rows"><div class="fb-figure-value">{host_rows:,}<' in host.result.value
    assert "You sent guest the partial scores of these rows" in host.result.value
    assert f"run {trained.job_id[:8]} · credit_scoring · train" in host.runs.value, "the model each run used"
    host_model = host_wb.project("demo").run_by_id(trained.job_id).output("model", step="train").value()
    assert f"<td>{len(host_model['design']['features'])}</td>" in host.runs.value, "its features used"
    assert host.scores is None and host.download.value == "" and host.chart.value == ""
    assert "AUC" not in host.runs.value + host.result.value
    assert host.form.layout.display == "none" and host.score_button.layout.display == "none"
    assert "receives the scores" in host.permission.value
    with pytest.raises(FormError):
        host.prepare_download()


def test_scoring_app_matches_a_dataset_with_a_psi_before_scoring_it(fed: Path, trained: Run) -> None:
    guest = scoring.app(fedbench.connect(home=fed / "guest"))
    with pytest.raises(FormError):
        guest.choose_data("dataset:customers")
    assert "choose one of the listed tables or datasets" in guest.message.text
    guest.choose_data("dataset:credit")
    assert guest.partner_dataset.value == "credit" and guest.partner_box.layout.display is None
    assert "a PSI matches them first" in guest.data_info.value
    run = guest.score(wait=True)
    steps = run.steps()
    assert steps["step"].tolist() == ["psi", "score"]
    assert steps["state"].tolist() == ["reused", "succeeded"], "the template's PSI of the same datasets"
    matched = run.output("metrics", step="psi").value()["intersection_size"]
    assert run.output("metrics", step="score").value()["rows"] == matched > DEMO_ROWS // 2
    assert f"{matched:,}" in guest.result.value
    assert (
        "PSI was reused from an earlier run (same data and settings); score ran again." in guest.result.value
    )
    assert len(guest.scores) == matched and "y" in guest.scores.columns


def test_scoring_app_scores_with_a_model_imported_from_files(fed: Path, trained: Run, tmp_path: Path) -> None:
    for party in ("guest", "host"):
        project = fedbench.connect(home=fed / party).project("demo")
        model = project.run_by_id(trained.job_id).output("model", step="train")
        project.import_model(project.export_model(model, tmp_path / f"{party}.json"), name="credit_lr")
    guest = scoring.app(fedbench.connect(home=fed / "guest"))
    imported = next(v for label, v in guest.model.options if label.startswith("imported model credit_lr · "))
    guest.choose_model(imported)
    guest.choose_data(f"artifact:{trained.output('test', step='split').id}")
    run = guest.score(wait=True)
    assert run.status == "succeeded" and run.output("metrics").value()["rows"] == len(guest.scores)
    assert "model: imported model credit_lr" in guest.result.value
    host = scoring.app(fedbench.connect(home=fed / "host"))
    assert host.shown == run.job_id and "imported model credit_lr" in host.runs.value


def test_scoring_app_lets_a_viewer_look_but_not_score(fed: Path, trained: Run) -> None:
    admin = fedbench.connect(home=fed / "guest")
    token = admin.add_user("scoring-viewer", "viewer")
    admin.project("demo").add_member("scoring-viewer")
    viewer = scoring.app(fedbench.connect(home=fed / "guest", token=token))
    assert viewer.model.options and viewer.shown, "models and earlier scores show"
    assert viewer.score_button.disabled and "needs the analyst role" in viewer.permission.value
    with pytest.raises(FormError):
        viewer.score()


def test_scoring_app_without_a_model_says_to_train_one(fed: Path) -> None:
    guest_wb = fedbench.connect(home=fed / "guest")
    guest_wb.projects.propose("fresh", partners=["host"], datasets=["credit"], psi_runs=5)
    fedbench.connect(home=fed / "host").projects.accept("fresh", datasets=["credit"])
    give_up = time.monotonic() + 60
    while guest_wb.project("fresh").state != "active":
        assert time.monotonic() < give_up, "the guest's node never showed the project active"
        time.sleep(0.2)
    guest = scoring.app(guest_wb)
    guest.choose_project("fresh")
    assert guest.model.options == () and "train one on the Modeling dashboard" in guest.permission.value
    assert "Nothing has been scored in this project yet" in guest.runs.value
    assert guest.score_button.disabled


def test_scoring_app_says_in_words_when_the_node_cannot_be_reached(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FEDBENCH_HOME", str(tmp_path / "nowhere"))
    page = scoring.app()
    assert "fb-app-unavailable" in page._dom_classes and "cannot reach your organisation's node" in page.value
