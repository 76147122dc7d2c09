"""Multiclass `hetero_secureboost` in process: one tree per class per round, the K classes' (g, h) packed in one
plaintext per row, so a round encrypts each row once; the trees are the plaintext booster's on the joined rows,
and the validation accuracy and AUC are XGBoost's (multi:softprob) within a small tolerance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.metrics import accuracy_score, roc_auc_score

from fedbench.components import RecordedMessage, RoleFailed, simulate
from fedbench.components.builtin.evaluate import EvaluateParams, evaluate_table
from fedbench.crypto.paillier import EncryptedVector, PublicKey
from fedbench.ml.secureboost import SecureBoostError
from fedbench.ml.secureboost.layout import GhEncoding, Layout, fit_groups
from fedbench.ml.trees import Booster

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

KEY = {"key_bits": 1024}
NAMES = np.array(["mid", "high", "low"])
"""Class names by generated class: sorted, they are high, low, mid, so the model's class order is not theirs."""
PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "trees": 20,
    "max_depth": 2,
    "bins": 8,
    "learning_rate": 0.5,
    "early_stopping_rounds": 2,
}
TRAIN, VALID = slice(0, 240), slice(240, 360)


def _tables(
    n: int, classes: int, seed: int, names: np.ndarray | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """Guest (id, label, a0..a2) and host (id, b0..b2) tables of generated classes, some host values missing;
    also the joined features and the class positions 0..K-1 in sorted label order (what the booster gets)."""
    x, y = make_classification(
        n_samples=n, n_features=6, n_informative=4, n_redundant=0, n_classes=classes,
        n_clusters_per_class=1, flip_y=0.05, random_state=seed,
    )  # fmt: skip
    x[:, 3:][np.random.default_rng(seed).random((n, 3)) < 0.05] = np.nan
    labels = names[y] if names is not None else y
    ids = [f"r{i}" for i in range(n)]
    guest = pd.DataFrame({"id": ids, "y": labels, **{f"a{j}": x[:, j] for j in range(3)}})
    host = pd.DataFrame({"id": ids, **{f"b{j}": x[:, 3 + j] for j in range(3)}})
    return guest, host, x, np.searchsorted(np.unique(labels), labels)


def _parts(guest: pd.DataFrame, host: pd.DataFrame, part: slice) -> dict[str, Any]:
    return {"guest": guest[part].reset_index(drop=True), "host": host[part].reset_index(drop=True)}


def _assert_same_trees(model: dict[str, Any], booster: Booster) -> None:
    """Every round's K trees: the same splits, default directions and row counts, leaf values to 1e-6."""
    assert len(model["trees"]) == len(booster.trees)
    for ours, theirs in zip(model["trees"], booster.trees, strict=True):
        assert len(ours) == len(theirs)
        for a, tree in zip(ours, theirs, strict=True):
            b = tree.to_dict()
            for field in ("feature", "bin", "default_left", "left", "right", "count"):
                assert a[field] == b[field], field
            np.testing.assert_allclose(a["value"], b["value"], atol=1e-6)


@pytest.fixture(scope="module")
def three_classes() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    return _tables(360, 3, 0, NAMES)


@pytest.fixture(scope="module")
def run(three_classes) -> tuple[dict[str, Any], list[RecordedMessage], Booster]:
    """One simulated multiclass training with validation and early stopping, its messages, and the booster."""
    guest, host, x, y = three_classes
    record: list[RecordedMessage] = []
    outputs = simulate(
        "hetero_secureboost",
        {
            "guest": {"train": guest[TRAIN], **_named(guest, VALID)},
            "host": {"train": host[TRAIN], **_named(host, VALID)},
        },
        record=record,
        **KEY,
        **PARAMS,
    )
    booster = Booster({**PARAMS, "num_class": 3}).fit(x[TRAIN], y[TRAIN], validation=(x[VALID], y[VALID]))
    return outputs, record, booster


def _named(table: pd.DataFrame, part: slice) -> dict[str, pd.DataFrame]:
    return {"validation": table[part].reset_index(drop=True)}


def test_multiclass_trees_are_the_plaintext_boosters_with_early_stopping(three_classes, run):
    guest, host, x, y = three_classes
    outputs, _, booster = run
    model = outputs["guest"]["model"]
    assert model["objective"] == "multiclass" and model["classes"] == ["high", "low", "mid"]
    assert booster.best_round is not None and len(booster.history) < PARAMS["trees"], "early stopping stopped"
    assert all(len(trees) == 3 for trees in model["trees"])
    _assert_same_trees(model, booster)
    np.testing.assert_allclose(model["base_margin"], booster.base_margin, atol=1e-12)
    assert model["best_round"] == booster.best_round
    np.testing.assert_allclose(model["history"], booster.history, atol=1e-9)
    metrics = outputs["guest"]["metrics"]
    np.testing.assert_allclose(metrics["validation_mlogloss"], booster.history, atol=1e-9)
    assert len(metrics["train_loss"]) == len(booster.history)
    for part, scores in ((TRAIN, outputs["guest"]["scores"]), (VALID, outputs["guest"]["validation_scores"])):
        expected = booster.predict(x[part])
        got = scores[[f"score_{c}" for c in model["classes"]]].to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert scores["pred"].tolist() == [model["classes"][k] for k in expected.argmax(axis=1)]
        assert scores["y"].tolist() == guest["y"][part].tolist()
    assert metrics["validation_accuracy"] == pytest.approx(
        accuracy_score(y[VALID], booster.predict(x[VALID]).argmax(axis=1))
    )
    guest_features = 3
    host_model = outputs["host"]["model"]
    expected_splits = {
        (t, k, node)
        for t, trees in enumerate(model["trees"])
        for k, tree in enumerate(trees)
        for node, f in enumerate(tree["feature"])
        if f >= guest_features
    }
    assert expected_splits, "some split is on a host feature"
    assert {(s["tree"], s["class"], s["node"]) for s in host_model["splits"]} == expected_splits


def test_multiclass_accuracy_and_auc_are_xgboosts_within_tolerance(three_classes, run):
    """XGBoost multi:softprob on the joined raw rows, same params, base margin and rounds: its quantile sketch
    cuts a little differently, so the validation accuracy and macro AUC agree within a few rows' worth."""
    guest, host, x, y = three_classes
    outputs, _, booster = run
    scores = outputs["guest"]["validation_scores"]
    classes = outputs["guest"]["model"]["classes"]
    ours = scores[[f"score_{c}" for c in classes]].to_numpy()
    rounds = len(outputs["guest"]["model"]["trees"])
    options = {
        "objective": "multi:softprob", "num_class": 3, "tree_method": "hist", "max_bin": PARAMS["bins"],
        "max_depth": PARAMS["max_depth"], "eta": PARAMS["learning_rate"], "lambda": 1.0, "gamma": 0.0,
        "min_child_weight": 1.0, "nthread": 1, "seed": 0,
    }  # fmt: skip
    base = np.asarray(outputs["guest"]["model"]["base_margin"])
    train = xgb.DMatrix(x[TRAIN], label=y[TRAIN], base_margin=np.tile(base, (240, 1)), missing=np.nan)
    valid = xgb.DMatrix(x[VALID], base_margin=np.tile(base, (120, 1)), missing=np.nan)
    theirs = xgb.train(options, train, num_boost_round=rounds).predict(valid).reshape(120, 3)
    accuracy = accuracy_score(y[VALID], ours.argmax(axis=1))
    assert accuracy > 0.75
    assert abs(accuracy - accuracy_score(y[VALID], theirs.argmax(axis=1))) <= 0.05
    auc = roc_auc_score(y[VALID], ours, multi_class="ovr")
    assert abs(auc - roc_auc_score(y[VALID], theirs, multi_class="ovr")) <= 0.02


def test_a_round_encrypts_each_row_once_for_every_class(run):
    """The host receives one ciphertext per row per round (all K classes' slots and the count in it), and the
    root histogram, the same rows for the K trees of a round, is asked for once per round."""
    outputs, record, _ = run
    rounds = len(outputs["guest"]["model"]["history"])
    public = PublicKey.from_dict(next(m.payload for m in record if m.tag == "sb.key"))
    commands = [m.payload for m in record if m.tag == "sb.tree" and m.receiver == "host"]
    starts = [c for c in commands if c["op"] == "start"]
    assert len(starts) == rounds
    received = 0
    for start in starts:
        assert set(start["layout"]) == {"count_bits", "hess_bits", "grad_bits"}
        assert len(start["layout"]["hess_bits"]) == len(start["layout"]["grad_bits"]) == 3
        gh = EncryptedVector.from_dict(public, start["gh"])
        assert len(gh) == len(start["rows"]) == 240
        received += len(gh)
    assert received == 240 * rounds, "each row is encrypted once per round, not once per class"
    roots = [c for c in commands if c["op"] == "hist" and any(len(rows) == 240 for rows in c["nodes"])]
    assert len(roots) == rounds, "the K trees of a round share the root's histogram"
    assert {c.get("class") for c in commands if c["op"] in ("hist", "split", "walk")} == {0, 1, 2}
    for message in record:
        if message.receiver == "host" and message.tag != "sb.key":
            assert not _has_floats(message.payload), f"{message.tag} carries numbers in the clear"


def _has_floats(payload: Any) -> bool:
    if isinstance(payload, np.ndarray):
        return payload.dtype.kind == "f"
    if isinstance(payload, float):
        return True
    if isinstance(payload, dict):
        return any(_has_floats(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return any(_has_floats(v) for v in payload)
    return False


def test_classes_that_do_not_fit_one_plaintext_go_in_as_few_groups_as_fit():
    """Twelve classes of 1024-bit key: two groups, each within the key; sums of any rows decode exactly."""
    rng = np.random.default_rng(1)
    rows, classes = 300, 12
    grad, hess = rng.normal(size=(rows, classes)) * 0.5, rng.random((rows, classes)) * 0.25
    groups = fit_groups(grad, hess, 1024)
    assert len(groups) == 2
    assert sum(encoding.layout.classes for encoding, _ in groups) == classes
    at = 0
    subset = rng.random(rows) < 0.4
    for encoding, packed in groups:
        assert encoding.layout.width <= 1024 - 3
        assert Layout.from_dict(encoding.layout.to_dict(), 1024) == encoding.layout
        total = sum(p for p, keep in zip(packed, subset, strict=True) if keep)
        count, per_class = encoding.decode([total])
        assert count == [int(subset.sum())]
        for k, (g, h) in enumerate(per_class):
            real_g, real_h = encoding.real(k, g[0], h[0], count[0])
            assert real_g == pytest.approx(grad[subset, at + k].sum(), abs=1e-9)
            assert real_h == pytest.approx(hess[subset, at + k].sum(), abs=1e-9)
        at += encoding.layout.classes
    one, _ = GhEncoding.fit(grad[:, 0], hess[:, 0])
    wire = one.layout.to_dict()
    assert set(wire) == {"count_bits", "hess_bits", "grad_bits"}
    assert all(type(v) is int for v in wire.values()), "one class keeps the binary wire format"


def test_twelve_classes_in_two_groups_give_the_plaintext_boosters_trees():
    guest, host, x, y = _tables(240, 12, 2)
    params = {"objective": "multiclass", "trees": 1, "max_depth": 2, "bins": 4, "learning_rate": 0.5}
    record: list[RecordedMessage] = []
    outputs = simulate("hetero_secureboost", {"guest": guest, "host": host}, record=record, **KEY, **params)
    booster = Booster({**params, "num_class": 12}).fit(x, y)
    model = outputs["guest"]["model"]
    assert model["classes"] == list(range(12))
    _assert_same_trees(model, booster)
    (start,) = [m.payload for m in record if m.tag == "sb.tree" and m.payload["op"] == "start"]
    assert isinstance(start["layout"], list) and len(start["layout"]) == len(start["gh"]) == 2
    # Numeric classes give evaluate its score_<class> columns: log loss and AUC besides accuracy.
    result = evaluate_table(outputs["guest"]["scores"], EvaluateParams(task="multiclass"))
    assert result["log_loss"] == pytest.approx(outputs["guest"]["metrics"]["train_loss"][-1])
    assert result["accuracy"] == pytest.approx(outputs["guest"]["metrics"]["train_accuracy"])


def test_two_classes_under_multiclass_train_one_binary_tree_per_round():
    guest, host, x, y = _tables(200, 2, 3, np.array(["no", "yes"]))
    params = {"trees": 2, "max_depth": 2, "bins": 8}
    outputs = simulate(
        "hetero_secureboost", {"guest": guest, "host": host}, objective="multiclass", **KEY, **params
    )
    model = outputs["guest"]["model"]
    assert model["objective"] == "binary" and model["classes"] == ["no", "yes"]
    assert all(len(trees) == 1 for trees in model["trees"])
    _assert_same_trees(model, Booster(params).fit(x, y))
    scores = outputs["guest"]["scores"]
    assert set(scores["pred"]) <= {"no", "yes"} and "score" in scores
    assert outputs["guest"]["metrics"]["train_auc"] > 0.8


@pytest.mark.parametrize(
    ("labels", "params", "words"),
    [
        (lambda n: ["a"] * n, {}, ("single class", "two or more")),
        (lambda n: [f"c{i % 4}" for i in range(n)], {"num_class": 3}, ("4 classes", "num_class")),
        (lambda n: [f"c{i % 60}" for i in range(n)], {}, ("60 classes", "num_class")),
    ],
)
def test_a_label_with_one_class_or_too_many_is_refused_with_the_fix(labels, params, words):
    guest, host, _, _ = _tables(120, 3, 4)
    guest = guest.assign(y=labels(len(guest)))
    with pytest.raises(RoleFailed) as failed:
        simulate(
            "hetero_secureboost",
            {"guest": guest, "host": host},
            objective="multiclass",
            trees=1,
            **KEY,
            **params,
        )
    error = failed.value.errors["guest"]
    assert isinstance(error, SecureBoostError)
    for word in words:
        assert word in str(error), (word, str(error))


@pytest.mark.parametrize(
    ("rename", "words"),
    [
        (lambda k: k + 3, "not one of the round's 3 classes"),
        (lambda k: (k + 1) % 3, "which is not our split"),
    ],
)
def test_the_host_answers_only_its_own_splits_of_the_class_named(monkeypatch, rename, words):
    """The host's checks stand with classes: a walk naming a class beyond the round's K is refused, and so is
    one naming another class's tree (its splits are recorded by class and node; that tree is not grown yet)."""
    from fedbench.ml.secureboost import guest as guest_side

    honest = guest_side.walk

    def other_class(tree, round, which, codes, missing_bin, klass=None):
        return honest(tree, round, which, codes, missing_bin, None if klass is None else rename(klass))

    monkeypatch.setattr(guest_side, "walk", other_class)
    guest, host, _, _ = _tables(120, 3, 5)
    with pytest.raises(RoleFailed) as failed:
        simulate(
            "hetero_secureboost", {"guest": guest, "host": host}, objective="multiclass", trees=1, max_depth=2,
            bins=4, **KEY,
        )  # fmt: skip
    error = failed.value.errors["host"]
    assert isinstance(error, SecureBoostError) and words in str(error), str(error)
