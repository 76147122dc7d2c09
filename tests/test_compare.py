"""`compare` in process (`simulate`, real Paillier at 1024 bits): the guest-only model equals a centralized
plaintext fit on the guest's columns (logistic regression and boosted trees), the federated model beats it where
the host's features carry signal, the verdict warns when they do not, and wrong inputs are refused in words."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fedbench.components import RoleFailed, simulate
from fedbench.ml.design import sigmoid
from fedbench.ml.trees import Booster, TreeParams

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

ROWS, TRAIN = 600, 400
SMALL = {"bins": 4, "min_bucket": 25, "resamples": 300}
"""200 validation rows: four buckets of 50 rows, curve points of at least 25."""
LR = {
    "key_bits": 1024,
    "approximation": "taylor",
    "epochs": 3,
    "batch_size": 0,
    "learning_rate": 0.5,
    "alpha": 0.01,
    "early_stopping": False,
}
TREES = {"key_bits": 1024, "trees": 3, "max_depth": 2, "bins": 8}


def _parties(host_signal: float, seed: int = 1) -> dict[str, dict[str, pd.DataFrame]]:
    """Aligned training and validation rows; the label depends on one guest feature and on the host's."""
    rng = np.random.default_rng(seed)
    ids = [f"r{i:04d}" for i in range(ROWS)]
    g, h = rng.normal(size=(ROWS, 2)), rng.normal(size=(ROWS, 2))
    logit = 0.8 * g[:, 0] + host_signal * (h[:, 0] - h[:, 1])
    y = (rng.random(ROWS) < sigmoid(logit)).astype(int)
    guest = pd.DataFrame({"id": ids, "y": y, "g0": g[:, 0], "g1": g[:, 1]})
    host = pd.DataFrame({"id": ids, "h0": h[:, 0], "h1": h[:, 1]})
    return {
        "guest": {
            "train": guest.iloc[:TRAIN].reset_index(drop=True),
            "validation": guest.iloc[TRAIN:].reset_index(drop=True),
        },
        "host": {
            "train": host.iloc[:TRAIN].reset_index(drop=True),
            "validation": host.iloc[TRAIN:].reset_index(drop=True),
        },
    }


def _train(
    component: str, data: dict[str, dict[str, pd.DataFrame]], params: dict[str, Any]
) -> dict[str, Any]:
    return simulate(component, data, **params)


def _compare_inputs(data: dict[str, Any], trained: dict[str, Any], *, stored: bool = True) -> dict[str, Any]:
    inputs = {party: {**tables, "model": trained[party]["model"]} for party, tables in data.items()}
    if stored:
        inputs["guest"]["validation_scores"] = trained["guest"]["validation_scores"]
    return inputs


@pytest.fixture(scope="module")
def lr_signal() -> tuple[dict[str, Any], dict[str, Any]]:
    data = _parties(host_signal=1.5)
    return data, _train("hetero_lr", data, LR)


@pytest.fixture(scope="module")
def trees_signal() -> tuple[dict[str, Any], dict[str, Any]]:
    data = _parties(host_signal=1.5, seed=2)
    return data, _train("hetero_secureboost", data, TREES)


def _plain_taylor_lr(train: pd.DataFrame, epochs: int, lr: float, alpha: float) -> np.ndarray:
    """A centralized fit on the guest's columns: standardised, intercept last, full-batch Taylor SGD with L2."""
    x = train[["g0", "g1"]].to_numpy(float)
    x = np.hstack([(x - x.mean(axis=0)) / x.std(axis=0), np.ones((len(x), 1))])
    y = train["y"].to_numpy(float)
    w = np.zeros(3)
    mask = np.array([1.0, 1.0, 0.0])
    for _ in range(epochs):
        r = 0.25 * (x @ w) + 0.5 - y
        w = w - lr * (x.T @ r / len(y) + alpha * w * mask)
    return w


def test_lr_guest_only_model_is_the_centralized_fit_and_the_partner_adds_auc(lr_signal) -> None:
    data, trained = lr_signal
    events: list[tuple[str, dict[str, Any]]] = []
    out = simulate("compare", _compare_inputs(data, trained), events=events, **SMALL)
    report = out["guest"]["report"]
    assert not out.get("host"), "the host writes nothing"

    w = _plain_taylor_lr(data["guest"]["train"], LR["epochs"], LR["learning_rate"], LR["alpha"])
    np.testing.assert_allclose(report["guest_only_model"]["coef"], w, atol=1e-12)
    validation = data["guest"]["validation"]
    xv = validation[["g0", "g1"]].to_numpy(float)
    xt = data["guest"]["train"][["g0", "g1"]].to_numpy(float)
    own = sigmoid(np.hstack([(xv - xt.mean(axis=0)) / xt.std(axis=0), np.ones((len(xv), 1))]) @ w)
    np.testing.assert_allclose(out["guest"]["guest_only_scores"]["score"], own, atol=1e-12)
    assert report["guest_only"]["auc"] == pytest.approx(roc_auc_score(validation["y"], own), abs=1e-12)
    stored = trained["guest"]["validation_scores"]["score"]
    assert report["federated"]["auc"] == pytest.approx(roc_auc_score(validation["y"], stored), abs=1e-12)

    delta = report["delta"]["auc"]
    assert report["federated"]["auc"] > report["guest_only"]["auc"] and delta["low"] > 0
    assert report["verdict"]["measurable"] and report["verdict"]["text"].startswith(
        f"The partner's 2 features add {delta['value']:.3f} AUC [{delta['low']:.3f}, {delta['high']:.3f}] on 200"
    )
    assert 0.5 < report["host_share"]["value"] < 1.0, "the host's log-odds spread more than the guest's"
    assert report["scores_from"] == "stored by the training"
    assert not [e for p, e in events if e["type"] == "warning"]

    scored = simulate("compare", _compare_inputs(data, trained, stored=False), **SMALL)["guest"]["report"]
    assert scored["scores_from"] == "scored with the host"
    assert scored["federated"]["auc"] == pytest.approx(report["federated"]["auc"], abs=1e-9)
    for name in ("auc", "ks", "lift_top1"):  # the same rows, scores and keyed draws: the same intervals
        for end in ("value", "low", "high"):
            assert scored["delta"][name][end] == pytest.approx(report["delta"][name][end], abs=1e-9)


