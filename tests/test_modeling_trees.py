"""Boosted trees on the modeling dashboard (in-process, as its buttons call it) against a real sandbox: pick the
model, train the trees template, see its metrics, feature importance and first tree, compare it with a logistic
regression, follow a tree training from a reloaded page, be warned of trees that learned nothing, and train
trees on a project's own uploaded data (the template is a starting point whose dataset is chosen).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATABASE_URL

import fedbench
from fedbench import sandbox
from fedbench.ui.dashboards import modeling, scoring
from fedbench.ui.dashboards.templates import modeling_templates

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

TREES = "hetero_secureboost"
QUICK_TREES = {"key_bits": 1024, "trees": 3}
"""Test-sized keys and few trees (the template keeps 2048-bit keys and 10 trees)."""


DEMO_ROWS = 2_000
"""Rows of this module's demo credit table: a third of the suite's (`TEST_DEMO_ROWS`): the same flows and the
same assertions, with a third of the PSI and Paillier work per training."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("modeling-trees")
    sandbox.up(root, demo_data=True, database_url=DATABASE_URL, demo_rows=DEMO_ROWS)
    yield root
    sandbox.down(root)


def test_the_trees_template_trains_boosted_trees_and_is_built_for_the_chosen_data() -> None:
    assert [t.name for t in modeling_templates(kind=TREES)] == ["credit_scoring_trees"]
    assert [t.name for t in modeling_templates(kind="hetero_lr")] == ["credit_scoring", "credit_scoring_full"]
    trees = modeling_templates(kind=TREES)[0]
    assert trees.summary.startswith("Credit scoring with boosted trees on the sandbox's demo project")
    assert trees.steps_text() == "psi → split → train → evaluate → score" and trees.datasets() == ["credit"]
    assert trees.model_kind == TREES and trees.train_step is not None
    assert trees.train_step.params == {
        "trees": 10,
        "max_depth": 3,
        "bins": 32,
        "learning_rate": 0.3,
        "label": "default",
    }, "the demo's defaults, with the real key size (the default)"
    assert trees.step_of("score").params == {}, "scorecard points are for logistic regression only"

    pipeline = trees.build(
        {"guest": "customers", "host": "accounts"}, label="churned", id_column="customer_no"
    )
    steps = {s.name: s for s in pipeline.steps}
    assert steps["psi"].inputs["data"] == {"dataset": {"guest": "customers", "host": "accounts"}}
    assert steps["split"].params["label"] == "churned"
    assert steps["train"].params["label"] == "churned" and steps["train"].params["id_column"] == "customer_no"
    assert steps["psi"].params["id_column"] == "customer_no"
    pipeline.validate({"guest": ["guest"], "host": ["host"]})


def _texts(html: str) -> str:
    return " ".join(html.split())


