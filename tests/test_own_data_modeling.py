"""A business user models their own data from the modeling dashboard: not the demo's `credit`, other columns.

Against a real sandbox without demo data: both parties upload a small synthetic table (`customer_no`, their own
features, the guest's label `churned`), the guest proposes a project on it and the host accepts; the modeling
app (driven in-process, as its buttons do) offers each party's dataset of the project, takes the label and ID
columns from the guest's registry, starts from a template whose steps it adjusts, and trains to success.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from conftest import DATABASE_URL

import fedbench
from fedbench import sandbox
from fedbench.client.workbench import Workbench
from fedbench.ui.dashboards import modeling, scoring
from fedbench.ui.dashboards.templates import modeling_templates
from fedbench.ui.errors import FormError

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

PROJECT = "churn"


def churn_tables(n: int = 600, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The guest's and the host's tables of the same customers (500 in common), nothing like the demo data."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:05d}" for i in range(n)])
    income = rng.normal(40, 12, n).round(1)
    tenure = rng.integers(0, 20, n).astype(float)
    balance = rng.normal(5, 2, n).round(2)
    products = rng.integers(1, 5, n).astype(float)
    logit = 0.08 * (40 - income) - 0.15 * tenure + 0.6 * (5 - balance) + 0.2 * products
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    guest = pd.DataFrame({"customer_no": ids, "income": income, "tenure": tenure, "churned": churned})
    host = pd.DataFrame({"customer_no": ids, "balance": balance, "products": products})
    return guest.iloc[: n - 50].reset_index(drop=True), host.iloc[50:].reset_index(drop=True)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workbench, Workbench]]:
    root = tmp_path_factory.mktemp("own-data-modeling")
    sandbox.up(root, demo_data=False, database_url=DATABASE_URL)
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    ours, theirs = churn_tables()
    guest.datasets.upload(ours, name="customers", id_column="customer_no", label_column="churned")
    host.datasets.upload(theirs, name="customers", id_column="customer_no")
    guest.projects.propose(
        PROJECT, partners=["host"], datasets=["customers"], purpose="churn model", release="both"
    )
    host.projects.accept(PROJECT, datasets=["customers"])
    yield guest, host
    sandbox.down(root)


def test_templates_are_starting_points_built_for_the_chosen_data() -> None:
    full = {t.name: t for t in modeling_templates()}["credit_scoring_full"]
    assert full.optional_groups() == ["preprocess", "selection"]
    pipeline = full.build(
        {"guest": "customers", "host": "accounts"},
        label="churned",
        id_column="customer_no",
        without=["selection"],
    )
    steps = {s.name: s for s in pipeline.steps}
    assert "binning" not in steps and "select" not in steps
    assert steps["psi"].inputs["data"] == {"dataset": {"guest": "customers", "host": "accounts"}}
    assert steps["train"].inputs["train"] == {"step": "prep_train", "output": "data"}, "rewired past select"
    assert steps["split"].params["label"] == "churned" and steps["train"].params["id_column"] == "customer_no"
    assert steps["psi"].params["id_column"] == "customer_no"
    assert steps["evaluate"].params.get("label") != "churned", "evaluate's label is the scores' column"
    pipeline.validate({"guest": ["guest"], "host": ["host"]})
    bare = full.build({"guest": "a", "host": "b"}, without=["preprocess", "selection"])
    assert [s.name for s in bare.steps] == ["psi", "split", "train", "evaluate", "score"]
    assert {s.name: s for s in bare.steps}["score"].inputs["data"] == {"step": "split", "output": "test"}


def test_a_project_on_uploaded_data_trains_from_the_modeling_dashboard(
    fed: tuple[Workbench, Workbench],
) -> None:
    guest_wb, host_wb = fed
    guest = modeling.app(guest_wb)
    assert guest.project.value == PROJECT
    assert guest.cannot_train() is None, "the template's 'credit' no longer decides what can be trained"
    assert not guest.train_button.disabled
    assert guest.our_dataset.value == "customers" and guest.partner_pickers["host"].value == "customers"
    assert guest.partner_pickers["host"].options == ("customers",), (
        "the partner's datasets as the project lists"
    )
    fields = guest.settings.fields
    assert fields["label"].input.value == "churned", "the label as registered, not guessed by name"
    assert fields["id_column"].input.value == "customer_no", "the ID column as registered"
    assert "churned" in guest.dataset_info.value and "customer_no" in guest.dataset_info.value

    guest.choose_template("credit_scoring_full")
    assert guest.scorecard.value is True, "the form shows the template's scorecard setting"
    assert guest.include["preprocess"].value and guest.include["selection"].value
    assert fields["label"].input.value == "churned", "a template's label does not replace the registry's"
    with pytest.raises(FormError):
        guest.choose_datasets("credit")
    assert "not one of your datasets in this project" in guest.message.text

    guest.include["selection"].value = False
    guest.settings.set(key_bits=1024, epochs=2, learning_rate=0.1, approximation="taylor")
    pipeline = guest.pipeline()
    assert [s.name for s in pipeline.steps] == [
        "psi",
        "split",
        "prep_train",
        "prep_validation",
        "prep_test",
        "train",
        "evaluate",
        "score",
    ]
    run = guest.train(wait=True)
    assert run.status == "succeeded", run.info.get("error")
    scores = run.output("scores", step="score").value()
    assert "points" in scores.columns, "scored with scorecard points, as the template says"
    assert "This training" not in guest.result.value and guest.shown == run.job_id

    host_model = host_wb.project(PROJECT).run_by_id(run.job_id).output("model", step="train").value()
    assert sorted(host_model["design"]["features"]) == ["balance", "products"]
    guest_model = run.output("model", step="train").value()
    assert sorted(guest_model["design"]["features"]) == ["income", "tenure"], "label and ID are no features"

    keys = {step["step"]: step["key"] for step in run.steps().to_dict("records")}
    scoring_page = scoring.app(guest_wb)
    (model,) = [m for m in scoring_page.models if m.job_id == run.job_id]
    scoring_page.choose_model(model.artifact_id)
    assert scoring_page.data.value == f"artifact:{keys['prep_test']}:data", (
        "a model trained on preprocessed rows scores the preprocessed test rows by default"
    )

    guest.include["selection"].value = True
    guest._restore(guest_wb.run(run.job_id).record)
    assert guest.include["preprocess"].value and not guest.include["selection"].value, (
        "a page following a run shows the steps it kept and left out"
    )


def test_the_dashboard_says_in_plain_words_when_our_dataset_has_no_label(
    fed: tuple[Workbench, Workbench],
) -> None:
    guest_wb, host_wb = fed
    ours, _ = churn_tables()
    guest_wb.datasets.upload(ours.drop(columns=["churned"]), name="unlabelled", id_column="customer_no")
    for name, release in (("churn-unlabelled", "both"), ("churn-ours-only", "initiator")):
        guest_wb.projects.propose(
            name, partners=["host"], datasets=["unlabelled"], purpose="no label", release=release
        )
        host_wb.projects.accept(name, datasets=["customers"])
    guest = modeling.app(guest_wb)
    guest.choose_project("churn-ours-only")
    assert "matched IDs go to: only the party that proposes the project" in (guest.cannot_train() or "")
    guest.choose_project("churn-unlabelled")
    reason = guest.cannot_train() or ""
    assert "has no label column" in reason and "unlabelled" in reason
    assert (
        " has not authorised" not in guest.permission.value
        and "you (guest) has" not in guest.permission.value
    )
    assert guest.train_button.disabled
    with pytest.raises(FormError):
        guest.train()
