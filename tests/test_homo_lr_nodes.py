"""`homo_lr` on real nodes: a horizontal sandbox of three branches and an aggregator over mutual TLS.

Each branch holds its own rows of the synthetic credit data; the aggregator brings none. The job names its
roles (`client` for the branches, `server` for the aggregator); every party ends with the same global model,
with the pooled rows' mean and scale (missing values left out, then counted as the mean), and it scores held-
out rows as well as scikit-learn fitted on the pooled rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import fedbench
from fedbench import sandbox, ui
from fedbench.cli import main
from fedbench.components.builtin.homo_score import HomoScoreParams, score_table
from fedbench.datasets.credit import make_credit
from fedbench.errors import ConfigError
from fedbench.ml.homo_lr import predict_proba
from fedbench.pipeline import Pipeline

BANKS = ["branch-1", "branch-2", "branch-3"]
AGGREGATOR = "aggregator"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """A horizontal sandbox (`up(horizontal=3)`): three branches with their own credit rows, an aggregator."""
    root = tmp_path_factory.mktemp("homo")
    sandbox.up(root, horizontal=3, demo_rows=3000)
    slices = [fedbench.connect(home=root / bank).datasets.get("credit").to_pandas() for bank in BANKS]
    yield root, slices, make_credit(1000, seed=9)
    sandbox.down(root)


def test_the_horizontal_sandbox_has_branches_with_their_own_rows_and_an_aggregator(fed):
    root, slices, _ = fed
    assert [n.party for n in sandbox.status(root)] == [*BANKS, AGGREGATOR]
    assert [len(rows) for rows in slices] == [1000, 1000, 1000]
    assert len(set().union(*(set(rows["id"]) for rows in slices))) == 3000, "no customer is at two branches"
    assert all(list(rows.columns) == list(slices[0].columns) and "default" in rows for rows in slices)
    info = fedbench.connect(home=root / AGGREGATOR).project(sandbox.HORIZONTAL_PROJECT).info
    assert info["state"] == "active" and info["members"] == [*BANKS, AGGREGATOR]
    assert info["datasets"][AGGREGATOR] == [] and [d["name"] for d in info["datasets"][BANKS[1]]] == [
        "credit"
    ]


def test_three_banks_train_one_model_every_party_holds(fed):
    root, slices, held_out = fed
    project = fedbench.connect(home=root / BANKS[0]).project(sandbox.HORIZONTAL_PROJECT)
    assert project.state == "active"
    run = project.run(
        "homo_lr", roles={"client": BANKS, "server": [AGGREGATOR]}, train="credit", rounds=8, local_epochs=2
    ).wait(show_progress=False)
    assert run.info["state"] == "succeeded", run.info
    models = {
        party: fedbench.connect(home=root / party)
        .project(sandbox.HORIZONTAL_PROJECT)
        .run_by_id(run.job_id)
        .output("model")
        .value()
        for party in (*BANKS, AGGREGATOR)
    }
    weights = {party: m["weights"] for party, m in models.items()}
    assert all(w == weights[AGGREGATOR] for w in weights.values()), "every party holds the same model"
    model = models[AGGREGATOR]
    features = model["features"]
    pooled = pd.concat(slices)
    mean, std = pooled[features].mean(), pooled[features].std(ddof=0)
    np.testing.assert_allclose(model["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(model["scale"], std, rtol=1e-6)
    test = held_out[features].fillna(mean)
    x = (test.to_numpy(float) - model["mean"]) / model["scale"]
    ours = predict_proba(np.asarray(model["weights"]), np.hstack([x, np.ones((len(x), 1))]))[:, 0]
    train = (pooled[features].fillna(mean) - mean) / std
    sk = LogisticRegression(C=1e6, max_iter=5000).fit(train, pooled["default"])
    reference = sk.predict_proba((test - mean) / std)[:, 1]
    gap = roc_auc_score(held_out["default"], ours) - roc_auc_score(held_out["default"], reference)
    assert abs(gap) < 0.005, gap


def test_each_bank_scores_its_own_rows_with_the_global_model(fed):
    root, slices, _ = fed
    pipeline = Pipeline("branches-scoring")
    pipeline.add("train", "homo_lr", inputs={"train": "credit"}, rounds=4)
    pipeline.add("score", "homo_score", inputs={"model": Pipeline.ref("train", "model"), "data": "credit"})
    project = fedbench.connect(home=root / BANKS[0]).project(sandbox.HORIZONTAL_PROJECT)
    run = project.run_pipeline(pipeline, roles={"client": BANKS, "server": [AGGREGATOR]}).wait(
        show_progress=False
    )
    global_model = project.run_by_id(run.job_id).output("model", "train").value()
    for bank, rows in zip(BANKS, slices, strict=True):
        view = fedbench.connect(home=root / bank).project(sandbox.HORIZONTAL_PROJECT).run_by_id(run.job_id)
        scores = view.output("scores", "score").to_pandas()
        assert list(scores["id"]) == list(rows["id"]), "each bank scores its own rows, in order"
        expected = score_table(global_model, rows, HomoScoreParams())
        np.testing.assert_allclose(scores["score"], expected["score"])
        assert view.output("metrics", "score").value()["auc"] > 0.6


def test_a_form_trains_on_the_horizontal_project_without_naming_roles(fed):
    """`ui.form` names no roles: the node gives a horizontal step its own defaults from the project's records
    (the branches with data train, the data-less aggregator aggregates)."""
    root, _, _ = fed
    project = fedbench.connect(home=root / BANKS[1]).project(sandbox.HORIZONTAL_PROJECT)
    form = ui.form(project, "homo_lr", show_monitor=False).set(train="credit", rounds=2, local_epochs=1)
    run = form.run().wait(show_progress=False)
    assert run.info["state"] == "succeeded", run.info
    view = fedbench.connect(home=root / AGGREGATOR).project(sandbox.HORIZONTAL_PROJECT).run_by_id(run.job_id)
    assert [s["role"] for s in view.info["steps"]] == ["server"]
    rounds = view.output("metrics").value()["rounds"]
    assert [r["clients"] for r in rounds] == [len(BANKS)] * 2, rounds


def test_fewer_than_three_branches_or_a_vertical_home_are_refused_with_the_fix(tmp_path, capsys):
    assert main(["sandbox", "up", "--parties", "2", "--home", str(tmp_path / "two")]) != 0
    assert "at least 3 data parties" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="without --party or --arbiter"):
        sandbox.up(tmp_path / "mixed", horizontal=3, arbiter=True)
    assert not (tmp_path / "two" / "sandbox.json").exists(), "nothing is written for a refused sandbox"


def test_a_branch_exports_the_global_model_imports_it_again_and_scores_with_it(fed, tmp_path):
    root, slices, _ = fed
    project = fedbench.connect(home=root / BANKS[1]).project(sandbox.HORIZONTAL_PROJECT)
    first = fedbench.connect(home=root / BANKS[0]).project(sandbox.HORIZONTAL_PROJECT)
    run = first.run("homo_lr", roles={"client": BANKS, "server": [AGGREGATOR]}, train="credit", rounds=3)
    run.wait(show_progress=False)
    ours = project.run_by_id(run.job_id)
    path = project.export_model(ours.output("model"), tmp_path / "branch-2.json")
    imported = project.import_model(path)
    assert imported.value()["weights"] == ours.output("model").value()["weights"]
    scored = project.run("homo_score", roles={"client": [BANKS[1]]}, model=imported, data="credit")
    scores = scored.wait(show_progress=False).output("scores").to_pandas()
    expected = score_table(ours.output("model").value(), slices[1], HomoScoreParams())
    np.testing.assert_allclose(scores["score"], expected["score"])
