"""The projects dashboard: propose a project to a partner, answer proposals, follow and revoke projects.

`app()` builds the page as one widget (`notebooks/dashboards/projects.ipynb` only displays it). Each action
is a plain method, tested in-process and driven by its button: `propose()`, `accept(name)`, `reject(name)`,
`select(name)` (terms, usage, datasets and audit trail of one project), `revoke(name)`, and the amendments
that add datasets to an active project: `amend(name, datasets)`, `accept_amendment(name)`,
`reject_amendment(name)` (a partner's amendment waits for our answer beside the proposals).
"""

from __future__ import annotations

import contextlib
from html import escape
from typing import Any

import ipywidgets as widgets
import pandas as pd
import traitlets

from fedbench.client.projects import Project
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.node.terms import USE_LABELS, ProjectTerms, terms_in_words
from fedbench.node.terms import caveats as caveats_of
from fedbench.psi import release as release_policy
from fedbench.ui.dashboards.common import (
    DashboardApp,
    Notice,
    card,
    connect_from_env,
    format_when,
    table_html,
    unavailable_page,
)
from fedbench.ui.errors import FormError
from fedbench.ui.fields import ChoiceSet, ModelFields
from fedbench.ui.style import row

__all__ = ["ProjectsApp", "app", "describe_caveats", "describe_terms"]

RELEASE_LABELS = release_policy.LABELS
_ACTIONS = {
    "project.propose": "proposed the project",
    "project.proposed": "received the proposal",
    "project.accept": "accepted",
    "project.accepted": "partner accepted",
    "project.reject": "declined",
    "project.rejected": "partner declined",
    "project.active": "made active",
    "project.suspended": "suspended",
    "project.revoked": "revoked",
    "project.add_member": "gave a user access",
    "project.amend": "proposed adding datasets",
    "project.amend_received": "partner proposed adding datasets",
    "project.amend_accept": "accepted the added datasets",
    "project.amend_accepted": "added datasets accepted",
    "project.amend_reject": "declined the added datasets",
    "project.amend_rejected": "added datasets declined",
    "project.amend_withdraw": "withdrew the added datasets",
    "project.amend_withdrawn": "partner withdrew the added datasets",
    "job.psi": "started a PSI job",
    "job.train": "started a training job",
    "job.score": "started a scoring job",
    "federation.call": "refused a request",
}


def describe_terms(terms: dict[str, Any]) -> str:
    """A project's terms as a short HTML list in plain words (`node.terms.terms_in_words`)."""
    items = "".join(f"<li>{escape(item)}</li>" for item in terms_in_words(terms))
    return f'<ul class="fb-terms">{items}</ul>'


def describe_caveats(info: dict[str, Any]) -> str:
    """What the terms do not stop (a partner running modified code, the protocols' own limits), in plain words."""
    caveats = info.get("caveats") or caveats_of(ProjectTerms.model_validate(info.get("terms") or {}))
    if not caveats:
        return ""
    items = "".join(f"<li>{escape(str(c))}</li>" for c in caveats)
    return f"<div class='fb-label'>What these terms do not stop:</div><ul class='fb-terms fb-caveats'>{items}</ul>"


def _datasets_html(info: dict[str, Any], us: str) -> str:
    parts = []
    for party, items in info.get("datasets", {}).items():
        names = ", ".join(f"{d['name']} ({int(d.get('n_rows', 0)):,} rows)" for d in items) or "none yet"
        who = f"you ({party})" if party == us else party
        parts.append(f"<li><b>{escape(who)}</b>: {escape(names)}</li>")
    return "<ul class='fb-terms'>" + "".join(parts) + "</ul>"


def _badge(state: str) -> str:
    return f'<span class="fb-state fb-state-{escape(state)}">{escape(state)}</span>'


