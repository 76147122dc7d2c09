""" "What does the partner add?" in the modeling dashboard: the `compare` run of a trained model and its result.

`uplift_pipeline` builds the one-step pipeline that compares a run's federated model with the same model on
the guest's features alone (its inputs: the training step's model, training and validation rows and stored
validation scores, so nothing is scored again); `cannot_compare` says why a run's model cannot be compared;
`uplift_html` draws the result (the verdict, both models' metrics with the differences and their intervals,
the overlaid curves) with the one-page model report to download as HTML or PDF (`fedbench.ui.report`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from html import escape
from typing import Any

from fedbench.client.records import RunInfo
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards.common import download_link, table_html
from fedbench.ui.dashboards.figures import chart, chart_grid
from fedbench.ui.dashboards.modeling_result import train_step

__all__ = ["COMPARE", "UPLIFT_NAME", "cannot_compare", "uplift_html", "uplift_pipeline"]

COMPARE = "compare"
"""The component that compares a federated model with the guest-only one."""
UPLIFT_NAME = "what the partner adds "
"""How the page names its comparison runs: followed by the start of the training step's key."""


def cannot_compare(info: RunInfo | None, model: Any) -> str | None:
    """Why a run's model cannot be compared with one on our features alone, in words; None when it can."""
    if info is None or info.state != "succeeded":
        return "Only a trained model can be compared: choose a run that succeeded."
    step = train_step(info)
    if step is None or "validation" not in step.inputs:
        return "This run trained its model without validation rows: both models are compared on them."
    if not isinstance(model, dict) or model.get("role") != "guest":
        return "Only the party holding the labels (the guest) can compare the models."
    classes = model.get("classes") or []
    if model.get("objective", "binary") != "binary" or len(classes) != 2:
        return "The comparison measures AUC, KS and lift of a yes-or-no model; this model predicts more."
    return None


def uplift_pipeline(info: RunInfo) -> Pipeline:
    """The `compare` step of a succeeded training run: its model, rows and stored validation scores."""
    step = train_step(info)
    assert step is not None
    inputs: dict[str, Any] = {
        "model": {"artifact": f"{step.key}:model"},
        "train": step.inputs["train"],
        "validation": step.inputs["validation"],
        "validation_scores": {"artifact": f"{step.key}:validation_scores"},
    }
    return Pipeline(f"{UPLIFT_NAME}{step.key[:20]}").add(COMPARE, COMPARE, inputs=inputs)


def uplift_html(
    report: Mapping[str, Any],
    *,
    job_id: str,
    card: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> str:
    """The verdict (a warning when the partner adds no measurable lift), both models' metrics, the curves, and
    the model report to download."""
    import pandas as pd

    from fedbench.ui import report as model_report
    from fedbench.ui import uplift_plots

    text, severity = model_report.verdict_line(report)
    box = "fb-ok" if severity == "ok" else "fb-message fb-warning"
    mark = "" if severity == "ok" else "⚠ "
    verdict = f'<div class="{box} fb-modeling-uplift-verdict"><b>{escape(mark + text)}</b></div>'
    rows = model_report.metric_rows(report)
    frame = pd.DataFrame(rows, columns=["metric", "with the partner", "your features alone", "difference"])
    share = (report.get("host_share") or {}).get("value")
    share_text = (
        f'<div class="fb-help">The partner\'s share of the model: {float(share):.0%} '
        f"({escape(str((report.get('host_share') or {}).get('means', '')))}).</div>"
        if share is not None
        else ""
    )
    charts = chart_grid(
        [
            chart(functools.partial(uplift_plots.uplift_chart, report, which), f"{words} of both models", css)
            for which, words, css in (
                ("roc", "ROC curves", "fb-chart-uplift-roc"),
                ("ks", "KS curves", "fb-chart-uplift-ks"),
                ("lift", "Lift", "fb-chart-uplift-lift"),
                ("gain", "Gain", "fb-chart-uplift-gain"),
            )
        ]
    )
    title = f"Model report: {report.get('kind', 'model')} of run {job_id[:8]}"
    html = model_report.report_html(report, card=card, evaluation=evaluation, title=title)
    pdf = model_report.report_pdf(report, card=card, evaluation=evaluation, title=title)
    stem = f"model-report-{job_id[:8]}"
    links = (
        download_link(
            html.encode(),
            f"{stem}.html",
            "Download the model report (HTML)",
            mime="text/html",
            css="fb-modeling-report-html",
        )
        + " "
        + download_link(
            pdf, f"{stem}.pdf", "Download it as PDF", mime="application/pdf", css="fb-modeling-report-pdf"
        )
    )
    return (
        '<div class="fb-subsection">What does the partner add?</div>'
        + verdict
        + table_html(frame)
        + share_text
        + charts
        + f'<div class="fb-modeling-report">{links}</div>'
    )
