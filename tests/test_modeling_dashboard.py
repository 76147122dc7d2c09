"""The modeling dashboard's app in-process (no browser), against a real sandbox: train the credit-scoring
template, read its metrics, retrain with one setting changed, compare, and the host's view of the same runs.

`tests/test_dashboards_browser.py` drives the same app through Voila and chromium; here its methods are
called as its buttons call them, and what it shows is compared with what the nodes' stores hold.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATABASE_URL, steps_held

import fedbench
from fedbench import sandbox
from fedbench.client.records import RunInfo, StepInfo
from fedbench.ui.dashboards import modeling
from fedbench.ui.dashboards.model_runs import reuse_sentence
from fedbench.ui.dashboards.templates import load_templates, modeling_templates
from fedbench.ui.errors import FormError

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

QUICK = {"key_bits": 1024, "epochs": 2, "approximation": "taylor"}
"""Test-sized keys and two Taylor epochs (the template itself keeps 2048-bit keys; the default approximation's
refine epochs cost three times as much, and no test here reads the accuracy)."""


DEMO_ROWS = 2_000
"""Rows of this module's demo credit table: a third of the suite's (`TEST_DEMO_ROWS`): the same flows and the
same assertions, with a third of the PSI and Paillier work per training."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("modeling-dashboard")
    sandbox.up(root, demo_data=True, database_url=DATABASE_URL, demo_rows=DEMO_ROWS)
    yield root
    sandbox.down(root)


def test_templates_are_found_with_their_summary_and_broken_files_are_left_out(tmp_path: Path) -> None:
    shipped = {t.name: t for t in load_templates()}
    assert {"count_rows", "credit_scoring", "credit_scoring_full"} <= set(shipped)
    assert [t.name for t in modeling_templates()] == [
        "credit_scoring",
        "credit_scoring_full",
        "credit_scoring_trees",
    ]
    credit = shipped["credit_scoring"]
    assert credit.summary.startswith("Credit scoring on the sandbox's demo project")
    assert credit.steps_text() == "psi → split → train → evaluate → score" and credit.datasets() == ["credit"]
    assert "key_bits" not in credit.train_step.params, "the template keeps the real key size (the default)"
    changed = credit.with_params("train", {"epochs": 3})
    assert changed.steps[2].params == {"epochs": 3} and credit.train_step.params["epochs"] == 10

    (tmp_path / "good.yaml").write_text((credit.path).read_text())
    (tmp_path / "broken.yaml").write_text("steps: [this is: not a pipeline\n")
    assert [t.name for t in load_templates(tmp_path)] == ["good"]


def test_modeling_app_trains_retrains_compares_and_shows_the_host_its_part(fed: Path) -> None:
    guest = modeling.app(fedbench.connect(home=fed / "guest"))
    assert guest.project.value == "demo" and guest.template.value == "credit_scoring"
    assert guest.template.options == ("credit_scoring", "credit_scoring_full"), "the templates training an LR"
    assert "psi → split → train → evaluate → score" in guest.template_info.value
    fields = guest.settings.fields
    assert fields["learning_rate"].input.value == 0.5 and fields["label"].input.value == "default"
    assert fields["key_bits"].input.value == 2048, "the real key size unless the user picks 1024"
    assert [label for label, _ in fields["key_bits"].input.options][0] == "1024 bits (a quick try only)"
    assert "No model has been trained in this project yet" in guest.runs.value
    assert guest.cannot_train() is None and not guest.train_button.disabled

    guest.settings.set(epochs=0)
    with pytest.raises(FormError):
        guest.train()
    assert guest.message.text == "Please fix the highlighted training settings."
    assert "Must be at least 1." in fields["epochs"].message.value
    guest.settings.set(epochs=2, optimizer="adam")
    with pytest.raises(FormError):
        guest.train()
    assert "do not go together" in guest.message.text and "need protocol 'coordinated'" in guest.message.text
    guest.settings.set(optimizer="sgd", **QUICK)

    first = guest.train(wait=True)
    assert first.status == "succeeded" and guest.shown == first.job_id
    evaluation = first.output("metrics", step="evaluate").value()
    auc = evaluation["validation"]["auc"]
    assert f'fb-modeling-auc"><div class="fb-figure-value">{auc:.3f}<' in guest.result.value
    assert f"{evaluation['validation']['ks']:.3f}" in guest.result.value
    assert f"{evaluation['train']['auc']:.4f}" in guest.result.value, "training beside validation"
    assert "Every step ran: PSI, split, train, evaluate and score." in guest.result.value
    assert "learning rate 0.5" in guest.result.value and "1024-bit keys" in guest.result.value
    assert guest.charts.value.count("<img") == 6, "ROC, KS, lift and gain, confusion, scores, loss"
    model = first.output("model", step="train").value()
    assert all(f"<td>{name}</td>" in guest.model_part.value for name in model["design"]["features"])
    assert "(intercept)" in guest.model_part.value
    assert guest.monitor is not None and guest.monitor.state == "succeeded"
    assert guest.monitor.results.value == "", "the result card, not the monitor, shows a trained model"

    guest.settings.set(learning_rate=0.3)
    second = guest.train(wait=True)
    states = dict(zip(second.steps()["step"], second.steps()["state"], strict=True))
    assert states == {
        "psi": "reused",
        "split": "reused",
        "train": "succeeded",
        "evaluate": "succeeded",
        "score": "succeeded",
    }
    assert (
        "PSI and split were reused from an earlier run (same data and settings); train, evaluate and score "
        "ran again." in guest.result.value
    )
    assert first.job_id[:8] in guest.runs.value and second.job_id[:8] in guest.runs.value
    assert (guest.compare_a.value, guest.compare_b.value) == (first.job_id, second.job_id)

    chart = guest.compare()
    assert chart.axes, "a compare_runs figure"
    assert (
        "Settings that differ" in guest.comparison.value
        and "<td>Learning rate</td>" in guest.comparison.value
    )
    assert "<td>0.5</td>" in guest.comparison.value and "<td>0.3</td>" in guest.comparison.value
    second_auc = second.output("metrics", step="evaluate").value()["validation"]["auc"]
    assert f"{second_auc:,.6g}" in guest.comparison.value and "fb-chart-compare" in guest.comparison.value
    with pytest.raises(FormError):
        guest.compare(first.job_id, first.job_id)

    guest.show_run(first.job_id)
    assert f"{auc:.3f}" in guest.result.value and guest.pick_run.value == first.job_id

    host_wb = fedbench.connect(home=fed / "host")
    host = modeling.app(host_wb)
    assert host.shown == second.job_id, "the partner sees the runs it took part in, the latest first"
    host_model = host_wb.project("demo").run_by_id(second.job_id).output("model", step="train").value()
    features = host_model["design"]["features"]
    assert not set(features) & set(model["design"]["features"]), "each side holds its own features"
    assert all(f"<td>{name}</td>" in host.model_part.value for name in features)
    assert f"{host_model['coef'][0][0]:,.6g}" in host.model_part.value, "with their weights"
    assert "(intercept)" not in host.model_part.value
    assert f'fb-modeling-features"><div class="fb-figure-value">{len(features)}<' in host.result.value
    assert f"{host_model['card']['rows']:,}" in host.result.value
    assert "guest holds the labels" in host.result.value and "not shared with you" in host.result.value
    for value in (auc, second_auc):
        assert f"{value:.3f}" not in host.result.value + host.runs.value, "never the guest's metrics"
    assert host.charts.value == ""
    assert host.settings_box.layout.display == "none" and host.train_button.layout.display == "none"
    assert "guest holds the labels and starts the training" in host.permission.value
    with pytest.raises(FormError):
        host.train()