def test_lr_guest_only_model_follows_the_default_fourier_training() -> None:
    """With the default approximation (Newton warm-up, refine epochs on the periodic sigmoid) the guest-only
    model trains the same way: on the guest's columns its validation AUC is within 0.002 of scikit-learn's
    logistic regression with the same penalty on the same rows, and the partner still adds AUC."""
    from sklearn.linear_model import LogisticRegression

    data = _parties(host_signal=1.5, seed=3)
    params = {"key_bits": 1024, "epochs": 4, "batch_size": 0, "alpha": 0.01, "early_stopping": False}
    trained = _train("hetero_lr", data, params)
    report = simulate("compare", _compare_inputs(data, trained), **SMALL)["guest"]["report"]
    train, validation = data["guest"]["train"], data["guest"]["validation"]
    xt, xv = train[["g0", "g1"]].to_numpy(float), validation[["g0", "g1"]].to_numpy(float)
    mean, std = xt.mean(axis=0), xt.std(axis=0)
    central = LogisticRegression(C=1.0 / (params["alpha"] * len(xt))).fit((xt - mean) / std, train["y"])
    central_auc = roc_auc_score(validation["y"], central.decision_function((xv - mean) / std))
    assert report["guest_only"]["auc"] == pytest.approx(central_auc, abs=0.002)
    taylor = _plain_taylor_lr(train, params["epochs"], 0.5, params["alpha"])
    assert np.abs(np.asarray(report["guest_only_model"]["coef"]) - taylor).max() > 1e-3, (
        "the guest-only model trained as the federated one did, not on Taylor's loss"
    )
    assert report["federated"]["auc"] > report["guest_only"]["auc"]


def test_trees_guest_only_model_is_the_plaintext_booster_on_the_guests_columns(trees_signal) -> None:
    data, trained = trees_signal
    out = simulate("compare", _compare_inputs(data, trained, stored=False), **SMALL)
    report = out["guest"]["report"]
    train, validation = data["guest"]["train"], data["guest"]["validation"]
    params = {k: v for k, v in TREES.items() if k != "key_bits"}
    booster = Booster(TreeParams(**params)).fit(train[["g0", "g1"]], train["y"])
    expected = booster.predict(validation[["g0", "g1"]]).ravel()
    np.testing.assert_allclose(out["guest"]["guest_only_scores"]["score"], expected, atol=1e-12)
    assert report["guest_only"]["auc"] == pytest.approx(roc_auc_score(validation["y"], expected), abs=1e-12)
    stored = trained["guest"]["validation_scores"]["score"]
    assert report["federated"]["auc"] == pytest.approx(roc_auc_score(validation["y"], stored), abs=1e-9)
    assert report["delta"]["auc"]["low"] > 0 and report["verdict"]["measurable"]
    model = trained["guest"]["model"]
    gains = dict(zip(model["feature_names"], model["importance"]["gain"], strict=True))
    share = sum(v for k, v in gains.items() if k.startswith("host:")) / sum(gains.values())
    assert report["host_share"]["value"] == pytest.approx(share)
    assert report["host_features"] == 2 and report["guest_features"] == 2


def test_no_measurable_lift_is_a_warning() -> None:
    data = _parties(host_signal=0.0, seed=4)
    trained = _train("hetero_lr", data, LR)
    events: list[tuple[str, dict[str, Any]]] = []
    report = simulate("compare", _compare_inputs(data, trained), events=events, **SMALL)["guest"]["report"]
    assert not report["verdict"]["measurable"] and report["verdict"]["severity"] == "warning"
    warned = [e["message"] for p, e in events if p == "guest" and e["type"] == "warning"]
    assert warned == [report["verdict"]["text"]]
    assert "no measurable lift" in warned[0] or "worse" in warned[0]


def test_wrong_rows_and_too_few_rows_are_refused_in_words(lr_signal) -> None:
    data, trained = lr_signal
    inputs = _compare_inputs(data, trained)
    inputs["guest"]["train"] = data["guest"]["train"].iloc[:-1]
    with pytest.raises(RoleFailed, match="not those the model was trained on"):
        simulate("compare", inputs, **SMALL)
    with pytest.raises(
        RoleFailed, match="200 rows in 10 buckets make buckets of 20 rows, below the minimum of 50"
    ):
        simulate("compare", _compare_inputs(data, trained))