def describe_amendment(amendment: dict[str, Any], us: str) -> str:
    """An amendment in plain words: who proposes to add which datasets, the PSI cap it sets, who must answer."""
    who = "You" if amendment["proposed_by"] == us else str(amendment["proposed_by"])
    added = ", ".join(
        f"{d['name']} ({int(d.get('n_rows', 0)):,} rows)" for d in amendment.get("datasets", [])
    )
    waiting = [("you" if p == us else p) for p in amendment.get("waiting_for", [])]
    state = str(amendment.get("state"))
    if state == "pending":
        status = f"Waiting for {escape(', '.join(waiting))} to accept; until then the project runs as before."
    else:
        by = amendment.get("state_by") or ""
        reason = amendment.get("reason") or ""
        status = f"{escape(state.capitalize())}" + (f" by {escape('you' if by == us else by)}" if by else "")
        status += f": {escape(reason)}" if reason else "."
    return (
        f"<div class='fb-amendment'><div>{escape(who)} proposed on "
        f"{escape(format_when(amendment.get('created_at')))} to add: <b>{escape(added)}</b></div>"
        f"<div>Largest ID set of {escape(str(amendment['proposed_by']))} in a PSI: "
        f"{int(amendment.get('max_psi_rows', 0)):,} rows</div><div>{status}</div></div>"
    )


class _AmendmentAnswer:
    """A partner's amendment waiting for our answer: what it adds, accept / decline."""

    def __init__(self, project: Project, party: str, app: ProjectsApp) -> None:
        self.name = project.name
        amendment = project.amendment or {}
        self.accept_button = widgets.Button(description="Accept", button_style="success", icon="check")
        self.accept_button.add_class("fb-amendment-accept")
        self.accept_button.on_click(lambda _b: app._quietly(app.accept_amendment, self.name))
        self.reject_button = widgets.Button(description="Decline", icon="times")
        self.reject_button.add_class("fb-amendment-reject")
        self.reject_button.on_click(lambda _b: app._quietly(app.reject_amendment, self.name))
        self.message = Notice("")
        self.message.add_class("fb-notice")
        summary = widgets.HTML(
            f"<div><b>{escape(self.name)}</b> {_badge(project.state)}: "
            f"{escape(str(amendment.get('proposed_by')))} asks to add datasets to this project</div>"
            f"{describe_amendment(amendment, party)}"
            f"<div class='fb-help'>Accepting lets jobs of this project read these datasets too, their content "
            f"pinned as it is now; the project's other terms stay as agreed.</div>"
        )
        self.box = widgets.VBox(
            [summary, row([self.accept_button, self.reject_button]), self.message],
            layout=widgets.Layout(border="1px solid #eaeef2", padding="6px 12px", margin="6px 0"),
        )
        self.box.add_class("fb-amendment-pending")
        self.box.add_class(f"fb-amendment-pending-{self.name}")


class _Proposal:
    """One proposal waiting for our answer: what it asks, the datasets we authorise, accept / decline."""

    def __init__(self, project: Project, party: str, own: list[str], app: ProjectsApp) -> None:
        info = project.info
        self.name = project.name
        self.datasets = ChoiceSet([(n, n) for n in own])
        self.datasets.add_class("fb-pending-datasets")
        self.max_rows = widgets.Text(placeholder="empty: the size of your largest chosen dataset")
        self.max_rows.add_class("fb-pending-max-rows")
        self.accept_button = widgets.Button(description="Accept", button_style="success", icon="check")
        self.accept_button.add_class("fb-pending-accept")
        self.accept_button.on_click(lambda _b: app._quietly(app.accept, self.name))
        self.reject_button = widgets.Button(description="Decline", icon="times")
        self.reject_button.add_class("fb-pending-reject")
        self.reject_button.on_click(lambda _b: app._quietly(app.reject, self.name))
        self.message = Notice("")
        self.message.add_class("fb-notice")
        ask = info.get("asks", {}).get(party) or "nothing in particular"
        summary = widgets.HTML(
            f"<div><b>{escape(self.name)}</b> {_badge(info['state'])} proposed by <b>{escape(info['initiator'])}</b>"
            f" on {escape(format_when(info.get('created_at')))}</div>"
            f"<div>{escape(info.get('purpose') or '')}</div>"
            f"<div><span class='fb-label'>They ask you for:</span> {escape(ask)}</div>"
            f"<div class='fb-label'>They bring:</div>{_datasets_html(info, party)}"
            f"<div class='fb-label'>Terms:</div>{describe_terms(info.get('terms', {}))}"
            f"{describe_caveats(info)}"
        )
        self.box = widgets.VBox(
            [
                summary,
                widgets.HTML('<span class="fb-label">Your datasets for this project</span>'),
                self.datasets,
                widgets.HTML('<span class="fb-label">Largest ID set you bring to a PSI</span>'),
                self.max_rows,
                row([self.accept_button, self.reject_button]),
                self.message,
            ],
            layout=widgets.Layout(border="1px solid #eaeef2", padding="6px 12px", margin="6px 0"),
        )
        self.box.add_class("fb-pending")
        self.box.add_class(f"fb-pending-{self.name}")


