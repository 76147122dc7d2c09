"""What a partner's features add to a model: two models' scores on the same rows, compared with intervals.

`compare_scores` takes the labels of some rows and two score vectors on those same rows (the federated model's
and the guest-only model's) and gives each model's AUC, KS, log loss and lift by bucket; the difference in AUC
with its confidence interval from DeLong's covariance of two correlated ROC curves (`delong`, the fast midrank
algorithm of Sun & Xu 2014); bootstrap intervals of the differences in KS and in the top buckets' lift
(`bootstrap_deltas`, a paired resampling of the rows); curves whose every point aggregates at least
`min_bucket` rows (`guarded_curves`, `check_buckets`), so no chart or table shows a small group; and a verdict
in one plain sentence (`verdict`). Plain numpy, no peer involved: the `compare` component feeds it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from fedbench.errors import FedbenchError

__all__ = [
    "BucketError",
    "DeltaAuc",
    "Interval",
    "UpliftError",
    "bootstrap_deltas",
    "check_buckets",
    "compare_scores",
    "delong",
    "delong_delta",
    "guarded_curves",
    "midranks",
    "verdict",
]


class UpliftError(FedbenchError):
    """Two models' scores cannot be compared: lengths differ, one class only, values missing."""

    code = "uplift"


class BucketError(UpliftError):
    """Too few rows for the buckets asked: a bucket would hold fewer rows than the minimum."""

    code = "uplift_bucket"


@dataclass(frozen=True)
class Interval:
    """A difference (first model minus second) and its confidence interval at `level`."""

    value: float
    low: float
    high: float
    level: float

    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of zero (a measurable difference)."""
        return self.low > 0.0 or self.high < 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class DeltaAuc(Interval):
    """ΔAUC = AUC(a) - AUC(b) with DeLong's standard error, interval and two-sided p-value."""

    auc_a: float = math.nan
    auc_b: float = math.nan
    se: float = math.nan
    p_value: float = math.nan