def test_modeling_app_trains_boosted_trees_shows_their_result_and_compares_them_with_a_regression(
    fed: Path,
) -> None:
    guest = modeling.app(fedbench.connect(home=fed / "guest"))
    assert [label for label, _ in guest.kind.options] == ["Logistic regression", "Boosted trees"]
    assert guest.model_kind == "hetero_lr" and guest.scorecard.layout.display is None
    lr_field = guest.settings.fields["epochs"]

    guest.kind.value = TREES  # as a click on "Boosted trees" does
    assert (
        guest.template.options == ("credit_scoring_trees",) and guest.template.value == "credit_scoring_trees"
    )
    fields = guest.settings.fields
    assert "epochs" not in fields and lr_field.box not in guest.settings_box.children[1].children
    shown = guest.settings_box.children[1].children
    assert [
        f.box for f in (fields[n] for n in ("trees", "max_depth", "learning_rate", "bins", "key_bits"))
    ] == list(shown), "the trees' main settings, in place of the regression's"
    assert (fields["trees"].input.value, fields["max_depth"].input.value) == (10, 3)
    assert fields["learning_rate"].input.value == 0.3 and fields["key_bits"].input.value == 2048
    assert "Number of trees" in fields["trees"].box.children[0].value
    assert fields["label"].input.value == "default" and fields["id_column"].input.value == "id"
    assert guest.scorecard.layout.display == "none", "scorecard points are for logistic regression only"
    assert guest.cannot_train() is None

    guest.settings.set(**QUICK_TREES)
    pipeline = guest.pipeline()
    train = {s.name: s for s in pipeline.steps}["train"]
    assert train.component == TREES and train.params["trees"] == 3 and train.params["key_bits"] == 1024

    run = guest.train(wait=True)
    assert run.status == "succeeded" and guest.shown == run.job_id
    evaluation = run.output("metrics", step="evaluate").value()
    auc = evaluation["validation"]["auc"]
    assert auc > 0.6, "the trees learned something from the demo data"
    assert f'fb-modeling-auc"><div class="fb-figure-value">{auc:.3f}<' in guest.result.value
    assert f"{evaluation['validation']['ks']:.3f}" in guest.result.value
    assert 'fb-modeling-trees"><div class="fb-figure-value">3<' in guest.result.value
    assert "3 trees of depth 3" in guest.result.value and "1024-bit keys" in guest.result.value
    assert "boosted trees" in guest.result.value and "fb-modeling-warnings" not in guest.result.value
    assert "Every step ran: PSI, split, train, evaluate and score." in guest.result.value
    scored = run.output("scores", step="score").value()
    assert len(scored) and scored["score"].between(0, 1).all() and "points" not in scored.columns
    charts = guest.charts.value
    assert charts.count("<img") == 8, "ROC, KS, lift, confusion, scores, loss per tree, importance, tree"
    assert 'alt="Loss per tree"' in charts
    assert "fb-chart-importance" in charts and "fb-chart-tree" in charts
    model = run.output("model", step="train").value()
    ours = model["feature_names"][: model["guest_features"]]
    part = guest.model_part.value
    assert all(f"<td>{name}</td>" in part for name in ours) and "<td>host:0</td>" not in part
    most = max(range(len(ours)), key=lambda i: model["importance"]["gain"][i])
    assert part.index(f"<td>{ours[most]}</td>") < min(
        part.index(f"<td>{n}</td>") for n in ours if n != ours[most]
    )
    assert "Boosted trees" in guest.runs.value

    host_wb = fedbench.connect(home=fed / "host")
    host = modeling.app(host_wb)
    assert host.shown == run.job_id
    host_model = host_wb.project("demo").run_by_id(run.job_id).output("model", step="train").value()
    assert all(f"<td>{name}</td>" in host.model_part.value for name in host_model["features"])
    assert "thresholds" in host.model_part.value
    assert (
        f'fb-modeling-features"><div class="fb-figure-value">{len(host_model["features"])}<'
        in host.result.value
    )
    assert "not shared with you" in host.result.value and host.charts.value == ""
    assert f"{auc:.3f}" not in host.result.value + host.runs.value, "never the guest's metrics"

    guest.kind.value = "hetero_lr"
    assert guest.template.value == "credit_scoring" and guest.settings.fields["epochs"] is lr_field
    guest.settings.set(key_bits=1024, epochs=2, approximation="taylor")
    regression = guest.train(wait=True)
    assert regression.status == "succeeded"
    offered = [v for _, v in guest.compare_a.options]
    assert run.job_id in offered and regression.job_id in offered, "runs of both kinds can be compared"
    guest.compare(run.job_id, regression.job_id)
    compared = _texts(guest.comparison.value)
    assert "Two kinds of model" in compared
    assert f"run {run.job_id[:8]} (boosted trees)" in compared
    assert f"run {regression.job_id[:8]} (logistic regression)" in compared
    lr_auc = regression.output("metrics", step="evaluate").value()["validation"]["auc"]
    assert f"{auc:,.6g}" in compared and f"{lr_auc:,.6g}" in compared and "fb-chart-compare" in compared
    rows = {line.split("<td>")[1].split("<")[0]: line for line in guest.runs.value.split("<tr>")[1:]}
    assert "Boosted trees" in rows[run.job_id[:8]] and "Logistic regression" in rows[regression.job_id[:8]]


