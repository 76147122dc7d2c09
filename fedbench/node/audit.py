"""The audit log: every cross-party request and every local change, append-only and tamper-evident.

Each entry carries the hash of the previous one (a hash chain), so editing, deleting or reordering any entry
breaks every hash after it; `verify()` (and `fedbench audit verify`) walks the chain and names the first bad
entry. Only the node process appends, under one lock, so the chain has no forks.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from sqlmodel import col, select

from fedbench.store import AuditEvent, Database

__all__ = ["AuditLog", "ChainCheck"]

_GENESIS = "0" * 64


@dataclass(frozen=True)
class ChainCheck:
    """The result of verifying the chain: `ok`, how many entries were checked, and the first bad one."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    problem: str = ""


def _entry_hash(event: AuditEvent, prev_hash: str) -> str:
    fields = {
        "id": event.id,
        "ts": event.ts.isoformat(),
        "actor": event.actor,
        "peer": event.peer,
        "project": event.project,
        "action": event.action,
        "datasets": list(event.datasets),
        "allowed": bool(event.allowed),
        "reason": event.reason,
        "prev": prev_hash,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class AuditLog:
    """Appends and reads the audit events of one node's database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()

    def record(
        self,
        *,
        actor: str,
        action: str,
        allowed: bool,
        reason: str = "",
        peer: str | None = None,
        project: str | None = None,
        datasets: Iterable[str] = (),
    ) -> AuditEvent:
        """Append one event, chained to the last one."""
        with self._lock, self._db.session() as session:
            last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
            prev_hash = last.hash if last is not None else _GENESIS
            event = AuditEvent(
                actor=actor,
                peer=peer,
                project=project,
                action=action,
                datasets=sorted(datasets),
                allowed=allowed,
                reason=reason,
                prev_hash=prev_hash,
            )
            session.add(event)
            session.flush()
            event.hash = _entry_hash(event, prev_hash)
            session.add(event)
            session.flush()
            session.refresh(event)
            session.expunge(event)
        return event

    def events(self, project: str | None = None) -> list[AuditEvent]:
        """The events in order, optionally of one project."""
        with self._db.session() as session:
            query = select(AuditEvent).order_by(col(AuditEvent.id))
            if project is not None:
                query = query.where(AuditEvent.project == project)
            rows = list(session.exec(query).all())
            for row in rows:
                session.expunge(row)
        return rows

    def frame(self, project: str | None = None) -> pd.DataFrame:
        """The events as a DataFrame, for notebooks and dashboards."""
        columns = ["id", "ts", "actor", "peer", "project", "action", "datasets", "allowed", "reason"]
        rows = [{c: getattr(e, c) for c in columns} for e in self.events(project)]
        return pd.DataFrame(rows, columns=columns)

    def verify(self) -> ChainCheck:
        """Walk the whole chain; the first entry whose links or hash do not match is reported."""
        prev_hash = _GENESIS
        events = self.events()
        for event in events:
            if event.prev_hash != prev_hash:
                return ChainCheck(False, len(events), event.id, "its link to the previous entry is broken")
            if event.hash != _entry_hash(event, prev_hash):
                return ChainCheck(False, len(events), event.id, "its content does not match its hash")
            prev_hash = event.hash
        return ChainCheck(True, len(events))
