"""The plaintext boosted-tree core (`fedbench.ml.trees`) that the federated SecureBoost will reproduce.

Checked against XGBoost (`tree_method="hist"`) trained on the same rows with matching params and the same base
margin: its test AUC, RMSE or accuracy on the raw features (where the two quantile sketches place cut points a
little differently), and its very trees when it is given our bin indices as features. Checked exactly on a
tiny hand-made table whose splits, default directions and leaf values are worked out by hand below. XGBoost
runs on one thread so the tests stay light on a shared machine.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import make_classification, make_friedman1
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from fedbench.datasets import FEATURES, LABEL_COLUMN, breast_cancer_table, make_credit
from fedbench.ml.trees import (
    Binner,
    Booster,
    TreeDataError,
    TreeModelError,
    TreeParams,
    TreeParamsError,
    tree_params,
)
from fedbench.ml.trees.histogram import Histogram, build_histograms
from fedbench.ml.trees.sampling import goss_sample
from fedbench.ml.trees.split import best_split

COMMON = {
    "max_depth": 3,
    "learning_rate": 0.3,
    "bins": 32,
    "reg_lambda": 1.0,
    "gamma": 0.0,
    "min_child_weight": 1.0,
}


def _xgboost(
    params: dict, objective: str, x, y, xt, base_train, base_test, rounds: int, num_class: int | None = None
):
    """XGBoost with the same params and base margin; its raw margins on the test rows."""
    options = {
        "objective": objective,
        "tree_method": "hist",
        "max_bin": params["bins"],
        "max_depth": params["max_depth"],
        "eta": params["learning_rate"],
        "lambda": params["reg_lambda"],
        "gamma": params["gamma"],
        "min_child_weight": params["min_child_weight"],
        "nthread": 1,
        "seed": 0,
    }
    if num_class:
        options["num_class"] = num_class
    train = xgb.DMatrix(x, label=y, base_margin=base_train, missing=np.nan)
    test = xgb.DMatrix(xt, base_margin=base_test, missing=np.nan)
    model = xgb.train(options, train, num_boost_round=rounds)
    return model.predict(test, output_margin=True)


def _binary_auc_pair(x, y, rounds: int = 20) -> tuple[float, float]:
    x, xt, y, yt = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    booster = Booster({"trees": rounds, "objective": "binary", **COMMON}).fit(x, y)
    ours = roc_auc_score(yt, booster.predict(xt))
    base = float(booster.base_margin[0])
    theirs = _xgboost(
        COMMON, "binary:logistic", x, y, xt, np.full(len(x), base), np.full(len(xt), base), rounds
    )
    return ours, roc_auc_score(yt, theirs)


def test_breast_cancer_auc_matches_xgboost():
    table = breast_cancer_table()
    x = table.drop(columns=["id", "y"]).to_numpy(float)
    ours, theirs = _binary_auc_pair(x, table["y"].to_numpy())
    assert ours > 0.97
    assert abs(ours - theirs) <= 0.005, (ours, theirs)


def test_credit_with_missing_values_auc_matches_xgboost():
    table = make_credit(6000)
    x = table[FEATURES].to_numpy(float)
    y = table[LABEL_COLUMN].to_numpy()
    holes = np.isnan(x).mean(axis=0)
    assert (holes > 0.01).sum() >= 3, "the credit data should have several columns with missing values"
    assert 0.1 < y.mean() < 0.35
    ours, theirs = _binary_auc_pair(x, y)
    assert ours > 0.7
    assert abs(ours - theirs) <= 0.005, (ours, theirs)


def _coarse(x: np.ndarray) -> np.ndarray:
    """Features rounded to 21 levels each: both models then cut between every two levels, so the comparison
    checks the trees rather than two quantile sketches (on continuous features, cut points placed a little
    differently alone move the RMSE of this regression by up to 3% either way, seed to seed)."""
    lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    return lo + np.round((x - lo) / (hi - lo) * 20) / 20 * (hi - lo)


def test_regression_rmse_within_two_percent_of_xgboost():
    x, y = make_friedman1(n_samples=3000, noise=1.0, random_state=0)
    x = _coarse(x)
    x[np.random.default_rng(0).random(x.shape) < 0.05] = np.nan
    x, xt, y, yt = train_test_split(x, y, test_size=0.3, random_state=0)
    booster = Booster({"trees": 30, "objective": "regression", **COMMON}).fit(x, y)
    assert booster.base_margin[0] == pytest.approx(y.mean(), abs=1e-12)
    ours = float(np.sqrt(np.mean((booster.predict(xt) - yt) ** 2)))
    base = float(booster.base_margin[0])
    predicted = _xgboost(
        COMMON, "reg:squarederror", x, y, xt, np.full(len(x), base), np.full(len(xt), base), 30
    )
    theirs = float(np.sqrt(np.mean((predicted - yt) ** 2)))
    assert ours < 0.7 * np.std(yt)
    assert abs(ours - theirs) <= 0.02 * theirs, (ours, theirs)


def test_multiclass_accuracy_within_a_point_of_xgboost():
    x, y = make_classification(
        n_samples=3000, n_features=10, n_informative=6, n_classes=3, n_clusters_per_class=1, random_state=0
    )
    x = _coarse(x)
    x, xt, y, yt = train_test_split(x, y, test_size=0.33, random_state=0, stratify=y)
    booster = Booster({"trees": 15, "objective": "multiclass", "num_class": 3, **COMMON}).fit(x, y)
    assert len(booster.trees) == 15 and all(len(r) == 3 for r in booster.trees)
    prob = booster.predict(xt)
    assert prob.shape == (len(xt), 3)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.exp(booster.base_margin), np.bincount(y, minlength=3) / len(y), rtol=1e-12)
    ours = accuracy_score(yt, prob.argmax(axis=1))
    margins = _xgboost(
        COMMON,
        "multi:softprob",
        x,
        y,
        xt,
        np.tile(booster.base_margin, (len(x), 1)),
        np.tile(booster.base_margin, (len(xt), 1)),
        15,
        num_class=3,
    )
    theirs = accuracy_score(yt, np.asarray(margins).reshape(len(xt), 3).argmax(axis=1))
    assert ours > 0.8
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


def _same_data(objective: str) -> tuple[np.ndarray, np.ndarray]:
    if objective == "binary":
        table = make_credit(3000, seed=1)
        return table[FEATURES].to_numpy(float), table[LABEL_COLUMN].to_numpy()
    if objective == "regression":
        x, y = make_friedman1(n_samples=2000, noise=1.0, random_state=1)
    else:
        x, y = make_classification(n_samples=2000, n_features=8, n_classes=3, n_informative=5, random_state=1)
    x[np.random.default_rng(1).random(x.shape) < 0.05] = np.nan
    return x, y


@pytest.mark.parametrize(
    ("objective", "theirs"),
    [("binary", "binary:logistic"), ("regression", "reg:squarederror"), ("multiclass", "multi:softprob")],
)
def test_on_our_bins_xgboost_grows_the_same_trees(objective, theirs):
    """Given our bin indices as its features (each then a bin of its own), XGBoost makes the same splits, default
    directions and leaf values round after round: margins agree to its float32 precision."""
    x, y = _same_data(objective)
    num_class = 3 if objective == "multiclass" else None
    booster = Booster({"trees": 8, "objective": objective, "num_class": num_class, **COMMON}).fit(x, y)
    codes = booster.binner.transform(x).astype(float)
    codes[codes == booster.binner.missing_bin] = np.nan
    base = np.tile(booster.base_margin, (len(x), 1)).squeeze()
    params = {**COMMON, "bins": 64}
    margins = np.asarray(_xgboost(params, theirs, codes, y, codes, base, base, 8, num_class=num_class))
    ours = booster.predict_margin(x)
    assert booster.feature_importance()["split"].sum() >= 8 * 6
    np.testing.assert_allclose(margins.reshape(ours.shape), ours, rtol=0, atol=1e-5)


# A tiny table, worked by hand. Labels are balanced, so the base margin is 0, p = 1/2, g = 1/2 - y, h = 1/4.
# Feature 0 takes 1..6 (six bins, cut points 2..6) and is missing on rows 6 and 7, whose label is 0 like
# that of the rows with 1 and 2; feature 1 alternates and tells nothing. With lambda 1:
#   x0 < 3, missing left:  left {0,1,6,7}: G = 2, H = 1; right {2..5}: G = -2, H = 1
#                          gain = 2^2/2 + 2^2/2 - 0^2/3 = 4, the only perfect split
#   x0 < 3, missing right: left G = 1, H = 1/2; right G = -1, H = 3/2: gain = 1/1.5 + 1/2.5 = 16/15
#   feature 1: G = 0 on both sides, gain 0
# Leaf values at learning rate 1/2: -G/(H + lambda) * 1/2 = -2/2 * 1/2 = -1/2 on the left, +1/2 on the right.
TINY_X = np.array([[1, 0], [2, 1], [3, 0], [4, 1], [5, 0], [6, 1], [np.nan, 0], [np.nan, 1]], dtype=float)
TINY_Y = np.array([0, 0, 1, 1, 1, 1, 0, 0])
TINY = {
    "trees": 1,
    "max_depth": 1,
    "learning_rate": 0.5,
    "bins": 8,
    "reg_lambda": 1.0,
    "min_child_weight": 0.0,
}


def test_tiny_table_split_default_direction_and_leaf_values_by_hand():
    booster = Booster(TINY).fit(TINY_X, TINY_Y)
    assert booster.base_margin[0] == 0.0
    tree = booster.trees[0][0]
    assert (int(tree.feature[0]), int(tree.bin[0]), bool(tree.default_left[0])) == (0, 1, True)
    assert tree.gain[0] == pytest.approx(4.0, abs=1e-12)
    assert booster.binner.threshold(0, 1) == 3.0
    left, right = int(tree.left[0]), int(tree.right[0])
    assert tree.value[left] == pytest.approx(-0.5, abs=1e-12)
    assert tree.value[right] == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(
        booster.predict_margin(TINY_X), [-0.5, -0.5, 0.5, 0.5, 0.5, 0.5, -0.5, -0.5], atol=1e-12
    )
    new = np.array([[2.5, 0], [3.0, 0], [np.nan, 1], [100.0, 0], [-5.0, 1]])
    np.testing.assert_allclose(booster.predict_margin(new), [-0.5, 0.5, -0.5, 0.5, -0.5], atol=1e-12)
    importance = booster.feature_importance()
    assert importance["split"].tolist() == [1, 0]
    assert importance["gain"][0] == pytest.approx(4.0, abs=1e-12)


def test_tiny_table_split_refused_by_gamma_min_rows_and_min_child_weight():
    """gamma 4 still splits (gain 4); just above it no split pays. A child of 5 rows, or of hessian 1.01 (5 rows
    of h = 1/4), leaves fewer than 5 rows to its sibling: the root stays a leaf, of value -0/(2 + 1) = 0."""
    assert Booster({**TINY, "gamma": 4.0}).fit(TINY_X, TINY_Y).trees[0][0].feature.tolist() == [0, -1, -1]
    for refusal in ({"gamma": 4.01}, {"min_rows_per_leaf": 5}, {"min_child_weight": 1.01}):
        tree = Booster({**TINY, **refusal}).fit(TINY_X, TINY_Y).trees[0][0]
        assert tree.feature.tolist() == [-1], refusal
        assert tree.value[0] == pytest.approx(0.0, abs=1e-12)


def _two_features_cutting_alike(nudge: float) -> Histogram:
    """A node's histogram where feature 0 after bin 0 and feature 1 after bin 2 send the same rows left; feature
    1's left gradient is `nudge` larger (what the host's fixed-point sums do to a gain)."""
    grad = np.array([[-3.0, 1.0, 2.0, 0.5, 0.0], [-1.0, -1.0, -1.0 + nudge, 1.5, 0.0]])
    hess = np.array([[2.0, 1.0, 1.0, 1.0, 0.0], [1.0, 0.5, 0.5, 3.0, 0.0]])
    count = np.array([[4, 2, 2, 2, 0], [2, 1, 1, 6, 0]])
    return Histogram(grad, hess, count)


def test_a_gain_within_rounding_of_the_best_ties_and_the_lower_feature_wins():
    """Two cuts of the same rows have the same gain; raising feature 1's by about 1e-12 of it (rounding) must
    not pick feature 1, raising it by about 1e-6 must."""
    params = TreeParams.model_validate({"min_child_weight": 0.0})
    for nudge, feature, bin in ((0.0, 0, 0), (-1e-12, 0, 0), (-1e-6, 1, 2)):
        hist = _two_features_cutting_alike(nudge)
        totals = (float(hist.grad[0].sum()), float(hist.hess[0].sum()), int(hist.count[0].sum()))
        split = best_split(hist, totals, np.array([4, 4]), np.array([True, True]), params)
        assert split is not None and (split.feature, split.bin, split.default_left) == (
            feature,
            bin,
            False,
        ), nudge


def test_binning_keeps_missing_apart_and_at_most_bins():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    x[:, 1] = rng.integers(0, 5, 2000)
    x[rng.random(2000) < 0.1, 2] = np.nan
    binner = Binner.fit(x, bins=16)
    codes = binner.transform(x)
    assert codes.dtype == np.uint8
    assert binner.bin_counts.tolist() == [16, 5, 16]
    assert (codes[:, :2] < 16).all()
    assert (codes[np.isnan(x[:, 2]), 2] == binner.missing_bin).all()
    assert (codes[~np.isnan(x[:, 2]), 2] < 16).all()
    np.testing.assert_array_equal(np.sort(np.unique(codes[:, 1])), np.arange(5))
    assert Binner.fit(x, bins=300).transform(x).dtype == np.uint16
    counts = np.bincount(codes[:, 0], minlength=16)
    assert counts.min() > 2000 / 16 * 0.5 and counts.max() < 2000 / 16 * 1.5


def test_sibling_histogram_is_parent_minus_child():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 9, size=(500, 4)).astype(np.uint8)
    g, h = rng.normal(size=500), rng.random(500)
    parent_rows = np.sort(rng.choice(500, 400, replace=False))
    child_rows = parent_rows[codes[parent_rows, 2] <= 3]
    sibling_rows = parent_rows[codes[parent_rows, 2] > 3]
    parent, child, sibling = build_histograms(codes, 9, g, h, [parent_rows, child_rows, sibling_rows])
    derived = parent - child
    np.testing.assert_array_equal(derived.count, sibling.count)
    np.testing.assert_allclose(derived.grad, sibling.grad, rtol=0, atol=1e-12)
    np.testing.assert_allclose(derived.hess, sibling.hess, rtol=0, atol=1e-12)
    assert child.count[0].sum() == len(child_rows)
    assert child.grad[1, 5] == pytest.approx(g[child_rows][codes[child_rows, 1] == 5].sum(), abs=1e-12)


def test_goss_keeps_the_largest_gradients_and_reweights_the_rest():
    g = np.random.default_rng(2).normal(size=(1000, 1))
    rows, weights = goss_sample(np.abs(g).sum(axis=1), top_rate=0.2, other_rate=0.1, seed=7)
    assert len(rows) == 300 and np.all(np.diff(rows) > 0)
    top = np.argsort(-np.abs(g[:, 0]))[:200]
    kept = dict(zip(rows.tolist(), weights.tolist(), strict=True))
    assert all(kept.get(int(r)) == 1.0 for r in top)
    others = [w for r, w in kept.items() if r not in set(top.tolist())]
    assert len(others) == 100 and all(w == pytest.approx((1 - 0.2) / 0.1, abs=1e-12) for w in others)
    again, _ = goss_sample(np.abs(g).sum(axis=1), top_rate=0.2, other_rate=0.1, seed=7)
    other_seed, _ = goss_sample(np.abs(g).sum(axis=1), top_rate=0.2, other_rate=0.1, seed=8)
    np.testing.assert_array_equal(rows, again)
    assert not np.array_equal(rows, other_seed)


def test_goss_and_subsample_train_on_fewer_rows_and_still_learn():
    table = breast_cancer_table()
    x, y = table.drop(columns=["id", "y"]).to_numpy(float), table["y"].to_numpy()
    for extra in ({"goss": {"top_rate": 0.3, "other_rate": 0.2}}, {"subsample": 0.5, "colsample": 0.5}):
        booster = Booster({"trees": 10, "objective": "binary", "seed": 3, **COMMON, **extra}).fit(x, y)
        assert roc_auc_score(y, booster.predict(x)) > 0.97
        again = Booster({"trees": 10, "objective": "binary", "seed": 3, **COMMON, **extra}).fit(x, y)
        np.testing.assert_array_equal(booster.predict(x), again.predict(x))


def _noisy_binary(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 6))
    y = (x[:, 0] + 1.5 * rng.normal(size=600) > 0).astype(int)
    return x[:400], y[:400], x[400:], y[400:]


def test_early_stopping_stops_at_the_right_round():
    """The stop follows from the full run's validation history, keeps the best round's trees, and agrees with
    XGBoost's early stopping on the same bins."""
    x, y, xv, yv = _noisy_binary(2)
    params = {"trees": 40, "objective": "binary", "max_depth": 3, "min_child_weight": 0.0}
    full = Booster(params).fit(x, y, validation=(xv, yv))
    history = full.history
    assert len(history) == 40
    patience = 3
    stop = next(r for r in range(40) if r - int(np.argmin(history[: r + 1])) >= patience)
    best = int(np.argmin(history[: stop + 1]))
    assert 2 < best < stop < 39, "the noisy validation rows should make the model overfit after a few rounds"
    stopped = Booster({**params, "early_stopping_rounds": patience}).fit(x, y, validation=(xv, yv))
    assert len(stopped.history) == stop + 1
    assert stopped.best_round == best
    assert len(stopped.trees) == best + 1
    np.testing.assert_allclose(stopped.history, history[: stop + 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        stopped.predict_margin(xv), full.predict_margin(xv, rounds=best + 1), atol=1e-12
    )
    p = np.clip(stopped.predict(xv), 1e-15, 1 - 1e-15)
    assert stopped.history[best] == pytest.approx(
        -np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p)), abs=1e-9
    )

    def binned(rows: np.ndarray, labels: np.ndarray) -> xgb.DMatrix:
        codes = stopped.binner.transform(rows).astype(float)
        codes[codes == stopped.binner.missing_bin] = np.nan
        return xgb.DMatrix(codes, label=labels, base_margin=np.full(len(rows), stopped.base_margin[0]))

    options = {"objective": "binary:logistic", "tree_method": "hist", "max_bin": 64, "max_depth": 3}
    options |= {"eta": 0.3, "min_child_weight": 0.0, "eval_metric": "logloss", "nthread": 1}
    validation = binned(xv, yv)
    theirs = xgb.train(
        options,
        binned(x, y),
        40,
        evals=[(validation, "v")],
        early_stopping_rounds=patience,
        verbose_eval=False,
    )
    assert (theirs.best_iteration, theirs.num_boosted_rounds()) == (best, stop + 1)


