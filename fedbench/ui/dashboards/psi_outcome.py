"""What one PSI run gave our party, read from its `psi` step's metrics and said in a business user's words.

The PSI dashboard (`psi.py`) shows it; kept apart so the reading and the sentences are small and plain:
`read_outcome(workbench, info)` turns a run's typed record (`Run.record`) into a `PsiOutcome`, `outcome_html` draws it
(sizes, intersection, rates, who received the matched rows), `terms_html` says a project's PSI terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from fedbench.client.records import RunInfo, StepInfo
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.ui.dashboards.common import format_when
from fedbench.ui.dashboards.projects import RELEASE_LABELS

__all__ = ["COMPONENT", "PsiOutcome", "outcome_html", "psi_step", "read_outcome", "terms_html"]

COMPONENT = "psi"


@dataclass(frozen=True)
class PsiOutcome:
    """What our party learned from one PSI run (sizes are None when the run did not succeed)."""

    job_id: str
    state: str
    our_rows: int | None = None
    """Our distinct, usable IDs that took part."""
    our_unusable: int = 0
    """Our rows left out: no usable ID after cleaning, or a repeated ID."""
    partner_rows: int | None = None
    intersection: int | None = None
    rate_ours: float | None = None
    rate_partner: float | None = None
    release: str = ""
    we_received: bool = False
    partner_received: bool = False
    refusal: str | None = None
    min_intersection: int = 0
    error: str | None = None

    @classmethod
    def from_metrics(cls, job_id: str, metrics: dict[str, Any]) -> PsiOutcome:
        """The outcome of a succeeded run from our `psi` step's metrics output."""
        release = str(metrics.get("release", ""))
        peer_role = "partner" if metrics.get("role") == "initiator" else "initiator"
        ids = metrics.get("ids") or {}
        return cls(
            job_id=job_id,
            state="succeeded",
            our_rows=_int(metrics.get("size_self")),
            our_unusable=int(ids.get("empty", 0)) + int(ids.get("duplicates", 0)),
            partner_rows=_int(metrics.get("size_peer")),
            intersection=_int(metrics.get("intersection_size")),
            rate_ours=_float(metrics.get("match_rate_self")),
            rate_partner=_float(metrics.get("match_rate_peer")),
            release=release,
            we_received=metrics.get("rows_received") is not None,
            partner_received=bool(metrics.get("released")) and release in ("both", peer_role),
            refusal=metrics.get("refusal"),
            min_intersection=int(metrics.get("min_intersection") or 0),
        )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def psi_step(info: RunInfo) -> StepInfo | None:
    """The last `psi` step of a run (None when the run has none)."""
    steps = [s for s in info.steps if s.component == COMPONENT]
    return steps[-1] if steps else None


def read_outcome(workbench: Workbench, info: RunInfo) -> PsiOutcome:
    """The outcome of a run: its metrics when it succeeded, else its error.

    Raises the node's error when the metrics of a succeeded run cannot be read.
    """
    job_id = info.job_id
    step = psi_step(info)
    if step is None:
        raise FedbenchError(f"run {job_id[:8]} has no PSI step")
    if info.state != "succeeded":
        return PsiOutcome(job_id, info.state, error=info.error or step.error)
    metrics = workbench.output(f"{step.key}:metrics", "metrics").value()
    return PsiOutcome.from_metrics(job_id, metrics)


def _figure(label: str, value: str, css: str) -> str:
    return (
        f'<div class="fb-figure {css}"><div class="fb-figure-value">{escape(value)}</div>'
        f'<div class="fb-figure-label">{escape(label)}</div></div>'
    )


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def outcome_html(outcome: PsiOutcome, info: RunInfo, *, us: str, partner: str) -> str:
    """A run's result as the dashboard shows it: who started it, the figures, who received the rows."""
    initiator = info.initiator
    who = f"you ({initiator})" if initiator == us else initiator
    started = (
        f"Run <code>{escape(outcome.job_id[:8])}</code>, started by {escape(who)} "
        f"on {escape(format_when(info.created_at))}"
    )
    step = psi_step(info)
    if step is not None and step.state == "reused":
        started += " (the same data and settings as an earlier PSI: its result was reused)"
    if outcome.state != "succeeded":
        words = {"failed": "failed", "cancelled": "was cancelled"}.get(outcome.state, f"is {outcome.state}")
        reason = f": {outcome.error}" if outcome.error else "."
        return (
            f'<div class="fb-help">{started}</div>'
            f'<div class="fb-message fb-psi-failed">This PSI {escape(words)}{escape(reason)}</div>'
        )
    figures = "".join(
        [
            _figure("your IDs", _count(outcome.our_rows), "fb-psi-ours"),
            _figure(f"{partner}'s IDs", _count(outcome.partner_rows), "fb-psi-theirs"),
            _figure("in both (intersection)", _count(outcome.intersection), "fb-psi-intersection"),
            _figure("of your IDs matched", _share(outcome.rate_ours), "fb-psi-rate"),
            _figure(f"of {partner}'s IDs matched", _share(outcome.rate_partner), "fb-psi-rate-partner"),
        ]
    )
    left_out = ""
    if outcome.our_unusable:
        left_out = (
            f'<div class="fb-help fb-psi-left-out">{outcome.our_unusable:,} of your rows were left out: their '
            "ID was empty after cleaning, or repeated. If that is most of them, check “How the IDs are "
            "written” under “How IDs are matched”.</div>"
        )
    return (
        f'<div class="fb-help">{started}</div><div class="fb-figures">{figures}</div>{left_out}'
        f'<div class="fb-psi-release">{escape(release_sentence(outcome, partner))}</div>'
    )


def release_sentence(outcome: PsiOutcome, partner: str) -> str:
    """Who received the matched rows of a succeeded run, in one sentence."""
    if outcome.refusal:
        return (
            "No rows were released to anyone: the project releases matched rows only from "
            f"{outcome.min_intersection:,} matches on."
        )
    if outcome.we_received and outcome.partner_received:
        return f"You and {partner} each received your own matched rows, in the same order."
    if outcome.we_received:
        return f"You received your matched rows; {partner} received only the number of matches."
    if outcome.partner_received:
        return f"{partner} received its matched rows; the project gives you only the number of matches."
    return "Only the number of matches was shared: nobody received rows."


def terms_html(info: dict[str, Any]) -> str:
    """A project's PSI terms in one line: who receives the rows, the minimum, the runs used."""
    terms = info.get("terms", {})
    usage = info.get("usage", {})
    release = RELEASE_LABELS.get(str(terms.get("release", "")), str(terms.get("release", "")))
    return (
        '<div class="fb-help">'
        f"Matched rows go to: <b>{escape(release)}</b> · no rows are released below "
        f"{int(terms.get('min_intersection', 0)):,} matches · "
        f"{int(usage.get('psi_runs', 0)):,} of {int(terms.get('psi_runs', 0)):,} PSI runs used"
        "</div>"
    )
