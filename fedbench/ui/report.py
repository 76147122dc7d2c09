"""The one-page model report for the business owner who signs a model off: HTML and PDF.

Built from what the guest holds: the `compare` report (both models' metrics, the differences with their
intervals, the guarded curves, the verdict), the training's `evaluate` metrics and the model card (its
parameters, data fingerprint, who trained it and when). `report_html` is one self-contained page (the charts
as inline PNG images, the style inline, nothing fetched); `report_pdf` is one A4 page drawn by matplotlib's
PDF backend (`PdfPages`, no other dependency).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from fedbench.ui.uplift_plots import uplift_chart, uplift_panel

__all__ = ["metric_rows", "report_figure", "report_html", "report_pdf", "setting_rows", "verdict_line"]

_CARD_FIELDS = (
    ("project", "Project"),
    ("created_by", "Trained by"),
    ("created_at", "Trained on"),
    ("job", "Run"),
    ("step", "Step"),
    ("protocol", "Protocol"),
    ("rows", "Training rows"),
    ("data_fingerprint", "Data fingerprint (SHA-256)"),
)
_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;max-width:1000px;margin:24px auto;
padding:0 16px;font-size:14px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px;border-bottom:1px solid #d0d7de}
.fb-sub{color:#57606a}.fb-verdict{padding:10px 14px;border-radius:6px;font-size:15px;margin:12px 0}
.fb-verdict.ok{background:#dafbe1;border:1px solid #2da44e}.fb-verdict.warning{background:#fff8c5;
border:1px solid #bf8700}table{border-collapse:collapse;margin:4px 0}td,th{padding:3px 10px;border-bottom:1px
solid #eaeef2;text-align:left}th{background:#f6f8fa}.fb-charts img{width:48%;margin:1%}
"""


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _interval(delta: Mapping[str, Any] | None) -> str:
    if not isinstance(delta, Mapping):
        return ""
    low, high = delta.get("low"), delta.get("high")
    span = f" [{_number(low)}, {_number(high)}]" if low is not None and high is not None else ""
    return f"{_number(delta.get('value'))}{span}"


def verdict_line(report: Mapping[str, Any]) -> tuple[str, str]:
    """The verdict sentence and its severity ("ok" or "warning")."""
    verdict = report.get("verdict") or {}
    return str(verdict.get("text", "")), str(verdict.get("severity", "warning"))


def metric_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, with the partner, your features alone, difference with its interval) on the validation rows."""
    fed, own = report.get("federated") or {}, report.get("guest_only") or {}
    delta = report.get("delta") or {}
    level = float(report.get("level", 0.95))
    rows = [
        ("AUC", _number(fed.get("auc")), _number(own.get("auc")), _interval(delta.get("auc"))),
        ("KS", _number(fed.get("ks")), _number(own.get("ks")), _interval(delta.get("ks"))),
    ]
    bins = int(report.get("bins", 10))
    for top in (1, 2):
        key = f"lift_top{top}"
        if key in delta:
            share = f"{top / bins:.0%}"
            lift = [p.get("lift") or [] for p in (fed, own)]
            values = [_number(t[top - 1].get("cumulative_lift"), 2) if len(t) >= top else "" for t in lift]
            rows.append((f"Lift in the top {share}", values[0], values[1], _interval(delta[key])))
    loss = delta.get("log_loss")
    rows.append(("Log loss", _number(fed.get("log_loss")), _number(own.get("log_loss")), _number(loss)))
    rows.append((f"(intervals at {level:.0%} confidence)", "", "", ""))
    return rows


def setting_rows(report: Mapping[str, Any], card: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The model card (who, when, which data) and the training parameters, as (name, value) rows."""
    card = card or {}
    rows = [(label, str(card[key])) for key, label in _CARD_FIELDS if card.get(key) not in (None, "")]
    rows.append(("Model", f"{report.get('kind', '')} {str(report.get('model_id', ''))[:16]}".strip()))
    share = (report.get("host_share") or {}).get("value")
    if share is not None:
        rows.append(
            (
                "Partner's share of the model",
                f"{float(share):.0%} ({(report.get('host_share') or {}).get('means', '')})",
            )
        )
    rows.append(
        (
            "Features",
            f"{report.get('guest_features', '?')} yours, {report.get('host_features', '?')} the partner's",
        )
    )
    rows.append(
        ("Validation rows", f"{int(report.get('rows', 0)):,} ({int(report.get('positives', 0)):,} positives)")
    )
    rows.append(("Buckets", f"{report.get('bins')} of at least {report.get('min_bucket')} rows each"))
    params = report.get("params") or card.get("params") or {}
    rows += [(f"param {k}", str(v)) for k, v in sorted(params.items()) if v is not None]
    return rows