class ProjectsApp(DashboardApp):
    """The projects dashboard of one party."""

    selected = traitlets.Unicode("", help="the project whose details are shown")

    def __init__(self, workbench: Workbench) -> None:
        super().__init__()
        self.workbench = workbench
        self.party = workbench.party
        self.proposals: dict[str, _Proposal] = {}
        self.amendments: dict[str, _AmendmentAnswer] = {}
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("fb-refresh")
        self.refresh_button.on_click(lambda _b: self._quietly(self.refresh))
        self.pending_box = widgets.VBox([])
        self.pending_box.add_class("fb-pending-list")

        self.projects = widgets.HTML("")
        self.projects.add_class("fb-projects-list")
        self.pick = widgets.Dropdown(
            options=[], description="Details of", layout=widgets.Layout(width="360px")
        )
        self.pick.add_class("fb-project-select")
        self.pick.observe(self._picked, "value")
        self.details = widgets.HTML("")
        self.details.add_class("fb-project-details")
        self.revoke_button = widgets.Button(description="Revoke project…", button_style="danger", icon="ban")
        self.revoke_button.add_class("fb-project-revoke")
        self.revoke_button.on_click(lambda _b: self._ask_revoke())
        self.revoke_reason = widgets.Text(placeholder="why (recorded in the audit trail)")
        self.revoke_reason.add_class("fb-project-revoke-reason")
        confirm = widgets.Button(description="Yes, revoke for every party", button_style="danger")
        confirm.add_class("fb-project-revoke-confirm")
        confirm.on_click(lambda _b: self._quietly(self.revoke, self.selected, self.revoke_reason.value))
        keep = widgets.Button(description="Keep it")
        keep.add_class("fb-project-revoke-cancel")
        keep.on_click(lambda _b: self._hide_revoke())
        self.revoke_confirm = widgets.VBox(
            [
                widgets.HTML(
                    "<b>Revoking ends the project for good, on every party, and cancels its running jobs.</b>"
                ),
                self.revoke_reason,
                row([confirm, keep]),
            ]
        )
        self.revoke_confirm.layout.display = "none"
        self.project_message = Notice("")
        self.project_message.add_class("fb-notice")
        self.audit = widgets.HTML("")
        self.audit.add_class("fb-project-audit")
        audit_box = widgets.VBox(
            [widgets.HTML('<div class="fb-label">Audit trail (latest first)</div>'), self.audit]
        )
        self.amend_datasets = ChoiceSet([])
        self.amend_datasets.add_class("fb-amend-datasets")
        self.amend_button = widgets.Button(description="Propose adding them", icon="plus")
        self.amend_button.add_class("fb-amend-button")
        self.amend_button.on_click(lambda _b: self._quietly(self.amend, self.selected))
        self.withdraw_button = widgets.Button(description="Withdraw the amendment", icon="undo")
        self.withdraw_button.add_class("fb-amend-withdraw")
        self.withdraw_button.on_click(lambda _b: self._quietly(self.reject_amendment, self.selected))
        self.amendment = widgets.HTML("")
        self.amendment.add_class("fb-project-amendment")
        self.amend_box = widgets.VBox(
            [
                widgets.HTML(
                    '<div class="fb-label">Add your datasets to this project</div><div class="fb-help">The '
                    "partner accepts again; until then the project runs on its current datasets.</div>"
                ),
                self.amend_datasets,
                self.amend_button,
            ]
        )
        self.amend_box.add_class("fb-amend-box")
        self.actions = widgets.VBox(
            [
                self.amendment,
                self.withdraw_button,
                self.amend_box,
                self.revoke_button,
                self.revoke_confirm,
                self.project_message,
            ]
        )

        self._build_propose()
        self.frame(
            workbench,
            "Projects",
            "A project lets partners run agreed jobs on their data together. Propose one, answer "
            "proposals, and see what happened in each.",
            "projects",
            [
                card(
                    "Proposals waiting for your answer",
                    [self.pending_box],
                    "fb-pending-card",
                    "Accepting authorises the datasets you choose for this project only; "
                    "their content is pinned, so a changed file needs a new authorisation. A partner that adds "
                    "datasets to a project asks here too.",
                ),
                card(
                    "Your projects",
                    [self.projects, self.pick, self.details, self.actions, audit_box],
                    "fb-projects-card",
                ),
                card(
                    "Propose a project",
                    [self.propose_box],
                    "fb-propose-card",
                    "Your partner sees this proposal in their dashboard and chooses their datasets.",
                ),
            ],
            tools=[self.refresh_button],
        )
        self.refresh()

    def _build_propose(self) -> None:
        self.propose_name = widgets.Text(
            placeholder="for example churn-2024", layout=widgets.Layout(width="320px")
        )
        self.propose_name.add_class("fb-propose-name")
        peers = self.workbench.peer_names()
        self.propose_partner = widgets.Dropdown(options=peers, value=peers[0] if peers else None)
        self.propose_partner.add_class("fb-propose-partner")
        own = [d.name for d in self.workbench.datasets.list()]
        self.propose_datasets = ChoiceSet([(n, n) for n in own])
        self.propose_datasets.add_class("fb-propose-datasets")
        self.propose_purpose = widgets.Textarea(
            placeholder="what the project is for, in a sentence or two", layout=widgets.Layout(width="520px")
        )
        self.propose_purpose.add_class("fb-propose-purpose")
        self.propose_ask = widgets.Text(
            placeholder="for example: your transaction features for the same customers",
            layout=widgets.Layout(width="520px"),
        )
        self.propose_ask.add_class("fb-propose-ask")
        self.terms = ModelFields(
            ProjectTerms,
            prefix="fb-term",
            show_names=False,
            exclude=("max_psi_rows",),
            labels={
                "uses": "Allowed uses",
                "jobs_per_day": "Jobs per day",
                "psi_runs": "PSI runs in all",
                "min_intersection": "Smallest intersection released",
                "release": "Who receives the matched IDs",
            },
            choice_labels={"uses": USE_LABELS, "release": RELEASE_LABELS},
        )
        self.propose_button = widgets.Button(
            description="Send proposal", button_style="primary", icon="paper-plane"
        )
        self.propose_button.add_class("fb-propose-button")
        self.propose_button.on_click(lambda _b: self._quietly(self.propose))
        self.propose_message = Notice("")
        self.propose_message.add_class("fb-notice")
        self._propose_messages = {k: Notice("") for k in ("name", "partner", "datasets")}

        def labelled(text: str, widget: widgets.Widget, key: str | None = None) -> widgets.VBox:
            parts = [widgets.HTML(f'<span class="fb-label">{escape(text)}</span>'), widget]
            if key is not None:
                self._propose_messages[key].add_class("fb-field-message")
                parts.append(self._propose_messages[key])
            return widgets.VBox(parts, layout=widgets.Layout(margin="0 0 10px 0"))

        self._propose_datasets_box = labelled(
            "Your datasets for this project", self.propose_datasets, "datasets"
        )
        self.propose_box = widgets.VBox(
            [
                row(
                    [
                        labelled("Project name", self.propose_name, "name"),
                        labelled("Partner", self.propose_partner, "partner"),
                    ],
                    top=True,
                ),
                self._propose_datasets_box,
                labelled("Purpose", self.propose_purpose),
                labelled("What you ask the partner to bring", self.propose_ask),
                widgets.HTML('<div class="fb-section">Terms</div>'),
                self.terms.widget,
                self.propose_button,
                self.propose_message,
            ]
        )

    # ----- actions ----------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload proposals, projects and the datasets one may offer from our node."""
        own = [d.name for d in self.workbench.datasets.list()]
        if own != self.propose_datasets.choices:
            ticked = [v for v in self.propose_datasets.value if v in own]
            self.propose_datasets = ChoiceSet([(n, n) for n in own], value=ticked)
            self.propose_datasets.add_class("fb-propose-datasets")
            parts = list(self._propose_datasets_box.children)
            parts[1] = self.propose_datasets
            self._propose_datasets_box.children = tuple(parts)
        pending = self.workbench.projects.pending()
        self.proposals = {p.name: _Proposal(p, self.party, own, self) for p in pending}
        listed = self.workbench.projects.list()
        self.amendments = {
            p.name: _AmendmentAnswer(p, self.party, self)
            for p in listed
            if p.amendment
            and p.amendment.get("state") == "pending"
            and self.party in p.amendment.get("waiting_for", [])
        }
        answers = [*(p.box for p in self.proposals.values()), *(a.box for a in self.amendments.values())]
        if answers:
            self.pending_box.children = tuple(answers)
        else:
            self.pending_box.children = (
                widgets.HTML('<div class="fb-muted">No proposals are waiting for you.</div>'),
            )
        projects = [p for p in listed if p.state != "pending"]
        rows = "".join(
            "<tr>"
            f"<td><b>{escape(p.name)}</b></td><td>{_badge(p.state)}</td>"
            f"<td>{escape(', '.join(m for m in p.info['members'] if m != self.party))}</td>"
            f"<td>{escape(self._who(p.info['initiator']))}</td>"
            f"<td>{escape(', '.join(d['name'] for d in p.info['datasets'].get(self.party, [])))}</td>"
            f"<td>{escape(p.info.get('purpose') or '')}</td>"
            f"<td>{escape(format_when(p.info.get('created_at')))}</td>"
            "</tr>"
            for p in projects
        )
        head = "".join(
            f"<th>{h}</th>"
            for h in ("project", "state", "partners", "proposed by", "your datasets", "purpose", "created")
        )
        self.projects.value = (
            f'<table class="fb-table"><tr>{head}</tr>{rows}</table>'
            if projects
            else '<div class="fb-muted">No projects yet: propose one below, or accept a proposal.</div>'
        )
        names = [p.name for p in projects]
        current = self.selected if self.selected in names else (names[-1] if names else "")
        self.pick.options = names
        self.pick.value = current or None
        if current:
            self.select(current)
        else:
            self.details.value = ""
            self.actions.layout.display = "none"

    def select(self, name: str) -> Project:
        """Show one project: its state, terms, usage, datasets and audit trail."""
        project = self.workbench.projects.get(name)
        self.selected = name
        info = project.info
        usage = info.get("usage", {})
        terms = info.get("terms", {})
        by = f" (by {escape(info['state_by'])}{': ' + escape(info['reason']) if info.get('reason') else ''})"
        self.details.value = (
            f"<div class='fb-section'>{escape(name)} {_badge(project.state)}"
            f"<span class='fb-help'>{by if info.get('state_by') and project.state != 'active' else ''}</span></div>"
            f"<div>{escape(info.get('purpose') or '')}</div>"
            f"<div class='fb-label'>Datasets</div>{_datasets_html(info, self.party)}"
            f"<div class='fb-label'>Terms</div>{describe_terms(terms)}{describe_caveats(info)}"
            f"<div class='fb-label'>Used so far</div><ul class='fb-terms'>"
            f"<li>{int(usage.get('jobs_today', 0)):,} of {int(terms.get('jobs_per_day', 0)):,} jobs today</li>"
            f"<li>{int(usage.get('psi_runs', 0)):,} of {int(terms.get('psi_runs', 0)):,} PSI runs</li>"
            f"<li>{int(usage.get('jobs', 0)):,} jobs in all</li></ul>"
        )
        self.actions.layout.display = None
        self.revoke_button.layout.display = (
            None if project.state in ("active", "suspended", "proposed") else "none"
        )
        amendment = project.amendment
        pending = bool(amendment and amendment.get("state") == "pending")
        self.amendment.value = (
            "<div class='fb-label'>Amendment</div>" + describe_amendment(amendment, self.party)
            if amendment
            else ""
        )
        self.withdraw_button.layout.display = (
            None if pending and amendment and amendment["proposed_by"] == self.party else "none"
        )
        pinned = {d["name"] for d in info.get("datasets", {}).get(self.party, [])}
        addable = [d.name for d in self.workbench.datasets.list() if d.name not in pinned]
        if addable != self.amend_datasets.choices:
            self.amend_datasets = ChoiceSet([(n, n) for n in addable])
            self.amend_datasets.add_class("fb-amend-datasets")
            parts = list(self.amend_box.children)
            parts[1] = self.amend_datasets
            self.amend_box.children = tuple(parts)
        self.amend_box.layout.display = (
            None if project.state == "active" and not pending and addable else "none"
        )
        self._hide_revoke()
        self.audit.value = self._audit_html(project)
        return project

    def _audit_html(self, project: Project) -> str:
        try:
            events = project.audit()
        except FedbenchError as exc:
            return f'<div class="fb-message">{escape(str(exc))}</div>'
        if events.empty:
            return '<div class="fb-muted">Nothing recorded yet.</div>'
        events = events.sort_values("id", ascending=False).head(100)
        parties = set(project.info["members"])  # any other actor is a user of our node
        frame = pd.DataFrame(
            {
                "when": events["ts"].map(lambda t: format_when(t, seconds=True)),
                "who": events["actor"].map(lambda a: a if a in parties else f"{a} (you)"),
                "with": events["peer"].fillna(""),
                "what": events["action"].map(lambda a: _ACTIONS.get(a, a)),
                "datasets": events["datasets"],
                "allowed": events["allowed"].map(lambda ok: "yes" if ok else "refused"),
                "reason": events["reason"].fillna(""),
            }
        )
        return table_html(frame)

    def propose(self) -> Project:
        """Send the proposal filled in below; problems are shown at their fields and raised."""
        self.propose_message.clear()
        problems: dict[str, str] = {}
        name = self.propose_name.value.strip()
        if not name:
            problems["name"] = "Give the project a name."
        elif name in {p.name for p in self.workbench.projects.list()}:
            problems["name"] = f"A project named {name!r} exists already: choose another name."
        if not self.propose_partner.value:
            problems["partner"] = "No partner is configured for this node."
        if not self.propose_datasets.value:
            problems["datasets"] = "Choose at least one of your datasets."
        for key, notice in self._propose_messages.items():
            if key in problems:
                notice.problem(problems[key])
            else:
                notice.clear()
        try:
            terms = self.terms.validate()
        except FormError as exc:
            problems.update(exc.fields)
        if problems:
            self.propose_message.problem("Please fix the highlighted fields.")
            raise FormError("Some values need fixing", problems)
        partner = str(self.propose_partner.value)
        ask = self.propose_ask.value.strip()
        try:
            project = self.workbench.projects.propose(
                name,
                partners=[partner],
                datasets=list(self.propose_datasets.value),
                purpose=self.propose_purpose.value.strip(),
                asks={partner: ask} if ask else {},
                **terms.model_dump(exclude={"max_psi_rows"}),
            )
        except FedbenchError as exc:
            self.propose_message.problem(f"The proposal was not sent: {exc}")
            raise
        self.propose_name.value = self.propose_purpose.value = self.propose_ask.value = ""
        self.propose_datasets.value = ()
        self.selected = project.name
        self.refresh()
        self.propose_message.ok(f"Proposal {name} sent to {partner}; it becomes active once they accept it.")
        return project

    def accept(self, name: str, datasets: list[str] | None = None) -> Project:
        """Accept a proposal with `datasets` (default: those ticked in its card)."""
        proposal = self.proposals.get(name)
        if proposal is None:
            raise FormError(f"No proposal named {name!r} is waiting for you", {"name": "Refresh the page."})
        chosen = list(datasets if datasets is not None else proposal.datasets.value)
        if datasets is not None:
            proposal.datasets.value = tuple(chosen)
        if not chosen:
            proposal.message.problem("Choose at least one of your datasets to authorise for this project.")
            raise FormError("Choose the datasets to authorise", {"datasets": "Choose at least one dataset."})
        text = proposal.max_rows.value.strip().replace(",", "")
        max_rows: int | None = None
        if text:
            if not text.isdigit():
                proposal.message.problem("The largest ID set must be a whole number (or empty).")
                raise FormError("Some values need fixing", {"max_psi_rows": "Must be a whole number."})
            max_rows = int(text)
        try:
            project = self.workbench.projects.accept(name, datasets=chosen, max_psi_rows=max_rows)
        except FedbenchError as exc:
            proposal.message.problem(f"Could not accept: {exc}")
            raise
        self.selected = name
        self.refresh()
        self.project_message.ok(f"You accepted {name}: it is {project.state} now.")
        return project

    def reject(self, name: str, reason: str = "") -> Project:
        """Decline a proposal."""
        proposal = self.proposals.get(name)
        try:
            project = self.workbench.projects.reject(name, reason)
        except FedbenchError as exc:
            if proposal is not None:
                proposal.message.problem(f"Could not decline: {exc}")
            raise
        self.refresh()
        return project

    def amend(self, name: str, datasets: list[str] | None = None) -> Project:
        """Propose adding our `datasets` (default: those ticked) to project `name`; the partner accepts again."""
        chosen = list(datasets if datasets is not None else self.amend_datasets.value)
        if not chosen:
            self.project_message.problem("Choose at least one of your datasets to add to this project.")
            raise FormError("Choose the datasets to add", {"datasets": "Choose at least one dataset."})
        try:
            project = self.workbench.projects.get(name).amend(add_datasets=chosen)
        except FedbenchError as exc:
            self.project_message.problem(f"The datasets were not added: {exc}")
            raise
        self.selected = name
        self.refresh()
        waiting = ", ".join((project.amendment or {}).get("waiting_for", [])) or "the partner"
        self.project_message.ok(
            f"You proposed adding {', '.join(chosen)} to {name}; they can be used once {waiting} accepts."
        )
        return project

    def accept_amendment(self, name: str) -> Project:
        """Accept a partner's amendment of project `name` (the datasets it adds, as they reached our node)."""
        answer = self.amendments.get(name)
        try:
            project = self.workbench.projects.get(name).accept_amendment()
        except FedbenchError as exc:
            (answer.message if answer is not None else self.project_message).problem(
                f"Could not accept: {exc}"
            )
            raise
        self.selected = name
        self.refresh()
        added = ", ".join(d["name"] for d in (project.amendment or {}).get("datasets", []))
        state = (project.amendment or {}).get("state")
        self.project_message.ok(
            f"You accepted adding {added} to {name}: "
            + ("jobs can use them now." if state == "accepted" else "they apply once every partner accepts.")
        )
        return project

    def reject_amendment(self, name: str, reason: str = "") -> Project:
        """Decline a partner's amendment of project `name`, or withdraw ours; the project keeps its datasets."""
        answer = self.amendments.get(name)
        try:
            project = self.workbench.projects.get(name).reject_amendment(reason)
        except FedbenchError as exc:
            (answer.message if answer is not None else self.project_message).problem(
                f"Could not decline: {exc}"
            )
            raise
        self.selected = name
        self.refresh()
        self.project_message.ok(f"The amendment of {name} is {(project.amendment or {}).get('state')}.")
        return project

    def revoke(self, name: str, reason: str = "") -> Project:
        """End a project for good on every party (its running jobs are cancelled)."""
        try:
            project = self.workbench.projects.get(name).revoke(reason)
        except FedbenchError as exc:
            self.project_message.problem(f"Could not revoke {name}: {exc}")
            raise
        self.selected = name
        self.refresh()
        self.project_message.ok(f"{name} is revoked: no job of it can run any more, on any party.")
        return project

    def _who(self, party: str) -> str:
        return f"you ({party})" if party == self.party else party

    def _picked(self, change: Any) -> None:
        if change["new"] and change["new"] != self.selected:
            self.project_message.clear()
            self._quietly(self.select, change["new"])

    def _ask_revoke(self) -> None:
        self.revoke_confirm.layout.display = None
        self.revoke_button.layout.display = "none"

    def _hide_revoke(self) -> None:
        self.revoke_confirm.layout.display = "none"
        self.revoke_reason.value = ""

    def _quietly(self, action: Any, *args: Any) -> None:
        """Run an action from a button: its problems are already shown in the page."""
        with contextlib.suppress(FedbenchError):
            action(*args)


def app(workbench: Workbench | None = None) -> ProjectsApp | widgets.VBox:
    """The projects dashboard, on `workbench` or on the node the environment names.

    When the node cannot be reached, a page saying so (and what to do) instead of a traceback.
    """
    try:
        return ProjectsApp(workbench or connect_from_env())
    except FedbenchError as exc:
        return unavailable_page("Projects", exc, retry=app)
