"""Projects: the lifecycle negotiated between nodes, and the checks every project request passes first.

Both sides of every exchange live here, side by side: `propose` (our side) and `_on_propose` (the partner's),
`accept` and `_on_accept`, and so on. When the last member accepts, the initiator tells the others the final
datasets and declared PSI sizes (`_activated`, `_on_activated`), so that with three or more members (e.g. an
arbiter that brings no data) every member knows every other's pinned datasets, whatever the order of accepts.
Each incoming request is checked by `_admit` before its handler runs: token, membership, state, use, datasets
and quotas; a refusal is audited on the receiving node and travels back to the sender as a `Refused` error
(audited there too).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import col, func, select

from fedbench.errors import ConfigError, FedbenchError, NotFound, Refused
from fedbench.node.audit import AuditLog
from fedbench.node.terms import ProjectTerms
from fedbench.node.users import Caller
from fedbench.store import Database, DatasetRegistry, Job, Project
from fedbench.store.models import utcnow

__all__ = ["PeerRequest", "ProjectService", "project_token_hash", "psi_domain_key"]

log = logging.getLogger("fedbench.projects")

PeerRequest = Callable[[str, str, str | None, str | None, dict[str, Any]], Any]
"""How the service reaches a peer node: (party, action, project id, token, body) -> answer."""

_OPEN_STATES_FOR = {"project.accept": {"proposed", "active"}, "project.reject": {"proposed"}}


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
        self.on_job: Callable[[str, Project, dict[str, Any]], dict[str, Any]] | None = None
        """Set by the job service: validates a submitted job's spec and answers which steps it can reuse."""

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
        pinned = self._pin(caller, datasets)
        rows = max_psi_rows if max_psi_rows is not None else max((d["n_rows"] for d in pinned), default=0)
        body = {"datasets": pinned, "max_psi_rows": rows}
        answer = self._request(project.initiator, "project.accept", project.id, self._token(project.id), body)
        with self._db.session() as session:
            stored = session.get(Project, project.id)
            assert stored is not None
            stored.datasets = {**answer["datasets"], self.party: pinned}
            stored.terms = answer["terms"]
            stored.accepted_by = answer["accepted_by"]
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
        use: str,
        datasets: dict[str, list[str]],
        psi_rows: dict[str, int] | None = None,
        uses: list[str] | None = None,
        job_id: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Ask every member (ourselves first) to admit a job; returns its id and each member's answer."""
        caller.require("analyst", "run jobs")
        project = self._get(caller, name)
        job_id = job_id or uuid.uuid4().hex
        body: dict[str, Any] = {
            "job_id": job_id,
            "use": use,
            "datasets": datasets,
            "psi_rows": psi_rows or {},
        }
        if uses:
            body["uses"] = uses
        if spec is not None:
            body["spec"] = spec
        try:
            if project.state != "active":
                raise Refused(f"project {project.name!r} is {project.state}" + _by(project))
            self._admit_job(self.party, project, body)
        except Refused as exc:
            self._audit.record(
                actor=caller.name,
                action=f"job.{use}",
                allowed=False,
                project=project.id,
                datasets=datasets.get(self.party, []),
                reason=str(exc),
            )
            raise
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
                    action=f"job.{use}",
                    allowed=False,
                    project=project.id,
                    peer=member,
                    reason=str(exc),
                )
                self._set_job_state(job_id, "refused")
                raise Refused(f"{member} refused the job: {exc}") from None
        self._audit.record(
            actor=caller.name,
            action=f"job.{use}",
            allowed=True,
            project=project.id,
            datasets=datasets.get(self.party, []),
        )
        return {"job_id": job_id, "project": project.name, "use": use, "answers": answers}

    def list_for(self, caller: Caller) -> list[dict[str, Any]]:
        """The projects the caller may see (an admin sees all)."""
        with self._db.session() as session:
            rows = session.exec(select(Project).order_by(col(Project.created_at))).all()
        return [_public(p) for p in rows if self._visible(caller, p, pending_ok=True)]

    def pending(self, caller: Caller) -> list[dict[str, Any]]:
        """Proposals from partners waiting for our answer."""
        caller.require("analyst", "answer proposals")
        return [p for p in self.list_for(caller) if p["state"] == "pending"]

    def describe(self, caller: Caller, name: str) -> dict[str, Any]:
        """One project as the caller may see it, with its usage."""
        project = self._get(caller, name, pending_ok=True)
        info = _public(project)
        info["usage"] = self._usage(project.id)
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
                    datasets={sender: list(dict(body.get("datasets") or {}).get(sender, []))},
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
        pinned = [dict(d) for d in body.get("datasets", [])]
        with self._db.session() as session:
            stored = session.get(Project, project.id)
            assert stored is not None
            terms = ProjectTerms.model_validate(stored.terms)
            terms.max_psi_rows[sender] = int(body.get("max_psi_rows", 0))
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
        """From the initiator: every member's pinned datasets and declared PSI sizes (ours stay as we pinned)."""
        assert project is not None
        if sender != project.initiator:
            raise Refused("only the project's initiator says when every member has accepted")
        datasets = body.get("datasets")
        if not isinstance(datasets, dict):
            raise Refused("project.activated carries every member's datasets: {party: [pinned]}")
        declared = ProjectTerms.model_validate(body.get("terms") or {}).max_psi_rows
        with self._db.session() as session:
            stored = session.get(Project, project.id)
            assert stored is not None
            theirs = {
                str(party): [_pinned_entry(d) for d in items]
                for party, items in datasets.items()
                if party in stored.members and party != self.party and isinstance(items, list)
            }
            stored.datasets = {**theirs, self.party: list(stored.datasets.get(self.party, []))}
            terms = ProjectTerms.model_validate(stored.terms)
            for party, rows in declared.items():
                if party in stored.members and party != self.party:
                    terms.max_psi_rows[party] = rows
            stored.terms = terms.model_dump()
            stored.accepted_by = sorted(set(stored.members) & {str(p) for p in body.get("accepted_by", [])})
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
        assert project is not None
        self._admit_job(sender, project, body)
        answer: dict[str, Any] = {"admitted": True, "job_id": body["job_id"]}
        if self.on_job is not None and "spec" in body:
            try:
                answer.update(self.on_job(sender, project, body))
            except FedbenchError as exc:
                self._set_job_state(str(body["job_id"]), "refused")
                raise Refused(str(exc)) from None
        self._audit.record(
            actor=sender,
            peer=sender,
            action=f"job.{body.get('use')}",
            allowed=True,
            project=project.id,
            datasets=_touched(body, self.party),
        )
        return answer

    def add_handler(self, action: str, handler: Callable[[str, Project | None, dict[str, Any]], Any]) -> None:
        """Serve one more project-scoped action (the token and membership are checked first)."""
        self._handlers[action] = handler

    def project_row(self, caller: Caller, name: str) -> Project:
        """The project's row, if the caller may see it."""
        return self._get(caller, name)

    # ----- shared checks ----------------------------------------------------------------------------------

    def _admit_job(self, requester: str, project: Project, body: dict[str, Any]) -> None:
        """Every check a job passes on each member before any data moves; records the job when admitted."""
        terms = ProjectTerms.model_validate(project.terms)
        use = body.get("use")
        for wanted in body.get("uses") or [use]:
            if wanted not in terms.uses:
                raise Refused(
                    f"use {wanted!r} is not allowed in project {project.name!r} (allowed: {terms.uses})"
                )
        requested = body.get("datasets")
        if not isinstance(requested, dict):
            raise Refused("a job request names its datasets per party: {party: [names]}")
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
        usage = self._usage(project.id)
        if usage["jobs_today"] >= terms.jobs_per_day:
            raise Refused(f"quota exhausted: {terms.jobs_per_day} jobs per day in project {project.name!r}")
        if "psi" in (body.get("uses") or [use]):
            if usage["psi_runs"] >= terms.psi_runs:
                raise Refused(f"quota exhausted: {terms.psi_runs} PSI runs in project {project.name!r}")
            for party, rows in dict(body.get("psi_rows") or {}).items():
                declared = terms.max_psi_rows.get(party)
                if declared is not None and int(rows) > declared:
                    raise Refused(
                        f"PSI input of {party!r} has {rows} rows, more than its declared maximum of {declared}"
                    )
        with self._db.session() as session:
            session.add(
                Job(
                    id=str(body["job_id"]),
                    project=project.id,
                    use=str(use),
                    initiator=requester,
                    datasets={str(k): [str(n) for n in v] for k, v in requested.items()},
                    state="admitted",
                )
            )

    def _usage(self, project_id: str) -> dict[str, int]:
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        admitted = col(Job.state) != "refused"
        with self._db.session() as session:
            jobs_today = session.exec(
                select(func.count())
                .select_from(Job)
                .where(Job.project == project_id, Job.created_at >= today, admitted)
            ).one()
            psi_runs = session.exec(
                select(func.count())
                .select_from(Job)
                .where(Job.project == project_id, col(Job.use).contains("psi"), admitted)
            ).one()
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
