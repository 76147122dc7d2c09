"""`fedbench.ml.uplift` in process, on fixed seeded data: DeLong's AUCs and covariance against scikit-learn, the
pairwise definition and a bootstrap with many resamples; the bootstrap intervals of ΔKS and Δlift against a
resample drawn by hand; the bucket guards; the verdict's words."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from fedbench.components.builtin.metrics import binary_metrics, lift_gain
from fedbench.ml.uplift import (
    BucketError,
    Interval,
    bootstrap_deltas,
    check_buckets,
    compare_scores,
    delong,
    delong_delta,
    guarded_curves,
    midranks,
    verdict,
)


def _data(n: int = 600, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated scores of the same rows; the second has ties (rounded)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    signal = y + rng.normal(scale=1.0, size=n)
    a = signal + rng.normal(scale=0.6, size=n)
    b = np.round(signal + rng.normal(scale=1.2, size=n), 1)
    return y, a, b


def _pairwise_delong(y: np.ndarray, scores: list[np.ndarray]) -> np.ndarray:
    """DeLong et al. (1988) from its definition: structural components over every (positive, negative) pair."""
    pos, neg = [s[y == 1] for s in scores], [s[y == 0] for s in scores]
    m, n = len(pos[0]), len(neg[0])
    v10, v01 = [], []
    for p, q in zip(pos, neg, strict=True):
        psi = (p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    return np.cov(np.vstack(v10)) / m + np.cov(np.vstack(v01)) / n


def _rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    ranks = rankdata(s)
    m = y.sum()
    return float((ranks[y == 1].sum() - m * (m + 1) / 2) / (m * (len(y) - m)))


def test_midranks_average_the_ranks_of_ties() -> None:
    np.testing.assert_array_equal(midranks([3.0, 1.0, 3.0, 2.0, 3.0]), [4.0, 1.0, 4.0, 2.0, 4.0])


def test_delong_matches_sklearn_the_pairwise_definition_and_a_bootstrap() -> None:
    y, a, b = _data()
    aucs, cov = delong(y, [a, b])
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)], abs=1e-12)
    np.testing.assert_allclose(cov, _pairwise_delong(y, [a, b]), rtol=1e-9)

    delta = delong_delta(y, a, b, level=0.95)
    assert delta.value == pytest.approx(aucs[0] - aucs[1], abs=1e-12)
    assert delta.se == pytest.approx(np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), rel=1e-12)
    assert (delta.low, delta.high) == pytest.approx(
        (delta.value - 1.959964 * delta.se, delta.value + 1.959964 * delta.se)
    )
    rng = np.random.default_rng(11)
    draws = []
    for _ in range(4000):
        rows = rng.integers(0, len(y), len(y))
        draws.append(_rank_auc(y[rows], a[rows]) - _rank_auc(y[rows], b[rows]))
    assert np.std(draws) == pytest.approx(delta.se, rel=0.08), "the bootstrap's spread agrees with DeLong's"
    assert delta.p_value < 0.05 and delta.excludes_zero()


def test_bootstrap_points_match_evaluate_and_one_resample_matches_one_drawn_by_hand() -> None:
    y, a, b = _data(seed=3)
    b = b + np.random.default_rng(5).normal(scale=1e-6, size=len(b))  # no ties: the top buckets are exact
    found = bootstrap_deltas(y, a, b, rng=np.random.default_rng(1), resamples=500, bins=10)
    ks = binary_metrics(y, a)["ks"] - binary_metrics(y, b)["ks"]
    lift_a, lift_b = lift_gain(y, a, 10), lift_gain(y, b, 10)
    assert found["ks"].value == pytest.approx(ks, abs=1e-12)
    for top in (1, 2):
        expected = lift_a[top - 1]["cumulative_lift"] - lift_b[top - 1]["cumulative_lift"]
        assert found[f"lift_top{top}"].value == pytest.approx(expected, abs=1e-12)
    assert all(i.low <= i.value <= i.high for i in found.values())
    again = bootstrap_deltas(y, a, b, rng=np.random.default_rng(1), resamples=500, bins=10)
    assert again == found, "the same seed draws the same resamples"

    one = bootstrap_deltas(y, a, b, rng=np.random.default_rng(9), resamples=1, bins=10)
    rows = np.random.default_rng(9).integers(0, len(y), size=(1, len(y)))[0]
    ks_drawn = binary_metrics(y[rows], a[rows])["ks"] - binary_metrics(y[rows], b[rows])["ks"]
    assert one["ks"].low == one["ks"].high == pytest.approx(ks_drawn, abs=1e-12)
    drawn_a, drawn_b = lift_gain(y[rows], a[rows], 10), lift_gain(y[rows], b[rows], 10)
    lift_drawn = drawn_a[0]["cumulative_lift"] - drawn_b[0]["cumulative_lift"]
    assert one["lift_top1"].low == pytest.approx(lift_drawn, abs=1e-9)


def test_bucket_guards_refuse_a_bucket_below_the_minimum() -> None:
    check_buckets(500, 10, 50)
    with pytest.raises(BucketError) as refused:
        check_buckets(499, 10, 50)
    words = str(refused.value)
    assert "499 rows in 10 buckets make buckets of 49 rows" in words
    assert "minimum of 50 rows" in words and "at least 500 validation rows or at most 9 buckets" in words
    y, a, b = _data(n=400)
    with pytest.raises(BucketError, match="400 rows in 10 buckets"):
        compare_scores(y, a, b, rng=np.random.default_rng(0))

    y, a, b = _data(n=1000)
    for score, minimum in ((a, 50), (b, 50), (np.round(a), 80)):  # rounded: a few large tie groups
        curves = guarded_curves(y, score, minimum)
        steps = np.diff(np.asarray(curves["population"]) * len(y))
        assert steps.min() >= minimum - 1e-9, "every point adds at least min_bucket rows"
        assert curves["tpr"][0] == 0.0 and curves["tpr"][-1] == curves["fpr"][-1] == 1.0
    report = compare_scores(y, a, b, rng=np.random.default_rng(0), min_bucket=50, resamples=200)
    assert min(row["rows"] for row in report["federated"]["lift"]) >= 50
    assert report["federated"]["auc"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)


def test_the_verdict_is_a_sentence_and_a_warning_unless_the_lift_is_measurable() -> None:
    measurable = verdict(Interval(0.043, 0.036, 0.050, 0.95), rows=6000, host_features=13)
    assert measurable["text"] == (
        "The partner's 13 features add 0.043 AUC [0.036, 0.050] on 6,000 validation rows (95% confidence)."
    )
    assert measurable["measurable"] and measurable["severity"] == "ok"
    none = verdict(Interval(0.004, -0.003, 0.011, 0.95), rows=960, host_features=13)
    assert none["text"].startswith("The partner's data adds no measurable lift: the AUC changes by 0.004")
    assert "[-0.003, 0.011] on 960 validation rows" in none["text"] and "includes 0" in none["text"]
    assert not none["measurable"] and none["severity"] == "warning"
    worse = verdict(Interval(-0.02, -0.03, -0.01, 0.9), rows=960, host_features=1)
    assert worse["text"].startswith("The partner's 1 feature makes the model worse")
    assert worse["severity"] == "warning" and "(90% confidence)" in worse["text"]
