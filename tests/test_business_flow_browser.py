"""A business user's whole flow on their own data, in a real browser (#15): two CSV files to downloaded scores.

One sandbox without demo data and one `fedbench dashboards` server per party, shared by the module; Debian's
chromium drives the pages as a user would (helpers of `test_dashboards_browser.py`). The tables are made here
and are nothing like the demo's: integer customer numbers, other column names, 80% of the customers in common.
In order: both parties upload and register their table (choosing the ID column, which is never guessed), the
guest proposes a project and the host accepts, the guest matches the customers (PSI), trains with
preprocessing, retrains with one setting changed (the earlier steps reused), scores the test rows and downloads
the scores; a page reloaded during a training follows it again; and a training that diverges shows as failed
with its reason while the scoring page does not offer its model. Each step checks the page AND the nodes'
stores, and saves a full-page screenshot of its final state under tests/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATABASE_URL, loopback_context, steps_held
from test_dashboards_browser import (
    TAYLOR,
    _dashboards,
    _notice_after,
    _open,
    _plain,
    _screenshot,
    _until,
    _upload,
)

import fedbench
from fedbench import sandbox
from fedbench.ui.dashboards.templates import modeling_templates

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

PROJECT = "churn-pilot"
OURS, THEIRS = "branch_customers", "accounts"
KEY_BITS = "1024 bits (a quick try only)"
"""The key size a user picks in the modeling form for a quick try (the templates keep 2048-bit keys)."""
RELOAD_EPOCHS = 3
"""Epochs of the training the reload test interrupts (the host's steps are held until the page is back)."""
TRAINING_TIMEOUT = 300.0
"""How long a page may take to show a training's result (s): generous, the machine is shared."""


def churn_tables(n: int = 600, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The guest's (`customer_no`, `income`, `tenure`, label `churned`) and the host's (`customer_no`,
    `balance`, `products`) tables: n customers each, 80% of them in common, integer customer numbers."""
    rng = np.random.default_rng(seed)
    everyone = n + n // 5
    numbers = 100_001 + np.arange(everyone)
    income = rng.normal(40, 12, everyone).round(1)
    tenure = rng.integers(0, 21, everyone)
    balance = rng.normal(5, 2, everyone).round(2)
    products = rng.integers(1, 5, everyone)
    logit = 0.12 * (40 - income) - 0.2 * (tenure - 10) + 0.8 * (5 - balance) + 0.5 * (products - 2.5)
    churned = (rng.random(everyone) < 1 / (1 + np.exp(-logit))).astype(int)
    guest = pd.DataFrame({"customer_no": numbers, "income": income, "tenure": tenure, "churned": churned})
    host = pd.DataFrame({"customer_no": numbers, "balance": balance, "products": products})
    return guest.iloc[:n].reset_index(drop=True), host.iloc[everyone - n :].reset_index(drop=True)


def redundant_tables(copies: int = 10, n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables whose features are near-copies of one another (as redundant columns are): a learning rate that is
    safe on independent standardised features makes a training on them diverge (see test_model_health.py)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = a + rng.normal(scale=0.1, size=n)
    y = (a + b + rng.normal(scale=0.5, size=n) > 0).astype(int)
    ids = [f"r{i:04d}" for i in range(n)]
    guest = pd.DataFrame(
        {"id": ids, "y": y, **{f"g{i}": a + rng.normal(scale=0.05, size=n) for i in range(copies)}}
    )
    host = pd.DataFrame({"id": ids, **{f"h{i}": b + rng.normal(scale=0.05, size=n) for i in range(copies)}})
    return guest, host


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("business-flow")
    sandbox.up(root, demo_data=False, database_url=DATABASE_URL)
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two parties' CSV files, as each would export them from its own systems."""
    folder = tmp_path_factory.mktemp("business-flow-files")
    guest, host = churn_tables()
    paths = {"guest": folder / "branch customers 2024.csv", "host": folder / "accounts export.csv"}
    guest.to_csv(paths["guest"], index=False)
    host.to_csv(paths["host"], index=False)
    return paths


@pytest.fixture(scope="module")
def guest_url(fed: Path) -> Iterator[str]:
    with _dashboards(fed, "guest", fed / "voila-guest.log") as url:
        yield url


@pytest.fixture(scope="module")
def host_url(fed: Path) -> Iterator[str]:
    with _dashboards(fed, "host", fed / "voila-host.log", preheat=("data", "projects")) as url:
        yield url


@pytest.fixture
def context(browser):
    """A browser context whose requests go to loopback only (the lab template asks a CDN for fonts)."""
    ctx = loopback_context(browser, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    yield ctx
    ctx.close()


def _register(page, path: Path, name: str, label: str | None) -> None:
    """Upload `path` on the data page, choose its ID column (never guessed here) and label, register it."""
    _upload(page, path)
    page.wait_for_selector(".fb-data-schema >> text=customer_no")
    assert page.input_value(".fb-data-id-column select") == "(choose the ID column)", (
        "the ID column is asked for, not guessed"
    )
    assert "customer_no" in page.inner_text(".fb-data-id-hint"), "the columns that could be the ID are named"
    page.select_option(".fb-data-id-column select", "customer_no")
    page.select_option(".fb-data-label-column select", label or "(no label)")
    page.fill(".fb-data-name input", name)
    page.click(".fb-data-register")
    page.wait_for_selector(f".fb-notice .fb-ok >> text=Registered {name}")
    page.wait_for_selector(f".fb-data-list >> text={name}")


def _started(page, card: str, before: str = "") -> str:
    """The short id of the run the page says it started (its notice said `before` until the click)."""
    return _notice_after(page, card, before).split()[1]


def _training_result(page, short: str, *, failed: bool = False) -> str:
    """Wait until the modeling page shows the end of run `short` (its metrics, or why it failed); its text."""

    def ended() -> bool:
        return short in page.inner_text(".fb-modeling-result") and (
            page.locator(".fb-modeling-result .fb-modeling-auc").count() > 0
            or page.locator(".fb-modeling-result .fb-modeling-failed").count() > 0
        )

    _until(ended, f"the page shows the result of run {short}", timeout=TRAINING_TIMEOUT)
    shown = page.inner_text(".fb-modeling-result")
    assert (page.locator(".fb-modeling-result .fb-modeling-failed").count() > 0) == failed, shown
    return shown


def _choose_training(page, template: str, *, epochs: int, learning_rate: str) -> None:
    """Choose the template and the settings a user sets for a quick try (1024-bit keys, few epochs)."""
    page.select_option(".fb-modeling-template select", template)
    steps = {t.name: t for t in modeling_templates()}[template].steps_text()
    # the template's own settings reach the page before ours are typed (else they would overwrite them)
    page.wait_for_selector(f".fb-modeling-template-info >> text={steps}")
    page.select_option(".fb-modeling-param-key_bits select", KEY_BITS)
    page.fill(".fb-modeling-param-epochs input", str(epochs))
    page.press(".fb-modeling-param-epochs input", "Tab")
    page.fill(".fb-modeling-param-learning_rate input", learning_rate)
    page.press(".fb-modeling-param-learning_rate input", "Tab")


def test_both_parties_register_their_own_tables_agree_a_project_and_match_customers(
    fed: Path, files: dict[str, Path], guest_url: str, host_url: str, context
) -> None:
    guest_data = _open(context, guest_url, "data")
    _register(guest_data, files["guest"], OURS, "churned")
    host_data = _open(context, host_url, "data")
    _register(host_data, files["host"], THEIRS, None)
    guest_node, host_node = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    ours = guest_node.datasets.get(OURS).info
    theirs = host_node.datasets.get(THEIRS).info
    assert (ours.n_rows, ours.id_column, ours.label_column) == (600, "customer_no", "churned")
    assert sorted(ours.features) == ["income", "tenure"]
    assert (theirs.n_rows, theirs.id_column, theirs.label_column) == (600, "customer_no", None)
    assert sorted(theirs.features) == ["balance", "products"]
    _screenshot(guest_data, "business-flow-data-guest.png")
    _screenshot(host_data, "business-flow-data-host.png")

    guest = _open(context, guest_url, "projects")
    guest.fill(".fb-propose-name input", PROJECT)
    guest.select_option(".fb-propose-partner select", "host")
    guest.locator(".fb-propose-datasets").get_by_label(OURS, exact=True).check()
    guest.fill(".fb-propose-purpose textarea", "Predict which branch customers leave, with their accounts")
    guest.fill(".fb-propose-ask input", "the account features of the same customers")
    guest.select_option(".fb-term-release select", "Both parties")
    guest.click(".fb-propose-button")
    guest.wait_for_selector(f".fb-propose-card .fb-ok >> text=Proposal {PROJECT} sent to host")

    host = _open(context, host_url, "projects")
    card = host.locator(f".fb-pending-{PROJECT}")
    assert OURS in card.inner_text() and "the account features" in card.inner_text()
    card.locator(".fb-pending-datasets").get_by_label(THEIRS, exact=True).check()
    card.locator(".fb-pending-accept").click()
    host.wait_for_selector(f".fb-projects-card .fb-ok >> text=You accepted {PROJECT}")
    assert host_node.project(PROJECT).state == "active"
    _until(lambda: guest_node.project(PROJECT).state == "active", "the guest's node shows the project active")
    pinned = guest_node.project(PROJECT).info["datasets"]
    assert [d["name"] for d in pinned["guest"]] == [OURS] and [d["name"] for d in pinned["host"]] == [THEIRS]
    _screenshot(host, "business-flow-projects-host.png")

    psi = _open(context, guest_url, "psi")
    psi.select_option(".fb-psi-project select", PROJECT)
    assert psi.input_value(".fb-psi-dataset select") == OURS
    assert psi.input_value(".fb-psi-partner-dataset select") == THEIRS
    psi.click(".fb-psi-run")
    short = (
        psi.wait_for_selector(".fb-psi-run-card .fb-notice .fb-ok >> text=started").inner_text().split()[1]
    )
    psi.wait_for_selector(f".fb-psi-result >> text=Run {short}", timeout=120_000)
    shown = int(psi.inner_text(".fb-psi-result .fb-psi-intersection .fb-figure-value").replace(",", ""))
    expected = len(
        pd.read_csv(files["guest"]).merge(pd.read_csv(files["host"]), on="customer_no", how="inner")
    )
    assert shown == expected == 480, "the matched count is the customers both files hold"
    run = guest_node.project(PROJECT).run_by_id(short)
    assert run.status == "succeeded"
    assert run.output("metrics").value()["intersection_size"] == expected
    assert "Traceback" not in psi.content()
    _screenshot(psi, "business-flow-psi-guest.png")


def test_the_guest_trains_retrains_scores_and_downloads_the_scores(
    fed: Path, files: dict[str, Path], guest_url: str, host_url: str, context
) -> None:
    page = _open(context, guest_url, "modeling")
    page.select_option(".fb-modeling-project select", PROJECT)
    assert page.input_value(".fb-modeling-our-dataset select") == f"{OURS} (600 rows)"
    assert page.input_value(".fb-modeling-partner-dataset-host select") == THEIRS
    info = page.inner_text(".fb-modeling-dataset-info")
    assert "label churned" in info and "ID column customer_no" in info, "label and ID as registered"
    _choose_training(page, "credit_scoring_full", epochs=2, learning_rate="0.5")
    assert page.locator(".fb-modeling-include-preprocess input[type=checkbox]").is_checked()
    page.locator(".fb-modeling-include-selection input[type=checkbox]").uncheck()
    assert not page.locator(".fb-modeling-train").is_disabled(), page.inner_text(".fb-modeling-permission")
    page.click(".fb-modeling-train")
    first = _started(page, ".fb-modeling-train-card")
    page.wait_for_selector(".fb-modeling-monitor .fb-step-bar")
    _training_result(page, first)

    project = fedbench.connect(home=fed / "guest").project(PROJECT)
    run = project.run_by_id(first)
    assert run.status == "succeeded" and run.warnings == []
    steps = list(run.steps()["step"])
    assert "prep_train" in steps and "binning" not in steps, "preprocessed, selection left out as chosen"
    auc = run.output("metrics", step="evaluate").value()["validation"]["auc"]
    assert auc > 0.6, "the features relate to the label"
    assert page.inner_text(".fb-modeling-auc .fb-figure-value") == f"{auc:.3f}"
    model = run.output("model", step="train").value()
    assert (
        sorted(model["design"]["features"]) == ["income", "tenure"]
        and model["card"]["params"]["key_bits"] == 1024
    )
    host_model = (
        fedbench.connect(home=fed / "host")
        .project(PROJECT)
        .run_by_id(run.job_id)
        .output("model", step="train")
    ).value()
    assert sorted(host_model["design"]["features"]) == ["balance", "products"]

    before = page.inner_text(".fb-modeling-train-card .fb-notice")
    page.fill(".fb-modeling-param-learning_rate input", "0.3")
    page.press(".fb-modeling-param-learning_rate input", "Tab")
    page.click(".fb-modeling-train")
    again = _started(page, ".fb-modeling-train-card", before)
    _training_result(page, again)
    reuse = page.inner_text(".fb-modeling-reuse")
    reused, _, ran = reuse.partition(";")
    assert "PSI" in reused and "split" in reused and "prep_train" in reused and "were reused" in reused, reuse
    assert "train, evaluate and score ran again" in ran, reuse
    second = project.run_by_id(again)
    states = dict(zip(second.steps()["step"], second.steps()["state"], strict=True))
    assert states["psi"] == states["split"] == states["prep_train"] == "reused"
    assert states["train"] == "succeeded" and second.status == "succeeded"
    assert "Traceback" not in page.content()
    _screenshot(page, "business-flow-modeling-guest.png")

    scoring = _open(context, guest_url, "scoring")
    scoring.select_option(".fb-scoring-project select", PROJECT)
    _until(
        lambda: _plain(scoring.input_value(".fb-scoring-model select")).startswith(f"run {again}"),
        "the newest healthy model is offered first",
    )
    assert _plain(scoring.input_value(".fb-scoring-data select")).startswith(
        f"rows of run {again} (prep_test"
    ), "the test rows preprocessed as the model's training rows were"
    before = scoring.inner_text(".fb-scoring-run-card .fb-notice")
    scoring.click(".fb-scoring-run")
    scored = _started(scoring, ".fb-scoring-run-card", before)
    scoring.wait_for_selector(f".fb-scoring-result >> text=Run {scored}", timeout=120_000)
    score_run = project.run_by_id(scored)
    assert score_run.status == "succeeded"
    rows = score_run.output("metrics").value()["rows"]
    test = second.output("test", step="split").to_pandas()
    assert scoring.inner_text(".fb-scoring-rows .fb-figure-value") == f"{rows:,}"

    with scoring.expect_download() as download:
        scoring.click(".fb-scoring-download-csv")
    assert download.value.suggested_filename == f"scores-{PROJECT}-{scored}.csv"
    saved = pd.read_csv(download.value.path(), dtype=str)
    assert len(saved) == rows == len(test) == saved["id"].nunique(), "one row per scored customer"
    assert all(re.fullmatch(r"1\d{5}", i) for i in saved["id"]), "customer numbers stay whole numbers"
    assert set(saved["id"]) == set(test["customer_no"].astype(str))
    assert set(saved["y"]) <= {"0", "1"} and set(saved["pred"]) <= {"0", "1"}, "labels stay whole numbers"
    own = second.output("scores", step="score").to_pandas()
    same = saved.astype({"score": float}).merge(own.astype({"id": str}), on="id", suffixes=("", "_run"))
    assert len(same) == len(saved) and np.allclose(same["score"], same["score_run"], atol=1e-4), (
        "the same scores as the training run's own scoring of its test rows"
    )
    known = set(pd.read_csv(files["guest"])["customer_no"]) & set(pd.read_csv(files["host"])["customer_no"])
    assert {int(i) for i in saved["id"]} <= known, "only matched customers are scored"
    assert "Traceback" not in scoring.content()
    _screenshot(scoring, "business-flow-scoring-guest.png")


def test_a_page_reloaded_during_a_training_follows_it_to_its_result(
    fed: Path, guest_url: str, context
) -> None:
    page = _open(context, guest_url, "modeling")
    page.select_option(".fb-modeling-project select", PROJECT)
    _choose_training(page, "credit_scoring_full", epochs=RELOAD_EPOCHS, learning_rate="0.2")
    page.locator(".fb-modeling-include-selection input[type=checkbox]").uncheck()
    before = page.inner_text(".fb-modeling-train-card .fb-notice")
    with steps_held(fed, "host"):  # the training cannot end before the reloaded page is back
        page.click(".fb-modeling-train")
        short = _started(page, ".fb-modeling-train-card", before)
        page.wait_for_selector(".fb-modeling-monitor .fb-step-bar")

        page.reload()
        # a fresh kernel for the reloaded page, while the other xdist workers share the cores
        page.wait_for_selector(".fb-app-modeling.fb-opened", state="visible", timeout=180_000)
        assert page.input_value(".fb-modeling-project select") == PROJECT
        # the page shows itself opened, then asks its node what runs: the notice follows a moment later
        page.wait_for_selector(f".fb-modeling-train-card .fb-notice >> text=Run {short} is in progress")
        page.wait_for_selector(".fb-modeling-monitor .fb-step-bar")
        assert page.locator(".fb-modeling-train").is_disabled(), "no second training while this one runs"
        assert page.input_value(".fb-modeling-template select") == "credit_scoring_full"
        assert page.input_value(".fb-modeling-param-learning_rate input") == "0.2", "the run's own settings"
        assert page.input_value(".fb-modeling-param-epochs input") == str(RELOAD_EPOCHS)
        _screenshot(page, "business-flow-reloaded-running.png")

    _training_result(page, short)
    run = fedbench.connect(home=fed / "guest").project(PROJECT).run_by_id(short)
    assert run.status == "succeeded"
    auc = run.output("metrics", step="evaluate").value()["validation"]["auc"]
    assert page.inner_text(".fb-modeling-auc .fb-figure-value") == f"{auc:.3f}"
    _until(lambda: not page.locator(".fb-modeling-train").is_disabled(), "Train is enabled again")
    _screenshot(page, "business-flow-reloaded-ended.png")


def test_a_diverged_training_shows_failed_with_its_reason_and_is_not_offered_for_scoring(
    fed: Path, guest_url: str, context
) -> None:
    guest_node, host_node = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    ours, theirs = redundant_tables()
    guest_node.datasets.upload(ours, name="redundant", id_column="id", label_column="y")
    host_node.datasets.upload(theirs, name="redundant_accounts", id_column="id")
    guest_node.projects.propose(
        "redundant", partners=["host"], datasets=["redundant"], purpose="redundant columns", release="both"
    )
    host_node.projects.accept("redundant", datasets=["redundant_accounts"])
    template = {t.name: t for t in modeling_templates()}["credit_scoring"]
    assert template.train_step is not None
    settings = {**template.train_step.params, "label": "y", "id_column": "id", "key_bits": 1024}
    healthy = (
        guest_node.project("redundant")
        .run_pipeline(
            template.build(
                {"guest": "redundant", "host": "redundant_accounts"},
                label="y",
                id_column="id",
                params={"train": {**settings, "epochs": 3, "learning_rate": 0.1}},
            )
        )
        .wait(show_progress=False)
    )
    assert healthy.status == "succeeded" and healthy.warnings == []

    page = _open(context, guest_url, "modeling")
    page.select_option(".fb-modeling-project select", "redundant")
    _choose_training(page, "credit_scoring", epochs=8, learning_rate="0.5")
    # the default approximation takes Newton steps, which do not diverge at 0.5; Taylor's plain steps do
    page.get_by_text("More settings").click()
    page.select_option(".fb-modeling-param-approximation select", TAYLOR)
    page.click(".fb-modeling-train")
    short = _started(page, ".fb-modeling-train-card")
    shown = _training_result(page, short, failed=True)
    failure = page.inner_text(".fb-modeling-failed")
    assert "This training failed" in failure and "diverged" in failure, shown
    assert "lower learning_rate, e.g. 0.1" in failure
    assert page.locator(".fb-modeling-auc").count() == 0, "no metrics shown for a broken model"
    runs = page.inner_text(".fb-modeling-runs")
    assert short in runs and "failed" in runs
    run = guest_node.project("redundant").run_by_id(short)
    assert run.status == "failed" and "diverged" in str(run.info["error"])
    _until(
        lambda: host_node.project("redundant").run_by_id(run.job_id).info["state"] == "failed",
        "the host's node has the run failed too",
    )
    _screenshot(page, "business-flow-diverged-modeling.png")

    scoring = _open(context, guest_url, "scoring")
    scoring.select_option(".fb-scoring-project select", "redundant")
    healthy_short = healthy.job_id[:8]

    def models() -> list[str]:
        return [_plain(o) for o in scoring.locator(".fb-scoring-model select option").all_inner_texts()]

    _until(lambda: any(o.startswith(f"run {healthy_short}") for o in models()), "the project's models show")
    offered = models()
    assert not any(o.startswith(f"run {short}") for o in offered), "the diverged model is not offered"
    assert _plain(scoring.input_value(".fb-scoring-model select")).startswith(f"run {healthy_short}")
    assert not scoring.locator(".fb-scoring-run").is_disabled()
    _screenshot(scoring, "business-flow-diverged-scoring.png")
