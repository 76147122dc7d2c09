"""The credit-scoring template end to end on a real sandbox (guest, host, arbiter) with the demo data: PSI,
split, `hetero_lr` under both protocols, `evaluate`, `score`; against scikit-learn on the joined rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import child_pids
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fedbench
from fedbench import sandbox
from fedbench.datasets import credit_vertical
from fedbench.errors import FedbenchError
from fedbench.ml.design import Design, sigmoid
from fedbench.node.fork_server import is_fork_server
from fedbench.pipeline import Pipeline

TEMPLATES = Path(__file__).parent.parent / "templates" / "pipelines"
CREDIT_ROWS = 10_000
"""The demo's credit data at a third of its size: 8,000 matched rows (4,800 to train, 1,600 to test)."""
FAST = {"key_bits": 1024, "epochs": 3, "batch_size": 1600}
"""Test-sized keys; three batches an epoch, as the template's 5,000-row batches give on the full demo data."""
TAYLOR_GAP = 0.007
"""How far from scikit-learn the validation AUC may be on these 1,600 rows. The split is drawn with the guest
node's private key (a fresh sandbox, a fresh split) and the batches follow the PSI's random row order: over 200
random splits a plaintext replica of the template's training with the default approximation (fourier, #18)
was off by at most 0.0047 (0.0011 on average; the first-order Taylor loss it replaced: up to 0.017). The
protocols are checked exactly against their replicas in test_hetero_lr_protocols.py and
test_hetero_lr_accuracy.py."""

IV_MIN = 0.05
"""`select`'s threshold in the full template's test, above the shipped 0.02. The split is random (a fresh
sandbox, a fresh split), and at 0.02 every feature passed in one CI run: over 60 random splits of these rows,
n_cards' IV ranged 0.003-0.018 and months_on_book's 0.007-0.033, so at 0.05 both are always dropped."""

CHEAPER = "coordinated"
"""The protocol the protocol-independent tests (reuse, refusals, feature engineering, export) train with: the
coordinated one trains these rows in about half the time of SSHE (both are checked against scikit-learn)."""

WARM_WORKERS = 2
"""node.json's default pool, asked for explicitly (the suite's sandboxes keep none, tests/conftest.py):
`test_no_worker_process_outlives_its_step` finds the node's workers through its idle warm ones."""

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """The sandbox's demo project (guest, host, arbiter), its `credit` table generated with fewer rows."""
    root = tmp_path_factory.mktemp("hetero_lr")
    sandbox.up(root, arbiter=True, demo_data=False, warm_workers=WARM_WORKERS)
    for party, table, label in zip(
        ("guest", "host"), credit_vertical(CREDIT_ROWS), ("default", None), strict=True
    ):
        fedbench.connect(home=root / party).datasets.upload(
            table, name="credit", id_column="id", label_column=label
        )
    sandbox.up(root, arbiter=True)
    yield root
    sandbox.down(root)


def _template(name: str, **train_params) -> Pipeline:
    """A shipped template as is, but with test-sized keys and fewer epochs."""
    pipeline = Pipeline.from_yaml(TEMPLATES / f"{name}.yaml")
    data = pipeline.to_dict()
    for step in data["steps"]:
        if step["name"] == "train":
            step["params"].update(FAST, **train_params)
        if step["component"] == "binning":
            step["params"]["key_bits"] = 1024
    return Pipeline.from_dict(data)


def _run(root, pipeline: Pipeline):
    guest = fedbench.connect(home=root / "guest").project("demo")
    run = guest.run_pipeline(pipeline).wait(show_progress=False)
    host_run = fedbench.connect(home=root / "host").project("demo").run_by_id(run.job_id)
    return run, host_run


def _joined(run, host_run, split: str) -> pd.DataFrame:
    g = run.output(split, step="split").to_pandas()
    h = host_run.output(split, step="split").to_pandas()
    return g.merge(h, on="id")


@pytest.fixture(scope="module", params=["sshe", "coordinated"])
def trained(request, fed):
    run, host_run = _run(fed, _template("credit_scoring", protocol=request.param))
    return request.param, run, host_run