def _labels_and_scores(
    y_true: npt.ArrayLike, scores: Sequence[npt.ArrayLike]
) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and the scores as a (models, rows) float matrix, checked."""
    y = np.asarray(y_true, dtype=float).ravel()
    s = np.vstack([np.asarray(v, dtype=float).ravel() for v in scores]) if len(scores) else np.zeros((0, 0))
    if s.shape[1] != len(y):
        raise UpliftError(f"{len(y)} labels but {s.shape[1]} scores per model; score the same rows")
    if np.isnan(y).any() or not np.isfinite(s).all():
        raise UpliftError("labels or scores have missing or infinite values; drop or fill those rows first")
    if not np.isin(y, (0.0, 1.0)).all():
        raise UpliftError(f"labels must be 0 or 1; found {sorted(set(np.unique(y).tolist()))[:5]}")
    if y.min(initial=1.0) == y.max(initial=0.0):
        raise UpliftError("the rows hold one class only; comparing AUCs needs both classes among the labels")
    return y.astype(np.int64), s


def midranks(x: npt.ArrayLike) -> np.ndarray:
    """The 1-based ranks of `x`, ties given the mean of the ranks they span (midranks)."""
    values = np.asarray(x, dtype=float).ravel()
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def delong(y_true: npt.ArrayLike, scores: Sequence[npt.ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    """The AUC of each score vector on the same rows and DeLong's covariance matrix of those AUCs.

    Sun & Xu (2014), "Fast implementation of DeLong's algorithm for comparing the areas under correlated
    receiver operating characteristic curves": the structural components come from midranks of the
    positives, the negatives and both, in O(n log n) per model.
    """
    y, s = _labels_and_scores(y_true, scores)
    positive, negative = s[:, y == 1], s[:, y == 0]
    m, n = positive.shape[1], negative.shape[1]
    tx = np.vstack([midranks(row) for row in positive])
    ty = np.vstack([midranks(row) for row in negative])
    tz = np.vstack([midranks(row) for row in np.hstack([positive, negative])])
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    sx = np.atleast_2d(np.cov(v01)) if m > 1 else np.zeros((len(s), len(s)))
    sy = np.atleast_2d(np.cov(v10)) if n > 1 else np.zeros((len(s), len(s)))
    return aucs, sx / m + sy / n


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise UpliftError(f"the confidence level must be between 0 and 1, not {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def delong_delta(
    y_true: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike, *, level: float = 0.95
) -> DeltaAuc:
    """AUC(a) - AUC(b) on the same rows, with DeLong's interval at `level` and its two-sided p-value."""
    aucs, cov = delong(y_true, [a, b])
    delta = float(aucs[0] - aucs[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    se = math.sqrt(max(variance, 0.0))
    half = _z(level) * se
    p_value = 2.0 * (1.0 - NormalDist().cdf(abs(delta) / se)) if se > 0 else (0.0 if delta else 1.0)
    return DeltaAuc(
        value=delta,
        low=delta - half,
        high=delta + half,
        level=level,
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        se=se,
        p_value=float(p_value),
    )


def bucket_ends(rows: int, bins: int) -> np.ndarray:
    """Cumulative row counts at the end of each bucket, as `numpy.array_split` cuts `rows` into `bins`."""
    sizes = np.full(bins, rows // bins)
    sizes[: rows % bins] += 1
    return np.cumsum(sizes)


def check_buckets(rows: int, bins: int, min_bucket: int) -> None:
    """Refuse `bins` buckets of `rows` rows when the smallest would hold fewer than `min_bucket` rows."""
    if bins < 1 or min_bucket < 1:
        raise BucketError(
            f"buckets ({bins}) and the minimum rows per bucket ({min_bucket}) must be at least 1"
        )
    smallest = rows // bins
    if smallest < min_bucket:
        most = rows // min_bucket
        fewer = f"or at most {most} buckets" if most >= 2 else "(fewer buckets cannot help: too few rows)"
        raise BucketError(
            f"{rows:,} rows in {bins} buckets make buckets of {smallest:,} rows, below the minimum of "
            f"{min_bucket:,} rows per bucket that keeps small groups from showing; give at least "
            f"{bins * min_bucket:,} validation rows {fewer}"
        )


class _Ranked:
    """One model's rows in score order (highest first, ties in row order) with the ends of its tie groups."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        self.order = np.argsort(-score, kind="mergesort")
        self.y = y[self.order].astype(float)
        ordered = score[self.order]
        self.ends = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]

    def stats(self, weights: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """KS and the cumulative lift at each of `cuts` (rows from the top) for each row of `weights`
        (resamples x rows: how often each row was drawn; all ones gives the statistics of the rows)."""
        w = weights[:, self.order]
        cum_w = np.cumsum(w, axis=1)
        cum_pos = np.cumsum(w * self.y, axis=1)
        total = cum_w[:, -1]
        positives = cum_pos[:, -1]
        negatives = total - positives
        with np.errstate(divide="ignore", invalid="ignore"):
            tpr = cum_pos[:, self.ends] / positives[:, None]
            fpr = (cum_w[:, self.ends] - cum_pos[:, self.ends]) / negatives[:, None]
            ks = np.max(tpr - fpr, axis=1, initial=0.0)
            ks[(positives == 0) | (negatives == 0)] = np.nan
            lifts = []
            for k in cuts:
                at = np.minimum((cum_w < k).sum(axis=1), w.shape[1] - 1)
                rows = np.arange(len(w))
                before_w = np.where(at > 0, cum_w[rows, at - 1], 0.0)
                before_p = np.where(at > 0, cum_pos[rows, at - 1], 0.0)
                hits = before_p + (k - before_w) * self.y[at]
                lifts.append((hits / k) / (positives / total))
        return ks, np.vstack(lifts).T if lifts else np.zeros((len(w), 0))


def _percentile_interval(value: float, draws: np.ndarray, level: float) -> Interval:
    kept = draws[np.isfinite(draws)]
    if not len(kept):
        return Interval(value, math.nan, math.nan, level)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(kept, [tail, 100.0 - tail])
    return Interval(value, float(low), float(high), level)


def bootstrap_deltas(
    y_true: npt.ArrayLike,
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    resamples: int = 1000,
    bins: int = 10,
    top: int = 2,
    level: float = 0.95,
) -> dict[str, Interval]:
    """KS(a) - KS(b) and the cumulative lift differences at the top `top` buckets, with percentile intervals
    from `resamples` paired resamples of the rows (both models scored on the same drawn rows).

    Keys: "ks", then "lift_top1", "lift_top2"... (the top bucket, the top two buckets together...).
    """
    y, s = _labels_and_scores(y_true, [a, b])
    if resamples < 1:
        raise UpliftError(f"resamples must be at least 1, not {resamples}")
    rows = len(y)
    cuts = bucket_ends(rows, bins)[: max(0, min(top, bins))].astype(float)
    ranked = [_Ranked(y, s[0]), _Ranked(y, s[1])]
    ones = np.ones((1, rows))
    point = [r.stats(ones, cuts) for r in ranked]
    ks_point = float(point[0][0][0] - point[1][0][0])
    lift_point = point[0][1][0] - point[1][1][0]
    chunk = max(1, min(resamples, 2_000_000 // max(rows, 1)))
    ks_draws: list[np.ndarray] = []
    lift_draws: list[np.ndarray] = []
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        drawn = rng.integers(0, rows, size=(size, rows)) + (np.arange(size)[:, None] * rows)
        weights = np.bincount(drawn.ravel(), minlength=size * rows).reshape(size, rows).astype(float)
        (ks_a, lift_a), (ks_b, lift_b) = (r.stats(weights, cuts) for r in ranked)
        ks_draws.append(ks_a - ks_b)
        lift_draws.append(lift_a - lift_b)
        done += size
    out = {"ks": _percentile_interval(ks_point, np.concatenate(ks_draws), level)}
    lifts = np.vstack(lift_draws)
    for i in range(len(cuts)):
        out[f"lift_top{i + 1}"] = _percentile_interval(float(lift_point[i]), lifts[:, i], level)
    return out


def guarded_curves(y_true: npt.ArrayLike, score: npt.ArrayLike, min_bucket: int) -> dict[str, list[float]]:
    """ROC, KS and gain curves of one model whose every step adds at least `min_bucket` rows.

    Rows are taken highest score first; a point is placed only where the score changes and at least
    `min_bucket` rows have been added since the last one (a last step that would be shorter joins the one
    before), so no point tells apart a group smaller than `min_bucket`. Keys: population (share of rows
    taken), tpr, fpr and gain (= tpr), each starting at 0 and ending at 1.
    """
    y, s = _labels_and_scores(y_true, [score])
    ranked = _Ranked(y, s[0])
    rows = len(y)
    check_buckets(rows, 1, min_bucket)
    taken = ranked.ends + 1
    cuts: list[int] = []
    last = 0
    while True:
        at = int(np.searchsorted(taken, last + min_bucket))
        if at >= len(taken):
            break
        last = int(taken[at])
        cuts.append(last)
    # the rows after the last point are fewer than min_bucket: they join the last step
    cuts = [*cuts[:-1], rows] if cuts else [rows]
    ends = np.asarray(cuts) - 1
    positives = np.cumsum(ranked.y)
    tp = positives[ends]
    fp = (ends + 1) - tp
    tpr = np.r_[0.0, tp / positives[-1]]
    fpr = np.r_[0.0, fp / (rows - positives[-1])]
    population = np.r_[0.0, (ends + 1) / rows]
    return {
        "population": population.tolist(),
        "tpr": tpr.tolist(),
        "fpr": fpr.tolist(),
        "gain": tpr.tolist(),
    }


def _lift_table(y: np.ndarray, score: np.ndarray, bins: int) -> list[dict[str, float]]:
    """Lift and cumulative gain per bucket of rows, highest scores first (the sizes of `bucket_ends`)."""
    ranked = _Ranked(y, score)
    ends = bucket_ends(len(y), bins)
    starts = np.r_[0, ends[:-1]]
    hits = np.cumsum(ranked.y)
    total = hits[-1]
    base = total / len(y)
    out = []
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        inside = hits[b - 1] - (hits[a - 1] if a else 0.0)
        out.append(
            {
                "bucket": i + 1,
                "rows": int(b - a),
                "positives": int(inside),
                "lift": float(inside / (b - a) / base),
                "cumulative_lift": float(hits[b - 1] / b / base),
                "cumulative_gain": float(hits[b - 1] / total),
                "population": float(b / len(y)),
            }
        )
    return out


def _log_loss(y: np.ndarray, p: np.ndarray) -> float | None:
    if p.min() < 0.0 or p.max() > 1.0:
        return None
    eps = np.finfo(float).eps
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _summary(y: np.ndarray, score: np.ndarray, bins: int, min_bucket: int) -> dict[str, Any]:
    ranked = _Ranked(y, score)
    ks, _ = ranked.stats(np.ones((1, len(y))), np.zeros(0))
    aucs, _ = delong(y, [score])
    return {
        "auc": float(aucs[0]),
        "ks": float(ks[0]),
        "log_loss": _log_loss(y, score),
        "lift": _lift_table(y, score, bins),
        "curves": guarded_curves(y, score, min_bucket),
    }


def _signed(value: float) -> str:
    return f"{value:.3f}"


def verdict(delta: Interval, *, rows: int, host_features: int | None = None) -> dict[str, Any]:
    """One plain sentence on what the partner's features add to the AUC, and whether it is measurable.

    Measurable only when the interval of ΔAUC lies above zero; an interval that includes zero (or lies below
    it) is a warning, never a success.
    """
    one = host_features == 1
    features = (
        f"the partner's {host_features:,} feature{'' if one else 's'}"
        if host_features
        else "the partner's features"
    )
    add, make = ("adds", "makes") if one else ("add", "make")
    span = f"[{_signed(delta.low)}, {_signed(delta.high)}]"
    where = f"on {rows:,} validation rows ({delta.level:.0%} confidence)"
    if delta.low > 0.0:
        text = f"{features[:1].upper()}{features[1:]} {add} {_signed(delta.value)} AUC {span} {where}."
        return {"text": text, "measurable": True, "severity": "ok"}
    if delta.high < 0.0:
        text = (
            f"{features[:1].upper()}{features[1:]} {make} the model worse: the AUC changes by "
            f"{_signed(delta.value)} {span} {where}; a model on your features alone ranks better."
        )
        return {"text": text, "measurable": False, "severity": "warning"}
    text = (
        f"The partner's data adds no measurable lift: the AUC changes by {_signed(delta.value)} {span} {where}, "
        "an interval that includes 0."
    )
    return {"text": text, "measurable": False, "severity": "warning"}


def compare_scores(
    y_true: npt.ArrayLike,
    federated: npt.ArrayLike,
    guest_only: npt.ArrayLike,
    *,
    rng: np.random.Generator | None = None,
    host_features: int | None = None,
    bins: int = 10,
    min_bucket: int = 50,
    resamples: int = 1000,
    level: float = 0.95,
) -> dict[str, Any]:
    """The comparison of a federated model with a guest-only one on the same rows, as JSON-ready data.

    Keys: rows, positives, federated and guest_only (auc, ks, log_loss, lift by bucket, guarded curves),
    delta (auc with DeLong's se and p-value; ks and lift_top1/2 from the bootstrap; log_loss), the settings,
    and the verdict. `BucketError` when the rows are too few for `bins` buckets of `min_bucket` rows.
    """
    y, s = _labels_and_scores(y_true, [federated, guest_only])
    check_buckets(len(y), bins, min_bucket)
    rng = rng if rng is not None else np.random.default_rng()
    auc = delong_delta(y, s[0], s[1], level=level)
    boot = bootstrap_deltas(y, s[0], s[1], rng=rng, resamples=resamples, bins=bins, level=level)
    fed, own = _summary(y, s[0], bins, min_bucket), _summary(y, s[1], bins, min_bucket)
    loss = None
    if fed["log_loss"] is not None and own["log_loss"] is not None:
        loss = fed["log_loss"] - own["log_loss"]
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        "federated": fed,
        "guest_only": own,
        "delta": {
            "auc": auc.to_dict(),
            **{name: interval.to_dict() for name, interval in boot.items()},
            "log_loss": loss,
        },
        "bins": bins,
        "min_bucket": min_bucket,
        "resamples": resamples,
        "level": level,
        "verdict": verdict(auc, rows=len(y), host_features=host_features),
    }
