"""The one-page model report and the dashboard's comparison view, from a comparison of fixed seeded scores:
a self-contained HTML page, a one-page PDF, and a verdict that is a warning when the lift is not measurable."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import numpy as np

from fedbench.ml.uplift import compare_scores
from fedbench.ui.dashboards.modeling_uplift import uplift_html
from fedbench.ui.report import report_html, report_pdf

CARD = {
    "project": "demo",
    "created_by": "guest",
    "job": "0123456789abcdef",
    "rows": 2880,
    "params": {"epochs": 2},
}


def _report(partner_signal: float) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    n = 600
    y = (rng.random(n) < 0.3).astype(int)
    ours = y + rng.normal(scale=1.5, size=n)
    federated = ours + partner_signal * (y + rng.normal(size=n))
    report = compare_scores(y, federated, ours, rng=rng, host_features=3, resamples=200)
    report.update(kind="logistic regression", model_id="abc", guest_features=2, host_features=3)
    return report


def test_the_report_is_one_self_contained_page_in_html_and_pdf() -> None:
    report = _report(partner_signal=1.5)
    page = report_html(report, card=CARD, title="Model report: run 01234567")
    assert report["verdict"]["measurable"] and unescape(report["verdict"]["text"]) in unescape(page)
    assert page.count('src="data:image/png;base64,') == 4, "ROC, KS, lift and gain, inside the page"
    assert not re.search(r"(src|href)=\"(?!data:)", page), "nothing is fetched from elsewhere"
    assert "<td>param epochs</td><td>2</td>" in page and "<td>Trained by</td><td>guest</td>" in page
    pdf = report_pdf(report, card=CARD)
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1, "one page"


def test_no_measurable_lift_shows_as_a_warning_in_the_dashboard() -> None:
    html = uplift_html(_report(partner_signal=0.0), job_id="0123456789abcdef", card=CARD)
    verdict = re.search(r'<div class="([^"]*) fb-modeling-uplift-verdict"><b>(.*?)</b>', html)
    assert verdict is not None and "fb-warning" in verdict.group(1)
    assert unescape(verdict.group(2)).startswith("⚠ The partner's data adds no measurable lift")
    assert 'download="model-report-01234567.html"' in html and 'download="model-report-01234567.pdf"' in html
    assert html.count('class="fb-plot fb-chart-uplift-') == 4