def test_modeling_app_says_in_words_why_a_training_failed(fed: Path) -> None:
    guest = modeling.app(fedbench.connect(home=fed / "guest"))
    guest.settings.set(label="not_a_column", **QUICK)
    failed = guest.train(wait=True)
    assert failed.status == "failed" and guest.shown == failed.job_id
    assert "This training failed" in guest.result.value and "no label column" in guest.result.value
    assert "Traceback" not in guest.result.value + guest.monitor.results.value


def test_a_page_opened_during_a_training_follows_it_with_its_settings(fed: Path) -> None:
    started = modeling.app(fedbench.connect(home=fed / "guest"))
    started.settings.set(learning_rate=0.07, **QUICK)
    with steps_held(fed, "host"):  # the training cannot end before the pages opened during it are read
        run = started.train()
        reloaded = modeling.app(fedbench.connect(home=fed / "guest"))
        reloaded.page_opened()
        assert reloaded.monitor is not None and reloaded.monitor.run.job_id == run.job_id, (
            "the reloaded page shows the run in progress"
        )
        assert reloaded.train_button.disabled and run.job_id[:8] in reloaded.message.text
        fields = reloaded.settings.fields
        assert (fields["learning_rate"].input.value, fields["key_bits"].input.value) == (0.07, 1024)
        partner = modeling.app(fedbench.connect(home=fed / "host"))
        assert partner.monitor is not None and partner.monitor.run.job_id == run.job_id
    # under load the card once showed an AUC while the monitor still said running: wait for both, this run's
    _until(
        lambda: "AUC" in reloaded.result.value and reloaded.monitor.state == "succeeded",
        "the reloaded page shows the result, and its monitor the end, when the run ends",
    )
    assert reloaded.shown == run.job_id
    assert not reloaded.train_button.disabled


def _until(check, what: str, timeout: float = 300.0) -> None:
    give_up = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < give_up, what
        time.sleep(0.5)


def test_modeling_app_lets_a_viewer_look_but_not_train(fed: Path) -> None:
    admin = fedbench.connect(home=fed / "guest")
    token = admin.add_user("modeling-viewer", "viewer")
    admin.project("demo").add_member("modeling-viewer")
    viewer = modeling.app(fedbench.connect(home=fed / "guest", token=token))
    assert viewer.project.value == "demo" and viewer.shown, "earlier runs and results show"
    assert viewer.train_button.disabled and "needs the analyst role" in viewer.permission.value
    with pytest.raises(FormError):
        viewer.train()
    assert "needs the analyst role" in viewer.message.text


def test_reuse_sentence_names_what_ran_and_what_was_reused() -> None:
    def info(**states: str) -> RunInfo:
        return RunInfo(
            "job", steps=tuple(StepInfo(name, name, state=state) for name, state in states.items())
        )

    assert reuse_sentence(info(psi="succeeded", train="succeeded")) == "Every step ran: PSI and train."
    assert reuse_sentence(info(psi="reused", train="succeeded")) == (
        "PSI was reused from an earlier run (same data and settings); train ran again."
    )
    assert reuse_sentence(info(psi="reused", split="reused")) == (
        "Nothing ran again: PSI and split were reused from an earlier run with the same data and settings."
    )
    assert reuse_sentence(info(score="succeeded")) == "Score ran."
    assert reuse_sentence(info(psi="failed")) == ""


def test_modeling_app_says_in_words_when_the_node_cannot_be_reached(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FEDBENCH_HOME", str(tmp_path / "nowhere"))
    page = modeling.app()
    assert "fb-app-unavailable" in page._dom_classes and "cannot reach your organisation's node" in page.value
    assert "Traceback" not in page.value
