"""Amending an active project to add datasets: one member proposes, every other member accepts again.

Both sides of each exchange live here, side by side, as in `projects.py`: `amend` (our side) and `_on_amend`
(each partner's), `accept` and `_on_accept`, `reject` and `_on_reject`, and `_on_state`, by which the proposer
tells the other members how the amendment ended. The proposer pins its added datasets from its own registry
(name, fingerprint, row count) and raises its own PSI cap to its largest added dataset if needed; each partner
keeps the amendment as it received it and, once accepted, applies that copy, never what a later message says.
Until every member accepted, the project runs on its old datasets and caps: a job on an added dataset is refused.
One amendment of a project is pending at a time; its proposer may withdraw it. Every step is audited.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from fedbench.errors import ConfigError, FedbenchError, NotFound, Refused
from fedbench.node.terms import ProjectTerms
from fedbench.node.users import Caller
from fedbench.store import Project
from fedbench.store.models import Amendment, utcnow

if TYPE_CHECKING:
    from fedbench.node.projects import ProjectService

__all__ = ["Amendments", "amendment_info"]

log = logging.getLogger("fedbench.projects")

_ID = re.compile(r"^[0-9a-f]{32}$")


def amendment_info(amendment: Amendment, members: list[str]) -> dict[str, Any]:
    """An amendment as plain data: who proposed it, what it adds, who accepted, who is still to answer."""
    return {
        "id": amendment.id,
        "proposed_by": amendment.proposed_by,
        "datasets": [dict(d) for d in amendment.datasets],
        "max_psi_rows": amendment.max_psi_rows,
        "accepted_by": list(amendment.accepted_by),
        "waiting_for": [m for m in members if m not in amendment.accepted_by],
        "state": amendment.state,
        "state_by": amendment.state_by,
        "reason": amendment.reason,
        "created_at": amendment.created_at.isoformat(),
    }


class Amendments:
    """The amendments of one node's projects; requests arrive through `ProjectService.handle` (token checked)."""

    def __init__(self, projects: ProjectService) -> None:
        self._projects = projects
        for action, handler in (
            ("project.amend", self._on_amend),
            ("project.amend_accept", self._on_accept),
            ("project.amend_reject", self._on_reject),
            ("project.amend_state", self._on_state),
        ):
            projects.add_handler(action, handler)

    # ----- our side -------------------------------------------------------------------------------------

    def amend(self, caller: Caller, name: str, *, add_datasets: list[str]) -> dict[str, Any]:
        """Propose to add our `add_datasets` to an active project; it applies once every member accepted."""
        caller.require("analyst", "amend projects")
        service = self._projects
        project = service.project_row(caller, name)
        if project.state != "active":
            raise ConfigError(f"project {name!r} is {project.state}: only an active project can be amended")
        if not add_datasets or len(set(add_datasets)) != len(add_datasets):
            raise ConfigError(
                f"name one or more distinct datasets to add to project {name!r}, got {add_datasets}"
            )
        self._require_none_pending(project)
        known = {d["name"] for d in project.datasets.get(service.party, [])}
        already = sorted(set(add_datasets) & known)
        if already:
            raise ConfigError(
                f"{', '.join(already)} {'is' if len(already) == 1 else 'are'} in project {name!r} already; "
                "name datasets it does not have"
            )
        pinned = service.pin(caller, add_datasets)
        terms = ProjectTerms.model_validate(project.terms)
        cap = max(terms.max_psi_rows.get(service.party, 0), *(d["n_rows"] for d in pinned))
        amendment = Amendment(
            id=uuid.uuid4().hex,
            project=project.id,
            proposed_by=service.party,
            datasets=pinned,
            max_psi_rows=cap,
            accepted_by=[service.party],
            state_by=service.party,
        )
        body = {"id": amendment.id, "datasets": pinned, "max_psi_rows": cap}
        for member in project.members:
            if member == service.party:
                continue
            try:
                service.request(member, "project.amend", project.id, service.token_for(project.id), body)
            except FedbenchError as exc:
                raise service.refused_here(
                    caller,
                    project,
                    "project.amend",
                    f"{member} did not take the amendment: {exc}",
                    add_datasets,
                ) from None
        with service.db.session() as session:
            session.add(amendment)
        service.audit.record(
            actor=caller.name,
            action="project.amend",
            allowed=True,
            project=project.id,
            datasets=add_datasets,
            reason=f"adds {', '.join(add_datasets)}; PSI cap of {service.party} {cap:,} rows",
        )
        return service.describe(caller, name)

    def accept(self, caller: Caller, name: str) -> dict[str, Any]:
        """Accept the pending amendment of a partner, as we received it; applied when every member accepted."""
        caller.require("analyst", "accept amendments")
        service = self._projects
        project = service.project_row(caller, name)
        amendment = self._pending(project)
        if amendment.proposed_by == service.party or service.party in amendment.accepted_by:
            raise ConfigError(
                f"the amendment of project {name!r} waits for {', '.join(self._waiting(project, amendment))}, "
                "not for you"
            )
        try:
            answer = service.request(
                amendment.proposed_by,
                "project.amend_accept",
                project.id,
                service.token_for(project.id),
                {"id": amendment.id},
            )
        except Refused as exc:
            raise service.refused_here(
                caller, project, "project.amend_accept", str(exc), _names(amendment)
            ) from None
        applied = isinstance(answer, dict) and answer.get("applied") is True
        self._accepted(project.id, amendment.id, service.party, apply=applied)
        service.audit.record(
            actor=caller.name,
            action="project.amend_accept",
            allowed=True,
            project=project.id,
            peer=amendment.proposed_by,
            datasets=_names(amendment),
        )
        return service.describe(caller, name)

    def reject(self, caller: Caller, name: str, reason: str = "") -> dict[str, Any]:
        """Decline a partner's pending amendment, or withdraw our own; the project keeps its datasets."""
        caller.require("analyst", "reject amendments")
        service = self._projects
        project = service.project_row(caller, name)
        amendment = self._pending(project)
        reason = reason[:2000]
        token = service.token_for(project.id)
        if amendment.proposed_by == service.party:
            self._end(amendment.id, "withdrawn", service.party, reason)
            self._tell(project, {"id": amendment.id, "state": "withdrawn", "reason": reason}, skip="")
            action = "project.amend_withdraw"
        else:
            try:
                service.request(
                    amendment.proposed_by,
                    "project.amend_reject",
                    project.id,
                    token,
                    {"id": amendment.id, "reason": reason},
                )
            except Refused as exc:
                raise service.refused_here(
                    caller, project, "project.amend_reject", str(exc), _names(amendment)
                ) from None
            self._end(amendment.id, "rejected", service.party, reason)
            action = "project.amend_reject"
        service.audit.record(
            actor=caller.name,
            action=action,
            allowed=True,
            project=project.id,
            peer=None if amendment.proposed_by == service.party else amendment.proposed_by,
            datasets=_names(amendment),
            reason=reason,
        )
        return service.describe(caller, name)

    def latest(self, project: Project) -> dict[str, Any] | None:
        """The project's pending amendment, else its latest one, as plain data (None when it has none)."""
        with self._projects.db.session() as session:
            rows = session.exec(
                select(Amendment)
                .where(Amendment.project == project.id)
                .order_by(col(Amendment.created_at).desc())
            ).all()
        if not rows:
            return None
        chosen = next((a for a in rows if a.state == "pending"), rows[0])
        return amendment_info(chosen, list(project.members))

    # ----- the partners' side: requests arriving over the federation channel ------------------------------

    def _on_amend(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        """A member proposes to add its datasets: kept as received, pending our user's answer."""
        assert project is not None
        amendment_id = _checked_id(body.get("id"))
        from fedbench.node.projects import pinned_entry

        items = body.get("datasets")
        if not isinstance(items, list) or not items:
            raise Refused("an amendment adds a list of pinned datasets: [{name, fingerprint, n_rows}]")
        pinned = [pinned_entry(d) for d in items]
        known = {d["name"] for d in project.datasets.get(sender, [])}
        names = [d["name"] for d in pinned]
        if len(set(names)) != len(names) or set(names) & known:
            raise Refused(
                f"an amendment adds datasets {sender} has not pinned in project {project.name!r} yet, "
                f"each once; it names {names}"
            )
        cap = body.get("max_psi_rows")
        terms = ProjectTerms.model_validate(project.terms)
        current = terms.max_psi_rows.get(sender, 0)
        largest = max(d["n_rows"] for d in pinned)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap != max(current, largest):
            raise Refused(
                f"an amendment sets the proposer's PSI cap to its largest dataset, at least its agreed "
                f"{current:,} rows: {max(current, largest):,} here, not {cap!r}"
            )
        self._require_none_pending(project)
        with self._projects.db.session() as session:
            if session.get(Amendment, amendment_id) is not None:
                raise Refused(f"amendment {amendment_id} is known here already")
            session.add(
                Amendment(
                    id=amendment_id,
                    project=project.id,
                    proposed_by=sender,
                    datasets=pinned,
                    max_psi_rows=cap,
                    accepted_by=[sender],
                    state_by=sender,
                )
            )
        self._projects.audit.record(
            actor=sender,
            peer=sender,
            action="project.amend_received",
            allowed=True,
            project=project.id,
            datasets=names,
            reason=f"adds {', '.join(names)}; PSI cap of {sender} {cap:,} rows",
        )
        return {"received": True}

    def _on_accept(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        """A member accepts our amendment; once all have, it applies here and the others are told."""
        assert project is not None
        amendment = self._ours(project, body, sender)
        if sender in amendment.accepted_by:
            raise Refused(f"{sender} accepted the amendment of project {project.name!r} already")
        applied = set(project.members) <= {*amendment.accepted_by, sender}
        self._accepted(project.id, amendment.id, sender, apply=applied)
        self._projects.audit.record(
            actor=sender,
            peer=sender,
            action="project.amend_accepted",
            allowed=True,
            project=project.id,
            datasets=_names(amendment),
        )
        if applied:
            self._tell(project, {"id": amendment.id, "state": "accepted", "reason": ""}, skip=sender)
        return {"applied": applied}

    def _on_reject(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        """A member declines our amendment: it ends for every member, the project keeps its datasets."""
        assert project is not None
        amendment = self._ours(project, body, sender)
        reason = str(body.get("reason", ""))[:2000]
        self._end(amendment.id, "rejected", sender, reason)
        self._projects.audit.record(
            actor=sender,
            peer=sender,
            action="project.amend_rejected",
            allowed=True,
            project=project.id,
            datasets=_names(amendment),
            reason=reason,
        )
        self._tell(project, {"id": amendment.id, "state": "rejected", "reason": reason}, skip=sender)
        return {"received": True}

    def _on_state(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        """From the amendment's proposer only: every member accepted it, or it was declined or withdrawn."""
        assert project is not None
        amendment_id = _checked_id(body.get("id"))
        with self._projects.db.session() as session:
            amendment = session.get(Amendment, amendment_id)
        if amendment is None or amendment.project != project.id or amendment.proposed_by != sender:
            raise Refused(f"no amendment {amendment_id} of {sender} in project {project.name!r} here")
        if amendment.state != "pending":
            return {"received": True}
        state, reason = str(body.get("state")), str(body.get("reason", ""))[:2000]
        if state == "accepted":
            if self._projects.party not in amendment.accepted_by:
                raise Refused(
                    f"the amendment of project {project.name!r} cannot be in force: {self._projects.party} "
                    "has not accepted it"
                )
            self._accepted(project.id, amendment.id, self._projects.party, apply=True)
        elif state in ("rejected", "withdrawn"):
            self._end(amendment.id, state, sender, reason)
        else:
            raise Refused(f"an amendment ends accepted, rejected or withdrawn, not {state!r}")
        self._projects.audit.record(
            actor=sender,
            peer=sender,
            action=f"project.amend_{state}",
            allowed=True,
            project=project.id,
            datasets=_names(amendment),
            reason=reason,
        )
        return {"received": True}

    # ----- shared -----------------------------------------------------------------------------------------

    def _accepted(self, project_id: str, amendment_id: str, party: str, *, apply: bool) -> None:
        """Record `party`'s acceptance; with `apply`, put the amendment in force from our own copy of it."""
        with self._projects.db.session() as session:
            amendment = session.get(Amendment, amendment_id)
            stored = session.get(Project, project_id)
            assert amendment is not None and stored is not None
            amendment.accepted_by = sorted({*amendment.accepted_by, party})
            amendment.updated_at = utcnow()
            if apply:
                amendment.accepted_by = sorted(stored.members)
                amendment.state, amendment.state_by = "accepted", party
                owner = amendment.proposed_by
                stored.datasets = {
                    **stored.datasets,
                    owner: [*stored.datasets.get(owner, []), *amendment.datasets],
                }
                terms = ProjectTerms.model_validate(stored.terms)
                terms.max_psi_rows[owner] = max(terms.max_psi_rows.get(owner, 0), amendment.max_psi_rows)
                stored.terms = terms.model_dump()
                stored.updated_at = utcnow()
                session.add(stored)
            session.add(amendment)

    def _end(self, amendment_id: str, state: str, by: str, reason: str) -> None:
        with self._projects.db.session() as session:
            amendment = session.get(Amendment, amendment_id)
            assert amendment is not None
            amendment.state, amendment.state_by, amendment.reason = state, by, reason
            amendment.updated_at = utcnow()
            session.add(amendment)

    def _tell(self, project: Project, body: dict[str, Any], *, skip: str) -> None:
        """Tell the other members (but `skip`) how our amendment ended; one that cannot be reached is logged."""
        service = self._projects
        for member in project.members:
            if member in (service.party, skip):
                continue
            try:
                service.request(
                    member, "project.amend_state", project.id, service.token_for(project.id), body
                )
            except FedbenchError as exc:
                log.warning("could not tell %s how the amendment of %s ended: %s", member, project.name, exc)

    def _pending(self, project: Project) -> Amendment:
        with self._projects.db.session() as session:
            found = session.exec(
                select(Amendment).where(Amendment.project == project.id, Amendment.state == "pending")
            ).first()
        if found is None:
            raise NotFound(f"project {project.name!r} has no amendment waiting for an answer")
        return found

    def _require_none_pending(self, project: Project) -> None:
        with self._projects.db.session() as session:
            found = session.exec(
                select(Amendment).where(Amendment.project == project.id, Amendment.state == "pending")
            ).first()
        if found is not None:
            raise Refused(
                f"project {project.name!r} has an amendment of {found.proposed_by} waiting for "
                f"{', '.join(self._waiting(project, found))}; answer or withdraw it first"
            )

    @staticmethod
    def _waiting(project: Project, amendment: Amendment) -> list[str]:
        return [m for m in project.members if m not in amendment.accepted_by]

    def _ours(self, project: Project, body: dict[str, Any], sender: str) -> Amendment:
        """Our pending amendment the request names (a member answers only ours)."""
        amendment_id = _checked_id(body.get("id"))
        with self._projects.db.session() as session:
            amendment = session.get(Amendment, amendment_id)
        if (
            amendment is None
            or amendment.project != project.id
            or amendment.proposed_by != self._projects.party
            or amendment.state != "pending"
        ):
            raise Refused(
                f"{self._projects.party} has no pending amendment {amendment_id} in project {project.name!r} "
                f"for {sender} to answer"
            )
        return amendment


def _names(amendment: Amendment) -> list[str]:
    return [str(d["name"]) for d in amendment.datasets]


def _checked_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise Refused("an amendment id is 32 hexadecimal characters")
    return value
