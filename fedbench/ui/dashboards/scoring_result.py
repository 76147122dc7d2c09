"""How the scoring dashboard draws a scoring run: who started it with which model, what was reused, the rows
scored and the score distribution (the guest's), or what the partner sent (the partner's); and a model in one
line. Plain functions of the values the steps stored, so `scoring.py` only reads and places them.
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
import pandas as pd

from fedbench.client.records import RunInfo
from fedbench.ui.dashboards.common import figure_box, format_when
from fedbench.ui.dashboards.figures import chart, chart_grid
from fedbench.ui.dashboards.model_runs import TRAINERS, reuse_sentence

__all__ = ["charts_html", "features_used", "model_summary", "result_html"]


def result_html(
    info: RunInfo,
    metrics: Any,
    scores: Any,
    *,
    model_words: str,
    started_by: str,
    guest: str,
    trees: bool = False,
) -> str:
    """A scoring run as our party knows it: the guest's figures of its scores, or the rows the partner scored
    (`trees`: with a boosted-trees model, whose scoring the partner took part in differently)."""
    top = (
        f'<div class="fb-help">Run <code>{escape(info.job_id[:8])}</code>, started by '
        f"{escape(started_by)} on {escape(format_when(info.created_at))} · "
        f"model: {escape(model_words)}</div>"
    )
    state = info.state
    if not info.finished:
        return (
            top
            + f'<div class="fb-help">This scoring is {escape(state)}; the scores show here when it ends.</div>'
        )
    if state != "succeeded":
        error = info.reason
        words = {"failed": "failed", "cancelled": "was cancelled"}.get(state, state)
        return top + (
            f'<div class="fb-message fb-scoring-failed">This scoring {escape(words)}'
            f"{escape(': ' + str(error) if error else '.')}</div>"
        )
    reuse = reuse_sentence(info)
    head = top + (f'<div class="fb-reuse fb-scoring-reuse">{escape(reuse)}</div>' if reuse else "")
    rows = int(metrics.get("rows", 0)) if isinstance(metrics, dict) else None
    figures = figure_box("rows scored", "" if rows is None else f"{rows:,}", "fb-scoring-rows")
    if isinstance(scores, pd.DataFrame) and "score" in scores.columns:
        rate = (metrics or {}).get("predicted_positive_rate")
        if rate is not None:
            figures += figure_box("predicted positive", f"{float(rate):.1%}", "fb-scoring-positive-rate")
        if len(scores):
            figures += figure_box(
                "median score", f"{float(scores['score'].median()):.3f}", "fb-scoring-median"
            )
        if "points" in scores.columns and len(scores):
            median = float(scores["points"].median())
            figures += figure_box("median scorecard points", f"{median:,.1f}", "fb-scoring-points")
        return head + f'<div class="fb-figures">{figures}</div>'
    if trees:
        note = (
            f"At each split of yours in the model's trees, you told {escape(guest)} which of these rows go "
            f"left, from your own part of the model; {escape(guest)} walked its trees and holds the scores. "
            "You hold the list of IDs scored."
        )
    else:
        note = (
            f"You sent {escape(guest)} the partial scores of these rows, computed with your part of the "
            f"model; {escape(guest)} added its own and holds the scores. You hold the list of IDs scored."
        )
    return (
        head
        + f'<div class="fb-figures">{figures}</div>'
        + f'<div class="fb-help fb-scoring-partner-note">{note}</div>'
    )


def charts_html(scores: pd.DataFrame) -> str:
    """The score distribution (by true class when the rows carry 0/1 labels) and the scorecard points."""
    from fedbench.ui import plots

    truth = scores["y"] if "y" in scores.columns and set(pd.unique(scores["y"])) <= {0, 1} else None
    charts = [
        chart(
            lambda: plots.score_distribution(scores["score"], truth),
            "Score distribution",
            "fb-chart-score-distribution",
        )
    ]
    if "points" in scores.columns:
        charts.append(chart(lambda: _points_chart(scores["points"]), "Scorecard points", "fb-chart-points"))
    return chart_grid(charts)


def _points_chart(points: pd.Series) -> Any:
    """The scorecard points as a histogram (`score_distribution` with its axis named for points)."""
    from fedbench.ui import plots

    figure = plots.score_distribution(np.asarray(points, dtype=float))
    axes = figure.axes[0]
    axes.set_xlabel("Scorecard points (higher: lower risk)")
    axes.set_title("Scorecard points")
    return figure


def features_used(model: Any) -> int | None:
    """How many of our features our part of a model has (None when it is not a model part we know)."""
    if not isinstance(model, dict):
        return None
    if model.get("component") == "hetero_secureboost":
        if model.get("role") == "guest":
            return int(model.get("guest_features") or 0)
        return len(model.get("features") or [])
    features = (model.get("design") or {}).get("features")
    return None if features is None else len(features)


def model_summary(model: Any, auc: float | None) -> str:
    """Our part of a model in one line: our features, its training rows, what model it is (logistic
    regression's protocol, or boosted trees and how many), validation AUC if known."""
    if not isinstance(model, dict):
        return ""
    card = model.get("card") or {}
    if model.get("component") == "hetero_secureboost":
        rounds = model.get("trees")
        kind = TRAINERS["hetero_secureboost"] + (f", {len(rounds)} trees" if isinstance(rounds, list) else "")
    else:
        kind = f"{TRAINERS['hetero_lr']}, protocol {model.get('protocol', '')}"
    parts = [
        f"{features_used(model) or 0:,} of your features",
        f"trained on {int(card['rows']):,} rows" if card.get("rows") is not None else "",
        kind,
        f"AUC {auc:.3f} on validation rows" if auc is not None else "",
    ]
    return f'<div class="fb-help">{escape(" · ".join(p for p in parts if p))}</div>'