def test_validation_auc_is_within_001_of_sklearn_and_loss_decreases(trained):
    protocol, run, host_run = trained
    train, validation = _joined(run, host_run, "train"), _joined(run, host_run, "validation")
    guest_model = run.output("model", step="train").value()
    host_model = host_run.output("model", step="train").value()
    features = guest_model["design"]["features"] + host_model["design"]["features"]
    scaler = make_pipeline(SimpleImputer(), StandardScaler()).fit(train[features])
    alpha = guest_model["card"]["params"]["alpha"]
    reference = LogisticRegression(C=1.0 / (alpha * len(train)), max_iter=1000)
    reference.fit(scaler.transform(train[features]), train["default"])
    expected = roc_auc_score(
        validation["default"], reference.predict_proba(scaler.transform(validation[features]))[:, 1]
    )
    metrics = run.output("metrics", step="evaluate").value()
    assert abs(metrics["validation"]["auc"] - expected) < TAYLOR_GAP, (
        protocol,
        metrics["validation"]["auc"],
        expected,
    )
    losses = run.output("metrics", step="train").value()["loss"]
    assert len(losses) == FAST["epochs"] and all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert guest_model["card"]["protocol"] == protocol and guest_model["card"]["created_by"] == "guest"
    assert host_model["card"]["data_fingerprint"] != guest_model["card"]["data_fingerprint"]
    streamed = run.metrics
    assert {"loss", "epoch_seconds"} <= set(streamed["name"])


def test_scores_equal_the_centralized_model_on_the_joined_rows(trained):
    _, run, host_run = trained
    test = _joined(run, host_run, "test")
    guest_model = run.output("model", step="train").value()
    host_model = host_run.output("model", step="train").value()
    z = Design.from_dict(guest_model["design"]).matrix(test) @ np.asarray(guest_model["coef"][0])
    z += Design.from_dict(host_model["design"]).matrix(test) @ np.asarray(host_model["coef"][0])
    scores = run.output("scores", step="score").to_pandas().merge(test[["id"]], on="id")
    assert len(scores) == len(test) > 1000
    np.testing.assert_allclose(scores["score"], sigmoid(z), rtol=0, atol=1e-12)
    odds = (1 - scores["score"]) / scores["score"]
    np.testing.assert_allclose(
        scores["points"], 600 - 20 / np.log(2) * np.log(50) + 20 / np.log(2) * np.log(odds), atol=0.06
    )
    host_scores = host_run.output("scores", step="score").to_pandas()
    assert list(host_scores.columns) == ["id"]


def _full_template(**train_params) -> Pipeline:
    """The full template with test-sized keys, FATE's Taylor loss (the steps before the training are what its
    tests are about, and the Fourier refinement would cost a third of their CPU) and `IV_MIN`."""
    pipeline = _template("credit_scoring_full", protocol=CHEAPER, approximation="taylor", **train_params)
    data = pipeline.to_dict()
    next(s for s in data["steps"] if s["name"] == "select")["params"]["iv_min"] = IV_MIN
    return Pipeline.from_dict(data)


def test_changing_the_learning_rate_reruns_only_train_evaluate_and_score(fed):
    """On the full template: every step before the training is reused (the first run is itself reused when
    `test_the_full_template_trains_on_the_selected_features` ran it already)."""
    run, _ = _run(fed, _full_template())
    again, _ = _run(fed, _full_template(learning_rate=0.3))
    states = dict(zip(again.steps()["step"], again.steps()["state"], strict=True))
    before = ("psi", "split", "prep_train", "prep_validation", "prep_test", "binning", "select")
    assert states == {
        **dict.fromkeys(before, "reused"),
        "train": "succeeded",
        "evaluate": "succeeded",
        "score": "succeeded",
    }
    assert (
        again.output("model", step="train").value()["coef"]
        != run.output("model", step="train").value()["coef"]
    )