def _table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def _png(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _evaluation_rows(evaluation: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    evaluation = evaluation or {}
    train, valid = evaluation.get("train") or {}, evaluation.get("validation") or {}
    names = (
        ("auc", "AUC"),
        ("ks", "KS"),
        ("log_loss", "Log loss"),
        ("accuracy", "Accuracy"),
        ("rows", "Rows"),
    )
    return [
        (label, _number(train.get(k), 4), _number(valid.get(k), 4))
        for k, label in names
        if k in train or k in valid
    ]


def report_html(
    report: Mapping[str, Any],
    *,
    card: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    title: str = "Model report",
) -> str:
    """The report as one self-contained HTML page (inline style and PNG charts; nothing fetched)."""
    text, severity = verdict_line(report)
    charts = "".join(
        _png(uplift_chart(report, which), f"{name} of both models")
        for which, name in (
            ("roc", "ROC curves"),
            ("ks", "KS curves"),
            ("lift", "Lift by bucket"),
            ("gain", "Gain"),
        )
    )
    evaluation_part = ""
    rows = _evaluation_rows(evaluation)
    if rows:
        evaluation_part = "<h2>The model on its training and validation rows</h2>" + _table(
            ("metric", "training rows", "validation rows"), rows
        )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<div class="fb-sub">{escape(str(report.get("kind", "")).capitalize())} trained with the partner, '
        "against the same model on your features alone, on the same validation rows.</div>"
        f'<div class="fb-verdict {escape(severity)}">{escape(text)}</div>'
        "<h2>What the partner adds</h2>"
        + _table(("metric", "with the partner", "your features alone", "difference"), metric_rows(report))
        + evaluation_part
        + f'<h2>Curves</h2><div class="fb-charts">{charts}</div>'
        + "<h2>Model card and parameters</h2>"
        + _table(("", ""), setting_rows(report, card))
        + "</body></html>"
    )


def report_pdf(
    report: Mapping[str, Any],
    *,
    card: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    title: str = "Model report",
) -> bytes:
    """The report as a one-page A4 PDF (matplotlib's PDF backend)."""
    fig = report_figure(report, card=card, evaluation=evaluation, title=title)
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        pdf.savefig(fig)
    return buffer.getvalue()


def report_figure(
    report: Mapping[str, Any],
    *,
    card: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    title: str = "Model report",
) -> Figure:
    """The report's one A4 page as a figure: verdict, metrics table, the four charts, card and parameters."""
    fig = Figure(figsize=(8.27, 11.69))
    text, severity = verdict_line(report)
    fig.text(0.06, 0.965, title, fontsize=15, weight="bold", va="top")
    fig.text(
        0.06,
        0.94,
        _wrap(text, 95),
        fontsize=9.5,
        va="top",
        color="#1a7f37" if severity == "ok" else "#9a6700",
    )
    metrics = fig.add_axes((0.06, 0.80, 0.88, 0.10))
    metrics.axis("off")
    table = metrics.table(
        cellText=[list(r) for r in metric_rows(report)],
        colLabels=["metric", "with the partner", "your features alone", "difference"],
        loc="upper left",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    uplift_panel(report, fig, (0.08, 0.36, 0.86, 0.40))
    settings = setting_rows(report, card)
    evaluation_rows = _evaluation_rows(evaluation)
    lines = [f"{name}: {value if len(value) <= 56 else value[:54] + '…'}" for name, value in settings]
    lines += [f"{label}: training {a}, validation {b}" for label, a, b in evaluation_rows]
    half = (len(lines) + 1) // 2
    for column, chunk in enumerate((lines[:half], lines[half:])):
        fig.text(
            0.06 + 0.46 * column,
            0.31,
            "\n".join(_wrap(line, 60) for line in chunk),
            fontsize=6.5,
            va="top",
            family="monospace",
        )
    return fig


def _wrap(line: str, width: int) -> str:
    words, out, current = line.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\n  ".join(out)