def test_trees_that_learn_nothing_fail_with_the_reason_and_are_not_offered_for_scoring(fed: Path) -> None:
    guest = modeling.app(fedbench.connect(home=fed / "guest"))
    guest.choose_kind(TREES)

    def offered() -> set[str]:
        page = scoring.app(fedbench.connect(home=fed / "guest"))
        page.choose_project(guest.project.value)
        return {value for _, value in page.model.options}

    before = offered()
    guest.settings.set(key_bits=1024, trees=1, gamma=1_000_000)
    run = guest.train(wait=True)
    assert run.status == "failed", "trees that never split give everyone the same score: not a model to keep"
    result = _texts(guest.result.value)
    assert "This training failed" in result and "do not split on any feature" in result
    assert "lower gamma" in result
    assert offered() == before, "scoring never offers a failed model"


def test_a_page_opened_during_a_tree_training_follows_it_with_its_settings(fed: Path) -> None:
    started = modeling.app(fedbench.connect(home=fed / "guest"))
    started.choose_kind(TREES)
    started.settings.set(learning_rate=0.07, key_bits=1024, trees=5)
    run = started.train()
    reloaded = modeling.app(fedbench.connect(home=fed / "guest"))
    reloaded.page_opened()
    assert reloaded.monitor is not None and reloaded.monitor.run.job_id == run.job_id
    assert reloaded.train_button.disabled and run.job_id[:8] in reloaded.message.text
    assert reloaded.model_kind == TREES and reloaded.template.value == "credit_scoring_trees"
    fields = reloaded.settings.fields
    assert (fields["learning_rate"].input.value, fields["trees"].input.value) == (0.07, 5)
    assert fields["key_bits"].input.value == 1024
    give_up = time.monotonic() + 300
    # under load the card once showed an AUC while the monitor still said running: wait for both, this run's
    while not (
        "AUC" in reloaded.result.value
        and reloaded.monitor.state == "succeeded"
        and reloaded.shown == run.job_id
    ):
        assert time.monotonic() < give_up, (
            "the reloaded page shows the result, and its monitor the end, when the run ends: "
            f"monitor {reloaded.monitor.state}, shown {reloaded.shown[:8]}"
        )
        time.sleep(0.5)
    assert "fb-chart-tree" in reloaded.charts.value


def test_trees_train_on_a_projects_own_uploaded_data(fed: Path) -> None:
    guest_wb, host_wb = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    rng = np.random.default_rng(5)
    n = 500
    ids = [f"C{i:04d}" for i in range(n)]
    tenure, balance = rng.integers(0, 20, n).astype(float), rng.normal(5, 2, n).round(2)
    churned = (rng.random(n) < 1 / (1 + np.exp(0.2 * tenure + 0.6 * (balance - 5) - 1))).astype(int)
    guest_wb.datasets.upload(
        pd.DataFrame({"customer_no": ids, "tenure": tenure, "churned": churned}),
        name="customers",
        id_column="customer_no",
        label_column="churned",
    )
    host_wb.datasets.upload(
        pd.DataFrame({"customer_no": ids, "balance": balance}), name="accounts", id_column="customer_no"
    )
    guest_wb.projects.propose("churn-trees", partners=["host"], datasets=["customers"], release="both")
    host_wb.projects.accept("churn-trees", datasets=["accounts"])

    guest = modeling.app(guest_wb)
    guest.choose_project("churn-trees")
    guest.choose_kind(TREES)
    assert guest.cannot_train() is None, "the template's 'credit' does not decide what can be trained"
    assert guest.our_dataset.value == "customers" and guest.partner_pickers["host"].value == "accounts"
    fields = guest.settings.fields
    assert fields["label"].input.value == "churned" and fields["id_column"].input.value == "customer_no"
    guest.settings.set(key_bits=1024, trees=2, bins=8)
    run = guest.train(wait=True)
    assert run.status == "succeeded", run.info.get("error")
    model = run.output("model", step="train").value()
    assert model["feature_names"] == ["tenure", "host:0"] and model["label"] == "churned"
    host_model = host_wb.project("churn-trees").run_by_id(run.job_id).output("model", step="train").value()
    assert host_model["features"] == ["balance"]
    assert "fb-modeling-auc" in guest.result.value and "fb-chart-importance" in guest.charts.value