def test_scoring_needs_the_score_use_and_a_model_of_the_same_project(fed, trained):
    protocol, run, _ = trained
    if protocol != CHEAPER:
        pytest.skip("the refusals do not depend on the protocol")
    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    guest.projects.propose(
        "noscore", partners="host", datasets=["breast_cancer"], uses=["psi", "train"], release="both"
    )
    host.projects.accept("noscore", datasets=["breast_cancer"])
    project = guest.project("noscore")
    small = Pipeline("small")
    small.add("psi", "psi", inputs={"data": "breast_cancer"})
    small.add(
        "train",
        "hetero_lr",
        inputs={"train": small.ref("psi", "data")},
        key_bits=1024,
        epochs=1,
        batch_size=0,
    )
    model = project.run_pipeline(small).wait(show_progress=False).output("model", step="train")
    with pytest.raises(FedbenchError, match="use 'score' is not allowed"):
        project.run("score", model=model.as_ref(), data="breast_cancer")
    demo = guest.project("demo")
    with pytest.raises(FedbenchError, match="never used in another"):
        demo.run("score", model=model.as_ref(), data="breast_cancer")


def _worker_trees(node_pid: int) -> dict[int, list[int]]:
    """Each worker of the node (a child of its fork server) with the processes below its own fork server."""
    trees = {}
    for server in child_pids(node_pid):
        if not is_fork_server(server):
            continue
        for worker in child_pids(server):
            trees[worker] = [p for own_server in child_pids(worker) for p in child_pids(own_server)]
    return trees


def test_no_worker_process_outlives_its_step(fed, trained):
    """A step's worker stops its Paillier pool before exiting: once the run is over, the node keeps only its
    idle warm workers (node.json's pool of 2), none with pool processes under it."""
    import time

    node = next(n for n in sandbox.status(fed) if n.party == "guest")
    deadline = time.monotonic() + 30
    while True:
        trees = _worker_trees(node.pid)
        clean = len(trees) <= 2 and not any(trees.values())
        if clean or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert trees, "the node's workers are found (the node's fork server and its children)"
    assert clean, f"workers or pool processes outlived their steps: {trees}"


def test_the_full_template_trains_on_the_selected_features(fed, trained):
    protocol, _, _ = trained
    if protocol != CHEAPER:
        pytest.skip("the feature-engineering steps do not depend on the protocol")
    run, host_run = _run(fed, _full_template())
    states = dict(zip(run.steps()["step"], run.steps()["state"], strict=True))
    assert states["psi"] == "reused" and states["split"] == "reused"
    assert {states[s] for s in ("prep_train", "binning", "select", "train", "evaluate", "score")} == {
        "succeeded"
    }
    guest_table = run.output("metrics", step="select").value()
    iv = {("guest", r["feature"]): r["iv"] for r in guest_table["decisions"]}
    iv |= {("host", r["feature"]): r["iv"] for r in guest_table["host_by_iv"]}
    dropped = 0
    for party, one in (("guest", run), ("host", host_run)):
        kept = one.output("model", step="select").value()["features"]
        decisions = one.output("metrics", step="select").value()["decisions"]
        assert one.output("model", step="train").value()["design"]["features"] == kept
        assert kept == [r["feature"] for r in decisions if iv[party, r["feature"]] >= IV_MIN], party
        dropped += len(decisions) - len(kept)
    assert dropped > 0
    assert run.output("metrics", step="evaluate").value()["validation"]["auc"] > 0.7
    assert len(run.output("scores", step="score").to_pandas()) > 1000


def test_an_exported_model_imported_back_scores_the_same(fed, trained, tmp_path):
    protocol, run, host_run = trained
    if protocol != CHEAPER:
        pytest.skip("export and import do not depend on the protocol")
    refs = {}
    for party, one in (("guest", run), ("host", host_run)):
        project = fedbench.connect(home=fed / party).project("demo")
        path = project.export_model(one.output("model", step="train"), tmp_path / f"{party}.json")
        refs[party] = project.import_model(path, name="credit_lr").as_ref()
    assert refs["guest"] == refs["host"]
    guest = fedbench.connect(home=fed / "guest").project("demo")
    rescored = guest.run(
        "score", model=refs["guest"], data=run.output("test", step="split").as_ref(), scorecard=True
    )
    again = rescored.wait(show_progress=False).output("scores").to_pandas()
    pd.testing.assert_frame_equal(again, run.output("scores", step="score").to_pandas())