def test_complete_secure_first_tree_uses_only_the_guest_features():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 6))
    y = (2 * x[:, 4] + x[:, 5] + 0.3 * x[:, 0] + 0.3 * rng.normal(size=800) > 0).astype(int)
    guest = [0, 1, 2]
    params = {"trees": 4, "objective": "binary", "max_depth": 3, "complete_secure": True}
    booster = Booster(params).fit(x, y, guest_features=guest)
    first = booster.trees[0][0]
    assert first.split_features() and first.split_features() <= set(guest)
    assert {4, 5} <= set().union(*(t.split_features() for t in booster.trees[1]))
    plain = Booster({**params, "complete_secure": False}).fit(x, y)
    assert 4 in plain.trees[0][0].split_features()
    with pytest.raises(TreeDataError, match="guest_features"):
        Booster(params).fit(x, y)


@pytest.mark.parametrize("objective", ["binary", "multiclass", "regression"])
def test_dict_round_trip_predicts_identically(objective):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 4))
    x[rng.random(x.shape) < 0.1] = np.nan
    signal = np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 1])
    y = {
        "binary": (signal > 0).astype(int),
        "multiclass": np.digitize(signal, [-0.5, 0.5]),
        "regression": signal,
    }
    params = {"trees": 5, "objective": objective, "num_class": 3 if objective == "multiclass" else None}
    booster = Booster(params).fit(x, y[objective], feature_names=["a", "b", "c", "d"])
    data = json.loads(json.dumps(booster.to_dict()))
    again = Booster.from_dict(data)
    np.testing.assert_array_equal(again.predict(x), booster.predict(x))
    assert again.feature_names == ["a", "b", "c", "d"]
    assert again.params == booster.params
    with pytest.raises(TreeModelError, match="trees"):
        Booster.from_dict({**data, "trees": [[{"feature": [0]}]]})
    with pytest.raises(TreeModelError, match="format"):
        Booster.from_dict({**data, "format": "pickle"})


