"""Anchoring the audit chain at the partners: each job's end hands our chain's head to the job's other parties.

When a job ends here, this node sends every other party of the job its audit head (latest entry number and
MAC) with the project-scoped request `audit.head`; the receiver keeps it as an entry of its own log
(`audit.head.received`), and we keep what we sent outside our database (`AuditLog.note_sent`). Whoever cuts
our chain's tail then contradicts a head the partner holds: `fedbench audit export-heads` on the partner's
side and `fedbench audit verify --partner-heads FILE` on ours show it, or `verify --ask-partners`, which asks
each partner over the federation (`audit.heads`) for the heads of ours it holds. A partner may hand us one head per job
it is a party of; anything else is refused (and audited by `ProjectService.handle`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from fedbench.errors import FedbenchError, Refused
from fedbench.net.certs import PartyCredentials
from fedbench.net.peer import PeerClient
from fedbench.net.tls import TlsMaterial
from fedbench.node.audit import AuditError, AuditLog, Head
from fedbench.node.config import NodeHome
from fedbench.node.projects import ProjectService
from fedbench.store import AuditEvent, Database, Job, Project

__all__ = ["AuditAnchors", "ask_partners", "export_heads", "load_partner_heads"]

log = logging.getLogger("fedbench.audit")

RECEIVED = "audit.head.received"
_HEX = re.compile(r"[0-9a-f]{64}")
_JOB_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RECEIVED_REASON = re.compile(r"job (\S+): (\S+)'s audit head is entry (\d+) with MAC ([0-9a-f]{64})")


class AuditAnchors:
    """Sends our head to a job's partners when the job ends here, and keeps the heads partners send us."""

    def __init__(
        self,
        party: str,
        db: Database,
        audit: AuditLog,
        projects: ProjectService,
        request: Callable[[str, str, str | None, str | None, dict[str, Any]], Any],
    ) -> None:
        self.party = party
        self._db = db
        self._audit = audit
        self._projects = projects
        self._request = request
        self._lock = threading.Lock()
        projects.add_handler("audit.head", self._on_head)
        projects.add_handler("audit.heads", self._on_heads)

    def job_ended(self, spec: dict[str, Any], state: str) -> None:
        """Hand our audit head to every other party of the job (never raises: the job is already over)."""
        try:
            project_id, job_id = str(spec["project"]), str(spec["job_id"])
            partners = sorted({p for parties in spec["roles"].values() for p in parties} - {self.party})
            for partner in partners:
                self._send(partner, project_id, job_id)
        except Exception:
            log.exception("could not anchor the audit chain after job %s (%s)", spec.get("job_id"), state)

    def _send(self, partner: str, project_id: str, job_id: str) -> None:
        head = self._audit.head(partner, project_id, job_id)
        if head is None:
            return
        body = {"job_id": job_id, "entry": head.entry, "mac": head.mac}
        try:
            self._request(partner, "audit.head", project_id, self._projects.token_for(project_id), body)
        except FedbenchError as exc:
            log.warning("%s did not take our audit head for job %s: %s", partner, job_id, exc)
            self._audit.record(
                actor="node",
                peer=partner,
                project=project_id,
                action="audit.head.sent",
                allowed=False,
                reason=f"job {job_id}: {partner} did not take our audit head: {exc}",
            )
            return
        self._audit.note_sent(head)

    def _on_head(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        """Keep a partner's head for one job of this project it is a party of, once."""
        if project is None:
            raise Refused("an audit head belongs to a project")
        job_id, entry, mac = body.get("job_id"), body.get("entry"), body.get("mac")
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            raise Refused(f"an audit head names its job by id, not {str(job_id)[:80]!r}")
        if not isinstance(entry, int) or isinstance(entry, bool) or entry < 1:
            raise Refused(f"an audit head's entry must be a positive integer, not {str(entry)[:80]!r}")
        if not isinstance(mac, str) or not _HEX.fullmatch(mac):
            raise Refused("an audit head's MAC must be 64 lowercase hex digits")
        with self._db.session() as session:
            job = session.get(Job, job_id)
        if job is None or job.project != project.id or not job.spec:
            raise Refused(f"no job {job_id!r} of project {project.name!r} here")
        parties = {p for names in job.spec.get("roles", {}).values() for p in names}
        if sender not in parties:
            raise Refused(f"{sender!r} is not a party of job {job_id!r}, so it hands us no audit head for it")
        with self._lock:
            if self._holds(sender, project.id, job_id):
                raise Refused(f"we already hold {sender!r}'s audit head for job {job_id!r}; one per job")
            event = self._audit.record(
                actor=sender,
                peer=sender,
                project=project.id,
                action=RECEIVED,
                allowed=True,
                reason=f"job {job_id}: {sender}'s audit head is entry {entry} with MAC {mac}",
            )
        return {"held_as": event.id}

    def _on_heads(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        """The heads of `sender` we hold for this project, so it can check its own chain against them."""
        if project is None:
            raise Refused("audit heads are asked for per project")
        heads = export_heads(self._audit, self.party)["heads"]
        return {"heads": [h for h in heads if h["from"] == sender and h["project"] == project.id]}

    def _holds(self, sender: str, project_id: str, job_id: str) -> bool:
        with self._db.session() as session:
            query = select(AuditEvent.id).where(
                AuditEvent.action == RECEIVED,
                AuditEvent.peer == sender,
                AuditEvent.project == project_id,
                col(AuditEvent.reason).startswith(f"job {job_id}: ", autoescape=True),
            )
            return session.exec(query.limit(1)).first() is not None


def export_heads(audit: AuditLog, party: str) -> dict[str, Any]:
    """The heads partners handed this node (`party`), as the JSON `fedbench audit export-heads` writes."""
    heads = []
    for event in audit.events():
        if event.action != RECEIVED or not event.allowed:
            continue
        match = _RECEIVED_REASON.fullmatch(event.reason)
        if match is None or match.group(2) != event.peer:
            continue
        heads.append(
            {
                "from": event.peer,
                "entry": int(match.group(3)),
                "mac": match.group(4),
                "project": event.project or "",
                "job": match.group(1),
                "at": event.ts.isoformat(),
            }
        )
    return {
        "format": 1,
        "party": party,
        "exported_at": datetime.now(UTC).isoformat(),
        "heads": heads,
    }


def ask_partners(home: NodeHome, db: Database, party: str) -> tuple[list[Head], list[str]]:
    """Ask every partner of our active projects (`audit.heads`) for the heads of ours it holds.

    Returns the heads and one note per partner that could not answer. A partner's answer can only raise an
    alarm (a head our chain lacks), never hide a change of ours: the heads it returns are checked, not trusted.
    """
    config = home.load_config()
    key, cert, ca = PartyCredentials.from_dir(home.tls_dir).load()
    tls = TlsMaterial(key=key, cert=cert, ca=ca)
    with db.session() as session:
        projects = [
            p for p in session.exec(select(Project)).all() if p.state == "active" and party in p.members
        ]
    heads: list[Head] = []
    notes: list[str] = []
    for project in projects:
        token_file = home.secrets_dir / f"project-{project.id}.token"
        if not token_file.exists():
            notes.append(
                f"no token for project {project.name!r} in {home.secrets_dir}: its partners were not asked"
            )
            continue
        for partner in sorted(set(project.members) - {party}):
            address = config.peers.get(partner)
            if address is None:
                notes.append(
                    f"{partner!r} is not a configured peer: not asked about project {project.name!r}"
                )
                continue
            client = PeerClient(party, partner, address, tls)
            try:
                answer = client.request(
                    "audit.heads", {}, project=project.id, token=token_file.read_text().strip(), timeout=30.0
                )
                for item in answer.get("heads", []) if isinstance(answer, dict) else []:
                    if isinstance(item, dict) and item.get("from") == party:
                        heads.append(Head.from_dict({**item, "holder": partner}))
            except (FedbenchError, AuditError) as exc:
                notes.append(f"{partner} did not give its heads for project {project.name!r}: {exc}")
            finally:
                client.close()
    return heads, notes


def load_partner_heads(path: Path, ours: str) -> list[Head]:
    """The heads of `ours` that a partner's export (`path`) says it holds."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read the partner's heads {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("heads"), list):
        raise AuditError(f"{path} is not a heads file of `fedbench audit export-heads` (format 1)")
    holder = str(data.get("party", path.name))
    heads = []
    for item in data["heads"]:
        if isinstance(item, dict) and item.get("from") == ours:
            heads.append(Head.from_dict({**item, "holder": holder}))
    return heads
