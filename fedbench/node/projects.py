"""Projects: the lifecycle negotiated between nodes, and the checks every project request passes first.

Both sides of every exchange live here, side by side: `propose` (our side) and `_on_propose` (the partner's),
`accept` and `_on_accept`, and so on. When the last member accepts, the initiator tells the others the final
datasets and declared PSI sizes (`_activated`, `_on_activated`), so that with three or more members (e.g. an
arbiter that brings no data) every member knows every other's pinned datasets, whatever the order of accepts.
Each incoming request is checked by `_admit` before its handler runs: token, membership, state, use, datasets
and quotas; a refusal is audited on the receiving node and travels back to the sender as a `Refused` error
(audited there too). Adding datasets to an active project (an amendment every member accepts again) is in
`amendments.py`, served through the same `handle`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import col, func, select

from fedbench.errors import ConfigError, FedbenchError, NotFound, Refused
from fedbench.node.amendments import Amendments
from fedbench.node.audit import AuditLog
from fedbench.node.terms import USES, ProjectTerms, caveats
from fedbench.node.users import Caller
from fedbench.store import Database, DatasetRegistry, Job, Project
from fedbench.store.models import utcnow

__all__ = ["PeerRequest", "ProjectService", "project_token_hash", "psi_domain_key"]

log = logging.getLogger("fedbench.projects")

PeerRequest = Callable[[str, str, str | None, str | None, dict[str, Any]], Any]
"""How the service reaches a peer node: (party, action, project id, token, body) -> answer."""

_OPEN_STATES_FOR = {"project.accept": {"proposed"}, "project.reject": {"proposed"}}
_NEEDS_SPEC = (
    "a job that reads data or runs a PSI is admitted only with its pipeline spec, from which every member "
    "recomputes what it touches: run it with project.run(...) or project.run_pipeline(...)"
)


def project_token_hash(project_id: str, token: str) -> str:
    """The stored form of a project token, bound to the project id."""
    return hashlib.sha256(f"fedbench-project-token\x00{project_id}\x00{token}".encode()).hexdigest()


def psi_domain_key(project_id: str, token: str) -> bytes:
    """The per-project key IDs are hashed with in PSI, so results of two projects cannot be joined."""
    return hmac.new(token.encode(), f"fedbench-psi\x00{project_id}".encode(), hashlib.sha256).digest()


class ProjectService:
    """The projects of one node, its side of their negotiation, and the admission of project requests."""

    def __init__(
        self,
        party: str,
        db: Database,
        datasets: DatasetRegistry,
        audit: AuditLog,
        secrets_dir: Path,
        request: PeerRequest,
    ) -> None:
        self.party = party
        self._db = db
        self._datasets = datasets
        self._audit = audit
        self._secrets = secrets_dir
        self._request = request
        self._handlers: dict[str, Callable[[str, Project | None, dict[str, Any]], Any]] = {
            "project.propose": self._on_propose,
            "project.accept": self._on_accept,
            "project.reject": self._on_reject,
            "project.state": self._on_state,
            "project.activated": self._on_activated,
            "job.submit": self._on_job_submit,
        }
        self.on_stop: Callable[[str, str], None] | None = None
        """Set by the job service: cancels the running jobs of a project that was suspended or revoked."""
        self.plan_job: Callable[[str, Project, Any], dict[str, Any]] | None = None
        """Set by the job service: validates a job's spec and recomputes the job from it (uses, datasets, sizes)."""
        self.on_job: Callable[[str, Project, dict[str, Any]], dict[str, Any]] | None = None
        """Set by the job service: records an admitted job (as recomputed) and answers which steps it can reuse."""
        self.held_steps: Callable[[dict[str, Any]], set[str]] | None = None
        """Set by the job service: the step keys of a job whose outputs this node holds already (its own records)."""
        self._quota_lock = threading.Lock()
        self.amendments = Amendments(self)
        """Adding datasets to an active project: proposed by one member, accepted again by every other."""

    @property
    def db(self) -> Database:
        """The node's metadata database (for the amendments kept beside the projects)."""
        return self._db

    @property
    def audit(self) -> AuditLog:
        """The node's audit log."""
        return self._audit

    def request(self, party: str, action: str, project_id: str | None, token: str | None, body: Any) -> Any:
        """Send one project request to a peer node; its answer."""
        return self._request(party, action, project_id, token, body)

    def pin(self, caller: Caller, names: list[str]) -> list[dict[str, Any]]:
        """Our datasets `names` as pinned in a project (name, fingerprint, rows), if the caller may use them."""
        return self._pin(caller, names)

    # ----- our side -------------------------------------------------------------------------------------

    def propose(
        self,
        caller: Caller,
        *,
        name: str,
        partners: list[str],
        datasets: list[str],
        purpose: str = "",
        asks: dict[str, str] | None = None,
        terms: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Propose a project to `partners`, offering our `datasets`; it is active once they all accept."""
        caller.require("analyst", "propose projects")
        if not partners or self.party in partners or len(set(partners)) != len(partners):
            raise ConfigError(f"name one or more distinct partners other than {self.party!r}, got {partners}")
        if self._find(name) is not None:
            raise ConfigError(f"a project named {name!r} exists already on this node; choose another name")
        checked = self._terms(terms or {})
        pinned = self._pin(caller, datasets)
        checked.max_psi_rows.setdefault(self.party, max((d["n_rows"] for d in pinned), default=0))
        project_id, token = uuid.uuid4().hex, secrets.token_hex(32)
        project = Project(
            id=project_id,
            name=name,
            purpose=purpose,
            initiator=self.party,
            members=[self.party, *partners],
            accepted_by=[self.party],
            asks=dict(asks or {}),
            datasets={self.party: pinned},
            terms=checked.model_dump(),
            local_members=[caller.name],
            token_hash=project_token_hash(project_id, token),
            state="proposed",
            state_by=self.party,
        )
        offer = {k: v for k, v in _public(project).items() if k != "state"}
        for partner in partners:
            self._request(partner, "project.propose", None, None, {**offer, "token": token})
        self._save_token(project_id, token)
        with self._db.session() as session:
            session.add(project)
        self._audit.record(
            actor=caller.name,
            action="project.propose",
            allowed=True,
            project=project_id,
            datasets=datasets,
            reason=f"to {', '.join(partners)}",
        )
        return self.describe(caller, name)

    def accept(
        self, caller: Caller, name: str, *, datasets: list[str], max_psi_rows: int | None = None
    ) -> dict[str, Any]:
        """Accept a pending proposal, authorising our `datasets` (their fingerprints are pinned)."""
        caller.require("analyst", "accept projects")
        project = self._get(caller, name, pending_ok=True)
        if project.state != "pending":
            raise ConfigError(f"project {name!r} is {project.state}, not pending: nothing to accept")
        reviewed = ProjectTerms.model_validate(project.terms)
        pinned = self._pin(caller, datasets)
        cap = reviewed.max_psi_rows.get(self.party)
        largest = max((d["n_rows"] for d in pinned), default=0)
        rows = max_psi_rows if max_psi_rows is not None else min(largest, cap if cap is not None else largest)
        if cap is not None and rows > cap:
            raise ConfigError(
                f"project {name!r} allows {self.party!r} a PSI input of at most {cap:,} rows; "
                f"declare {cap:,} or less (max_psi_rows), or reject the proposal"
            )
        expected = reviewed.model_copy(deep=True)
        expected.max_psi_rows[self.party] = rows
        body = {"datasets": pinned, "max_psi_rows": rows}
        answer = self._request(project.initiator, "project.accept", project.id, self._token(project.id), body)
        try:
            final = self._checked_answer(project, expected, answer)
        except Refused as exc:
            raise self.refused_here(caller, project, "project.accept", str(exc), datasets) from None
        with self._db.session() as session:
            stored = session.get(Project, project.id)
            assert stored is not None
            stored.datasets = {**final["datasets"], self.party: pinned}
            stored.terms = final["terms"]
            stored.accepted_by = final["accepted_by"]
            stored.state = "active"
            stored.local_members = sorted({*stored.local_members, caller.name})
            stored.updated_at = utcnow()
            session.add(stored)
        self._audit.record(
            actor=caller.name,
            action="project.accept",
            allowed=True,
            project=project.id,
            datasets=datasets,
            peer=project.initiator,
        )
        return self.describe(caller, name)

    def _checked_answer(self, project: Project, expected: ProjectTerms, answer: Any) -> dict[str, Any]:
        """The initiator's answer to our accept, kept only where it agrees with what our user reviewed.

        Terms must be exactly the proposal's (with the PSI size we declared); the initiator's datasets must
        be those it proposed; what we did not know yet (members that accepted before us) is filled in.
        """
        initiator = project.initiator
        if not isinstance(answer, dict) or not isinstance(answer.get("datasets"), dict):
            raise Refused(
                f"{initiator} answered our accept of project {project.name!r} with a malformed answer"
            )
        try:
            theirs = ProjectTerms.model_validate(answer.get("terms"))
        except ValidationError as exc:
            raise Refused(
                f"{initiator} answered our accept of {project.name!r} with invalid terms: {exc}"
            ) from None
        differences = expected.differences(theirs, fill=set(project.members) - {self.party, initiator})
        if differences:
            raise Refused(
                f"{initiator}'s answer to our accept of project {project.name!r}: its terms differ from the "
                f"proposal you reviewed ({'; '.join(differences)}). Nothing was stored and the project stays "
                f"pending: ask {initiator} why, or reject it"
            )
        terms = expected.model_copy(deep=True)
        for party, rows in theirs.max_psi_rows.items():
            terms.max_psi_rows.setdefault(party, rows)
        datasets = self._merged_datasets(project, answer["datasets"])
        accepted = sorted(set(project.members) & {str(p) for p in answer.get("accepted_by") or []})
        return {
            "terms": terms.model_dump(),
            "datasets": datasets,
            "accepted_by": sorted({*accepted, initiator, self.party}),
        }

    def _merged_datasets(self, project: Project, told: dict[Any, Any]) -> dict[str, list[dict[str, Any]]]:
        """Every member's pinned datasets: ours and those we know as we hold them, the rest as told."""
        merged = {str(k): list(v) for k, v in project.datasets.items()}
        for party, items in told.items():
            party = str(party)
            if party not in project.members or party == self.party:
                continue
            if not isinstance(items, list):
                raise Refused(f"the pinned datasets of {party!r} are a list of {{name, fingerprint, n_rows}}")
            entries = [_pinned_entry(d) for d in items]
            if party in merged and merged[party] != entries:
                raise Refused(
                    f"the datasets of {party!r} in project {project.name!r} differ from those it pinned "
                    "when we learned them; a member's datasets never change after they are known"
                )
            merged[party] = entries
        return merged

    def reject(self, caller: Caller, name: str, reason: str = "") -> dict[str, Any]:
        """Decline a pending proposal."""
        caller.require("analyst", "reject projects")
        project = self._get(caller, name, pending_ok=True)
        if project.state != "pending":
            raise ConfigError(f"project {name!r} is {project.state}, not pending: nothing to reject")
        self._request(
            project.initiator, "project.reject", project.id, self._token(project.id), {"reason": reason}
        )
        self._set_state(project.id, "rejected", self.party, reason)
        self._audit.record(
            actor=caller.name,
            action="project.reject",
            allowed=True,
            project=project.id,
            peer=project.initiator,
            reason=reason,
        )
        return self.describe(caller, name)

    def change_state(self, caller: Caller, name: str, state: str, reason: str = "") -> dict[str, Any]:
        """Suspend, resume or revoke a project: effective here at once, then told to every member."""
        caller.require("analyst", f"{state} projects")
        if state not in ("suspended", "active", "revoked"):
            raise ConfigError(f"a project can be suspended, resumed (active) or revoked, not {state!r}")
        project = self._get(caller, name)
        _check_transition(project, state, self.party)
        self._set_state(project.id, state, self.party, reason)
        self._audit.record(
            actor=caller.name, action=f"project.{state}", allowed=True, project=project.id, reason=reason
        )
        unreachable = []
        for member in project.members:
            if member == self.party:
                continue
            try:
                self._request(
                    member,
                    "project.state",
                    project.id,
                    self._token(project.id),
                    {"state": state, "reason": reason},
                )
            except FedbenchError as exc:
                unreachable.append(f"{member}: {exc}")
        result = self.describe(caller, name)
        result["notified"] = not unreachable
        result["notify_errors"] = unreachable
        return result

    def authorize_job(
        self,
        caller: Caller,
        name: str,
        *,
        use: str = "train",
        datasets: dict[str, list[str]] | None = None,
        psi_rows: dict[str, int] | None = None,
        uses: list[str] | None = None,
        job_id: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Ask every member (ourselves first) to admit a job; returns its id and each member's answer.

        With a `spec` (what `runs.submit` sends), every member recomputes the job's uses, datasets and PSI
        sizes from it. Without one, only a job that touches no data is admitted (e.g. to check quotas).
        """
        caller.require("analyst", "run jobs")
        project = self._get(caller, name)
        described = {"use": use, "uses": uses, "datasets": datasets or {}, "psi_rows": psi_rows or {}}
        label = ",".join(uses) if uses else use
        self.require_active(caller, project, f"job.{label}")
        try:
            facts = self._recompute(self.party, project, spec) if spec is not None else _described(described)
            label = ",".join(facts["uses"])
            job_id = facts["job_id"] or _job_id(job_id or uuid.uuid4().hex)
            self._admit_job(self.party, project, job_id, facts)
        except Refused as exc:
            ours = (datasets or {}).get(self.party)
            raise self.refused_here(caller, project, f"job.{label}", str(exc), ours) from None
        body: dict[str, Any] = {"job_id": job_id, "use": label}
        if spec is not None:
            body["spec"] = spec
        answers: dict[str, Any] = {}
        for member in project.members:
            if member == self.party:
                continue
            try:
                answers[member] = self._request(
                    member, "job.submit", project.id, self._token(project.id), body
                )
            except Refused as exc:
                self._audit.record(
                    actor=caller.name,
                    action=f"job.{label}",
                    allowed=False,
                    project=project.id,
                    peer=member,
                    reason=str(exc),
                )
                self._set_job_state(job_id, "refused")
                raise Refused(f"{member} refused the job: {exc}") from None
        self._audit.record(
            actor=caller.name,
            action=f"job.{label}",
            allowed=True,
            project=project.id,
            datasets=facts["datasets"].get(self.party, []),
        )
        return {"job_id": job_id, "project": project.name, "use": label, "answers": answers}

    def require_active(self, caller: Caller, project: Project, action: str = "job.submit") -> None:
        """Refuse (audited here) a job in a project that is not active, saying why in plain words."""
        if project.state == "active":
            return
        if project.state == "proposed":
            waiting = [m for m in project.members if m not in project.accepted_by]
            verb = "has" if len(waiting) == 1 else "have"
            reason = f"project {project.name!r} is proposed: {', '.join(waiting)} {verb} not accepted it yet"
        elif project.state == "pending":
            reason = (
                f"project {project.name!r} is pending: {self.party} has not accepted it yet "
                f"(wb.projects.accept({project.name!r}, datasets=[...]))"
            )
        else:
            reason = f"project {project.name!r} is {project.state}" + _by(project)
        raise self.refused_here(caller, project, action, reason)

    def refused_here(
        self,
        caller: Caller,
        project: Project,
        action: str,
        reason: str,
        datasets: list[str] | None = None,
    ) -> Refused:
        """Audit a refusal our own node makes for a local user before anything leaves it; the error to raise."""
        self._audit.record(
            actor=caller.name,
            action=action,
            allowed=False,
            project=project.id,
            datasets=list(datasets or []),
            reason=reason,
        )
        return Refused(reason)

    def list_for(self, caller: Caller) -> list[dict[str, Any]]:
        """The projects the caller may see (an admin sees all)."""
        with self._db.session() as session:
            rows = session.exec(select(Project).order_by(col(Project.created_at))).all()
        return [
            {**_public(p), "amendment": self.amendments.latest(p)}
            for p in rows
            if self._visible(caller, p, pending_ok=True)
        ]

    def pending(self, caller: Caller) -> list[dict[str, Any]]:
        """Proposals from partners waiting for our answer."""
        caller.require("analyst", "answer proposals")
        return [p for p in self.list_for(caller) if p["state"] == "pending"]

    def describe(self, caller: Caller, name: str) -> dict[str, Any]:
        """One project as the caller may see it, with its usage."""
        project = self._get(caller, name, pending_ok=True)
        info = _public(project)
        info["usage"] = self._usage(project.id)
        info["amendment"] = self.amendments.latest(project)
        return info

    def add_member(self, caller: Caller, name: str, user: str) -> dict[str, Any]:
        """Give a local user access to a project the caller is a member of."""
        caller.require("analyst", "add project members")
        project = self._get(caller, name)
        with self._db.session() as session:
            stored = session.get(Project, project.id)
            assert stored is not None
            stored.local_members = sorted({*stored.local_members, user})
            session.add(stored)
        self._audit.record(
            actor=caller.name, action="project.add_member", allowed=True, project=project.id, reason=user
        )
        return self.describe(caller, name)

    def token_for(self, project_id: str) -> str:
        """The project's token as this node holds it (for protocol code that signs its requests)."""
        return self._token(project_id)

    # ----- the partner's side: requests arriving over the federation channel --------------------------------

    def handle(self, sender: str, action: str, project_id: str | None, token: str | None, body: Any) -> Any:
        """Admit and dispatch one request from a peer node; refusals are audited and raised."""
        handler = self._handlers.get(action)
        if handler is None:
            raise Refused(f"unknown federation action {action!r}")
        if not isinstance(body, dict):
            raise Refused(f"the body of {action!r} must be a dict")
        try:
            project = None if action == "project.propose" else self._admit(sender, action, project_id, token)
            return handler(sender, project, body)
        except (Refused, ValidationError, ConfigError) as exc:
            reason = str(exc)
            self._audit.record(
                actor=sender,
                peer=sender,
                action=action,
                allowed=False,
                project=project_id,
                datasets=_touched(body, self.party),
                reason=reason,
            )
            raise Refused(reason) from None

    def check(self, sender: str, action: str, project_id: str | None, token: str | None) -> Project:
        """Admit a project-scoped call that is not a request (e.g. a job's message); refusals are audited."""
        try:
            return self._admit(sender, action, project_id, token)
        except Refused as exc:
            raise self.refusal(sender, action, project_id, str(exc)) from None

    def refusal(self, sender: str, action: str, project_id: str | None, reason: str) -> Refused:
        """Audit a refused call of `sender` and return the error to raise."""
        self._audit.record(
            actor=sender, peer=sender, action=action, allowed=False, project=project_id, reason=reason
        )
        return Refused(reason)

    def _admit(self, sender: str, action: str, project_id: str | None, token: str | None) -> Project:
        if not project_id or not isinstance(project_id, str):
            raise Refused("the request names no project")
        if not token or not isinstance(token, str):
            raise Refused("the request carries no project token")
        with self._db.session() as session:
            project = session.get(Project, project_id)
        if project is None:
            raise Refused(f"no project {project_id!r} here")
        if not hmac.compare_digest(project.token_hash, project_token_hash(project_id, token)):
            raise Refused(f"wrong token for project {project.name!r}")
        if sender not in project.members:
            raise Refused(f"party {sender!r} is not a member of project {project.name!r}")
        allowed_states = _OPEN_STATES_FOR.get(action, {"active"})
        if action == "project.state":
            allowed_states = {"active", "suspended", "proposed", "pending"}
        if project.state not in allowed_states:
            raise Refused(f"project {project.name!r} is {project.state}" + _by(project))
        return project

    def _on_propose(self, sender: str, _: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("initiator") != sender:
            raise Refused(f"a proposal from {sender!r} must name {sender!r} as its initiator")
        members = body.get("members")
        if not isinstance(members, list) or self.party not in members:
            raise Refused(f"the proposal does not name {self.party!r} as a member")
        terms = self._terms(body.get("terms") or {})
        project_id, token = str(body.get("id", "")), str(body.get("token", ""))
        if len(project_id) != 32 or len(token) != 64:
            raise Refused("malformed proposal: bad id or token")
        name = str(body.get("name", ""))
        if not name or self._find(name) is not None:
            raise Refused(f"a project named {name!r} exists already at {self.party!r}; propose another name")
        with self._db.session() as session:
            if session.get(Project, project_id) is not None:
                raise Refused(f"project id {project_id} is known here already")
        self._save_token(project_id, token)
        with self._db.session() as session:
            session.add(
                Project(
                    id=project_id,
                    name=name,
                    purpose=str(body.get("purpose", ""))[:2000],
                    initiator=sender,
                    members=[str(m) for m in members],
                    accepted_by=[sender],
                    asks={str(k): str(v)[:2000] for k, v in dict(body.get("asks") or {}).items()},
                    datasets={sender: [_pinned_entry(d) for d in _entries(body, sender)]},
                    terms=terms.model_dump(),
                    token_hash=project_token_hash(project_id, token),
                    state="pending",
                    state_by=sender,
                )
            )
        self._audit.record(
            actor=sender, peer=sender, action="project.proposed", allowed=True, project=project_id
        )
        return {"received": True}

    def _on_accept(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        assert project is not None
        if sender == project.initiator:
            raise Refused("the initiator cannot accept its own project")
        if sender in project.accepted_by:
            raise Refused(f"{sender} accepted project {project.name!r} already; an acceptance is given once")
        items = body.get("datasets", [])
        if not isinstance(items, list):
            raise Refused("an acceptance pins a list of datasets: [{name, fingerprint, n_rows}]")
        pinned = [_pinned_entry(d) for d in items]
        declared = body.get("max_psi_rows", 0)
        if not isinstance(declared, int) or isinstance(declared, bool) or declared < 0:
            raise Refused(
                "max_psi_rows, the largest ID set the member brings to a PSI, is a whole number >= 0"
            )
        with self._db.session() as session:
            stored = session.get(Project, project.id)
            assert stored is not None
            terms = ProjectTerms.model_validate(stored.terms)
            cap = terms.max_psi_rows.get(sender)
            if cap is not None and declared > cap:
                raise Refused(
                    f"{sender} declares a PSI input of {declared:,} rows in project {project.name!r}, but the "
                    f"proposal allows it at most {cap:,}: accept with max_psi_rows={cap} or less"
                )
            terms.max_psi_rows[sender] = declared
            stored.terms = terms.model_dump()
            stored.datasets = {**stored.datasets, sender: pinned}
            stored.accepted_by = sorted({*stored.accepted_by, sender})
            activated = set(stored.accepted_by) == set(stored.members)
            if activated:
                stored.state = "active"
                stored.state_by = sender
            stored.updated_at = utcnow()
            session.add(stored)
            answer = {
                "datasets": dict(stored.datasets),
                "terms": stored.terms,
                "accepted_by": stored.accepted_by,
            }
        self._audit.record(
            actor=sender,
            peer=sender,
            action="project.accepted",
            allowed=True,
            project=project.id,
            datasets=[d.get("name", "") for d in pinned],
        )
        if activated:
            self._activated(project, answer, skip=sender)
        return answer

    def _activated(self, project: Project, final: dict[str, Any], *, skip: str) -> None:
        """Tell the members that accepted earlier the final datasets and terms (the last one has them)."""
        for member in project.members:
            if member in (self.party, skip):
                continue
            try:
                self._request(member, "project.activated", project.id, self._token(project.id), final)
            except FedbenchError as exc:
                log.warning("could not tell %s that project %s is active: %s", member, project.name, exc)

    def _on_activated(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        """From the initiator: what we did not know yet (members that accepted after us); changes nothing we hold.

        Every term, cap and pinned dataset we hold must be repeated unchanged; a message that would change one
        is refused whole, so no party can raise a cap (its own or anyone's) alone after agreement.
        """
        assert project is not None
        if sender != project.initiator:
            raise Refused("only the project's initiator says when every member has accepted")
        datasets = body.get("datasets")
        if not isinstance(datasets, dict):
            raise Refused("project.activated carries every member's datasets: {party: [pinned]}")
        theirs = ProjectTerms.model_validate(body.get("terms") or {})
        ours = ProjectTerms.model_validate(project.terms)
        differences = ours.differences(theirs, fill=set(project.members) - {self.party, sender})
        if differences:
            raise Refused(
                f"project.activated would change the terms of project {project.name!r} we hold "
                f"({'; '.join(differences)}); agreed terms change only by a new project"
            )
        merged = self._merged_datasets(project, datasets)
        for party, rows in theirs.max_psi_rows.items():
            if party in project.members:
                ours.max_psi_rows.setdefault(party, rows)
        with self._db.session() as session:
            stored = session.get(Project, project.id)
            assert stored is not None
            stored.datasets = merged
            stored.terms = ours.model_dump()
            told = {str(p) for p in body.get("accepted_by") or []}
            stored.accepted_by = sorted(set(stored.members) & (told | set(stored.accepted_by)))
            stored.updated_at = utcnow()
            session.add(stored)
        self._audit.record(
            actor=sender, peer=sender, action="project.activated", allowed=True, project=project.id
        )
        return {"received": True}

    def _on_reject(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        assert project is not None
        reason = str(body.get("reason", ""))[:2000]
        self._set_state(project.id, "rejected", sender, reason)
        self._audit.record(
            actor=sender,
            peer=sender,
            action="project.rejected",
            allowed=True,
            project=project.id,
            reason=reason,
        )
        return {"received": True}

    def _on_state(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        assert project is not None
        state, reason = str(body.get("state")), str(body.get("reason", ""))[:2000]
        if state not in ("suspended", "active", "revoked"):
            raise Refused(f"unknown project state {state!r}")
        _check_transition(project, state, sender)
        self._set_state(project.id, state, sender, reason)
        self._audit.record(
            actor=sender,
            peer=sender,
            action=f"project.{state}",
            allowed=True,
            project=project.id,
            reason=reason,
        )
        return {"received": True}

    def _on_job_submit(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        """Admit a job on what we recompute from its spec, never on the sender's description of it."""
        assert project is not None
        facts = self._recompute(sender, project, body["spec"]) if "spec" in body else _described(body)
        job_id = facts["job_id"] or _job_id(body.get("job_id"))
        self._admit_job(sender, project, job_id, facts)
        answer: dict[str, Any] = {"admitted": True, "job_id": job_id}
        if self.on_job is not None and facts["spec"] is not None:
            try:
                answer.update(self.on_job(sender, project, facts["spec"]))
            except FedbenchError as exc:
                self._set_job_state(job_id, "refused")
                raise Refused(str(exc)) from None
        self._audit.record(
            actor=sender,
            peer=sender,
            action=f"job.{','.join(facts['uses'])}",
            allowed=True,
            project=project.id,
            datasets=facts["datasets"].get(self.party, []),
        )
        return answer

    def _recompute(self, sender: str, project: Project, spec: Any) -> dict[str, Any]:
        """The job as this node computes it from its spec: uses, datasets and PSI sizes per party, the spec."""
        if self.plan_job is None:
            raise Refused(f"{self.party} runs no jobs")
        try:
            expected = self.plan_job(sender, project, spec)
        except Refused:
            raise
        except FedbenchError as exc:
            raise Refused(str(exc)) from None
        return {
            "job_id": expected["job_id"],
            "uses": list(expected["uses"]),
            "datasets": dict(expected["datasets"]),
            "psi_rows": dict(expected["psi_rows"]),
            "psi_steps": int(expected["psi_steps"]),
            "psi_keys": [str(k) for k in expected["psi_keys"]],
            "spec": expected,
        }

    def add_handler(self, action: str, handler: Callable[[str, Project | None, dict[str, Any]], Any]) -> None:
        """Serve one more project-scoped action (the token and membership are checked first)."""
        self._handlers[action] = handler

    def project_row(self, caller: Caller, name: str) -> Project:
        """The project's row, if the caller may see it."""
        return self._get(caller, name)

    # ----- shared checks ----------------------------------------------------------------------------------

    def _admit_job(self, requester: str, project: Project, job_id: str, facts: dict[str, Any]) -> None:
        """Every check a job passes on each member before any data moves; records the job when admitted.

        `facts` are this node's own recomputation (`_recompute`, `_described`): uses, datasets per party, PSI
        sizes per party and the keys of the PSI steps. Our datasets must be unchanged since we pinned them.
        A PSI step counts as one PSI run unless this node holds its outputs already (its own records, never a
        peer's word): such a step is reused, not run, and moves no ID. If it runs after all (a partner lacked
        it), `charge_psi_runs` counts it when the job starts. The job's `use` column repeats `psi` once per
        counted run, so `_usage` counts runs, not jobs.
        """
        terms = ProjectTerms.model_validate(project.terms)
        uses = list(facts["uses"])
        for wanted in uses:
            if wanted not in terms.uses:
                raise Refused(
                    f"use {wanted!r} is not allowed in project {project.name!r} (allowed: {terms.uses})"
                )
        requested: dict[str, list[str]] = facts["datasets"]
        for party, names in requested.items():
            authorised = {d["name"]: d for d in project.datasets.get(party, [])}
            for dataset in names:
                if dataset not in authorised:
                    raise Refused(
                        f"dataset {dataset!r} of {party!r} is not authorised for project {project.name!r}"
                    )
                if party == self.party:
                    current = self._datasets.get(dataset)
                    if current.fingerprint != authorised[dataset]["fingerprint"]:
                        raise Refused(
                            f"dataset {dataset!r} changed since it was authorised for project {project.name!r}; "
                            "its content must be accepted again in a new project"
                        )
        psi_keys = [str(k) for k in facts.get("psi_keys", [])] if "psi" in uses else []
        if psi_keys:
            for party, rows in dict(facts["psi_rows"]).items():
                declared = terms.max_psi_rows.get(party)
                if declared is not None and int(rows) > declared:
                    raise Refused(
                        f"PSI input of {party!r} has {rows} rows, more than its declared maximum of {declared}"
                    )
        held = self.held_steps(facts["spec"]) if psi_keys and self.held_steps and facts.get("spec") else set()
        runs = sum(key not in held for key in psi_keys)
        with self._quota_lock:
            usage = self._usage(project.id)
            if usage["jobs_today"] >= terms.jobs_per_day:
                raise Refused(
                    f"quota exhausted: {terms.jobs_per_day} jobs per day in project {project.name!r}"
                )
            if runs and usage["psi_runs"] + runs > terms.psi_runs:
                raise Refused(_psi_quota_exhausted(terms, project))
            with self._db.session() as session:
                if session.get(Job, job_id) is not None:
                    raise Refused(f"job {job_id} is known here already: a job is submitted once")
                session.add(
                    Job(
                        id=job_id,
                        project=project.id,
                        use=",".join([u for u in uses if u != "psi"] + ["psi"] * runs),
                        initiator=requester,
                        datasets={str(k): [str(n) for n in v] for k, v in requested.items()},
                        state="admitted",
                    )
                )

    def charge_psi_runs(self, job_id: str, running: int) -> None:
        """Count the PSI steps a job is about to run here, beyond the runs admission counted, against the quota.

        Admission counts no run for a PSI step whose outputs we held then; if the step runs after all (a
        partner did not hold it, or the job was told to run it again), it counts now, before any ID moves.
        Refused when the project's PSI runs would be exceeded.
        """
        with self._quota_lock:
            with self._db.session() as session:
                job = session.get(Job, job_id)
                if job is None:
                    raise Refused(f"no job {job_id!r} admitted here")
                counted = job.use.split(",").count("psi")
                if running <= counted:
                    return
                project = session.get(Project, job.project)
                assert project is not None
                terms = ProjectTerms.model_validate(project.terms)
            if self._usage(project.id)["psi_runs"] + running - counted > terms.psi_runs:
                raise Refused(_psi_quota_exhausted(terms, project))
            with self._db.session() as session:
                stored = session.get(Job, job_id)
                assert stored is not None
                stored.use = ",".join([u for u in stored.use.split(",") if u] + ["psi"] * (running - counted))
                session.add(stored)

    def _usage(self, project_id: str) -> dict[str, int]:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        admitted = col(Job.state) != "refused"
        with self._db.session() as session:
            jobs_today = session.exec(
                select(func.count())
                .select_from(Job)
                .where(Job.project == project_id, Job.created_at >= today, admitted)
            ).one()
            psi_uses = session.exec(
                select(Job.use).where(Job.project == project_id, col(Job.use).contains("psi"), admitted)
            ).all()
            psi_runs = sum(str(use).split(",").count("psi") for use in psi_uses)
            jobs = session.exec(
                select(func.count()).select_from(Job).where(Job.project == project_id, admitted)
            ).one()
        return {"jobs_today": int(jobs_today), "psi_runs": int(psi_runs), "jobs": int(jobs)}

    def _terms(self, terms: dict[str, Any]) -> ProjectTerms:
        try:
            return ProjectTerms.model_validate(terms)
        except ValidationError as exc:
            raise ConfigError(f"invalid project terms: {exc}") from None

    def _pin(self, caller: Caller, names: list[str]) -> list[dict[str, Any]]:
        pinned = []
        for name in names:
            info = self._datasets.get(name)
            if not (caller.is_admin or info.owner == caller.name or caller.name in info.shared_with):
                raise Refused(
                    f"user {caller.name!r} may not use dataset {name!r}: it belongs to {info.owner!r}"
                )
            pinned.append({"name": info.name, "fingerprint": info.fingerprint, "n_rows": info.n_rows})
        return pinned

    def _find(self, name: str) -> Project | None:
        with self._db.session() as session:
            return session.exec(select(Project).where(Project.name == name)).first()

    def _get(self, caller: Caller, name: str, *, pending_ok: bool = False) -> Project:
        project = self._find(name)
        if project is None or not self._visible(caller, project, pending_ok=pending_ok):
            raise NotFound(f"no project {name!r} visible to user {caller.name!r}; see wb.projects.list()")
        return project

    @staticmethod
    def _visible(caller: Caller, project: Project, *, pending_ok: bool) -> bool:
        if caller.is_admin or caller.name in project.local_members:
            return True
        return pending_ok and project.state == "pending" and caller.role == "analyst"

    def _set_state(self, project_id: str, state: str, by: str, reason: str) -> None:
        with self._db.session() as session:
            stored = session.get(Project, project_id)
            assert stored is not None
            stored.state, stored.state_by, stored.reason, stored.updated_at = state, by, reason, utcnow()
            session.add(stored)
        if state in ("revoked", "suspended"):
            if self.on_stop is not None:
                self.on_stop(project_id, f"project {state} by {by}" + (f": {reason}" if reason else ""))
            waiting = col(Job.state).in_(["admitted", "queued"])
            with self._db.session() as session:
                for job in session.exec(select(Job).where(Job.project == project_id, waiting)):
                    job.state = "cancelled"
                    session.add(job)

    def _set_job_state(self, job_id: str, state: str) -> None:
        with self._db.session() as session:
            job = session.get(Job, job_id)
            if job is not None:
                job.state = state
                session.add(job)

    def _save_token(self, project_id: str, token: str) -> None:
        self._secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._secrets / f"project-{project_id}.token"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token)

    def _token(self, project_id: str) -> str:
        path = self._secrets / f"project-{project_id}.token"
        if not path.exists():
            raise ConfigError(f"this node holds no token for project {project_id}; was its home restored?")
        return path.read_text().strip()


def _public(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "purpose": project.purpose,
        "initiator": project.initiator,
        "members": list(project.members),
        "accepted_by": list(project.accepted_by),
        "asks": dict(project.asks),
        "datasets": dict(project.datasets),
        "terms": dict(project.terms),
        "caveats": caveats(
            ProjectTerms.model_validate(project.terms),
            arbiter=any(
                m != project.initiator and m in project.accepted_by and not project.datasets.get(m)
                for m in project.members
            ),
        ),
        "local_members": list(project.local_members),
        "state": project.state,
        "state_by": project.state_by,
        "reason": project.reason,
        "created_at": project.created_at.isoformat(),
    }


def _by(project: Project) -> str:
    return (
        f" (by {project.state_by}{': ' + project.reason if project.reason else ''})"
        if project.state_by
        else ""
    )


def _check_transition(project: Project, state: str, by: str) -> None:
    if project.state == "revoked":
        raise Refused(f"project {project.name!r} is revoked" + _by(project) + "; propose a new one")
    if state == "active" and project.state == "suspended" and project.state_by != by:
        raise Refused(
            f"project {project.name!r} was suspended by {project.state_by}; only they can resume it"
        )
    if state == "active" and project.state not in ("suspended", "active"):
        raise Refused(f"project {project.name!r} is {project.state}; only a suspended project can be resumed")


def pinned_entry(entry: Any) -> dict[str, Any]:
    """One pinned dataset as a partner describes it (see `_pinned_entry`), for the amendments."""
    return _pinned_entry(entry)


def _pinned_entry(entry: Any) -> dict[str, Any]:
    """One pinned dataset as a partner describes it: name, fingerprint and row count, nothing else."""
    if not isinstance(entry, dict):
        raise Refused("a pinned dataset is {name, fingerprint, n_rows}")
    try:
        return {
            "name": str(entry["name"]),
            "fingerprint": str(entry["fingerprint"]),
            "n_rows": int(entry["n_rows"]),
        }
    except (KeyError, TypeError, ValueError):
        raise Refused("a pinned dataset is {name, fingerprint, n_rows}") from None


def _touched(body: Any, party: str) -> list[str]:
    datasets = body.get("datasets") if isinstance(body, dict) else None
    if isinstance(datasets, dict):
        return [str(n) for n in datasets.get(party, []) if isinstance(n, str)]
    return []


def _entries(body: dict[str, Any], party: str) -> list[Any]:
    """The pinned datasets a proposal gives for `party` (a list, or nothing)."""
    datasets = body.get("datasets")
    items = datasets.get(party, []) if isinstance(datasets, dict) else []
    if not isinstance(items, list):
        raise Refused("a proposal pins a list of datasets per party: {party: [{name, fingerprint, n_rows}]}")
    return items


def _job_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 64 or "/" in value:
        raise Refused("a job id is a string of 1 to 64 characters without '/'")
    return value


def _described(body: dict[str, Any]) -> dict[str, Any]:
    """A job without a spec, as described: admitted only if it touches no data (no datasets, no PSI)."""
    use = body.get("use")
    if not isinstance(use, str) or use not in USES:
        raise Refused(f"a job's use is one of {list(USES)}, not {use!r}")
    uses = body.get("uses") or [use]
    datasets = body.get("datasets") or {}
    reads = not isinstance(datasets, dict) or any(bool(names) for names in datasets.values())
    if reads or use == "psi" or "psi" in uses or body.get("psi_rows"):
        raise Refused(_NEEDS_SPEC)
    return {
        "job_id": None,
        "uses": [use],
        "datasets": {},
        "psi_rows": {},
        "psi_steps": 0,
        "psi_keys": [],
        "spec": None,
    }


def _psi_quota_exhausted(terms: ProjectTerms, project: Project) -> str:
    """The refusal of one PSI run too many (reused PSI steps never count)."""
    return (
        f"quota exhausted: {terms.psi_runs} PSI runs in project {project.name!r}; runs that reuse an "
        "earlier PSI's results are still allowed, a new PSI needs a new project"
    )