@pytest.mark.parametrize(
    ("values", "fix"),
    [
        ({"max_depth": 0}, "max_depth"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"objective": "poisson"}, "objective"),
        ({"objective": "multiclass"}, "set num_class"),
        ({"objective": "binary", "num_class": 3}, "leave num_class unset"),
        ({"goss": {"top_rate": 0.7, "other_rate": 0.5}}, "top_rate + other_rate"),
        ({"goss": {"top_rate": 0.2, "other_rate": 0.1}, "subsample": 0.5}, "either goss or subsample"),
        ({"bins": 1}, "bins"),
        ({"tree_count": 3}, "tree_count"),
    ],
)
def test_bad_params_raise_our_error_naming_the_fix(values, fix):
    with pytest.raises(TreeParamsError, match=re.escape(fix)):
        tree_params(values)
    with pytest.raises(TreeParamsError):
        Booster(values)


def test_params_defaults_and_fit_refusals():
    params = tree_params({})
    assert isinstance(params, TreeParams) and params.bins == 32 and params.objective == "binary"
    x, y, xv, yv = _noisy_binary(0)
    with pytest.raises(TreeDataError, match="validation"):
        Booster({"early_stopping_rounds": 2}).fit(x, y)
    with pytest.raises(TreeDataError, match="0 and 1"):
        Booster({}).fit(x, y + 1)
    with pytest.raises(TreeDataError, match="rows"):
        Booster({}).fit(x, y[:-1])
