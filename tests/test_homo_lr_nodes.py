"""`homo_lr` on real nodes: three banks and an aggregator over mutual TLS, one project all of them accepted.

Each bank registers its own horizontal slice of the synthetic credit data; the aggregator brings none. The
job names its roles (`client` for the banks, `server` for the aggregator); every party ends with the same
global model, with the pooled rows' mean and scale (missing values left out, then counted as the mean), and it
scores held-out rows as well as scikit-learn fitted on the pooled rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import fedbench
from fedbench import sandbox
from fedbench.components.builtin.homo_score import HomoScoreParams, score_table
from fedbench.datasets.splits import credit_horizontal
from fedbench.ml.homo_lr import predict_proba
from fedbench.pipeline import Pipeline

BANKS = ["bank-a", "bank-b", "bank-c"]
AGGREGATOR = "aggregator"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    root = tmp_path_factory.mktemp("homo")
    sandbox.up(root, parties=(*BANKS, AGGREGATOR), demo_data=False)
    *slices, held_out = credit_horizontal(n_rows=4000, seed=3, n_parties=len(BANKS) + 1)
    for bank, rows in zip(BANKS, slices, strict=True):
        fedbench.connect(home=root / bank).datasets.upload(
            rows, name="loans", id_column="id", label_column="default"
        )
    first = fedbench.connect(home=root / BANKS[0])
    first.projects.propose(
        "branches", partners=[*BANKS[1:], AGGREGATOR], datasets=["loans"], uses=["train", "score"]
    )
    for bank in BANKS[1:]:
        fedbench.connect(home=root / bank).projects.accept("branches", datasets=["loans"])
    fedbench.connect(home=root / AGGREGATOR).projects.accept("branches", datasets=[])
    yield root, slices, held_out
    sandbox.down(root)


def test_three_banks_train_one_model_every_party_holds(fed):
    root, slices, held_out = fed
    project = fedbench.connect(home=root / BANKS[0]).project("branches")
    assert project.state == "active"
    run = project.run(
        "homo_lr", roles={"client": BANKS, "server": [AGGREGATOR]}, train="loans", rounds=8, local_epochs=2
    ).wait(show_progress=False)
    assert run.info["state"] == "succeeded", run.info
    models = {
        party: fedbench.connect(home=root / party)
        .project("branches")
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
    pipeline.add("train", "homo_lr", inputs={"train": "loans"}, rounds=4)
    pipeline.add("score", "homo_score", inputs={"model": Pipeline.ref("train", "model"), "data": "loans"})
    project = fedbench.connect(home=root / BANKS[0]).project("branches")
    run = project.run_pipeline(pipeline, roles={"client": BANKS, "server": [AGGREGATOR]}).wait(
        show_progress=False
    )
    global_model = project.run_by_id(run.job_id).output("model", "train").value()
    for bank, rows in zip(BANKS, slices, strict=True):
        view = fedbench.connect(home=root / bank).project("branches").run_by_id(run.job_id)
        scores = view.output("scores", "score").to_pandas()
        assert list(scores["id"]) == list(rows["id"]), "each bank scores its own rows, in order"
        expected = score_table(global_model, rows, HomoScoreParams())
        np.testing.assert_allclose(scores["score"], expected["score"])
        assert view.output("metrics", "score").value()["auc"] > 0.6
