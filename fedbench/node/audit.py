"""The audit log: every cross-party request and every local change, append-only and tamper-evident.

Each entry carries the MAC of the previous one (a keyed chain: HMAC-SHA256 under `secrets/audit.key`, a
0600 file that never enters the database), so whoever can write the database but not the node's secrets can
neither edit, delete nor reorder an entry without breaking the chain, nor recompute it. A home created before
the key existed keeps its older entries hash-chained only; the key file records where the keyed part starts,
and `verify()` says so. Cutting the chain's tail is caught through its anchors: the heads (entry number and
MAC) this node sent to its partners at the end of each job (`audit_anchor.py`), kept outside the database in
`secrets/audit-heads.jsonl` and held by the partners in their own logs. Only the node process appends, under
one lock, so the chain has no forks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlmodel import col, select

from fedbench.errors import FedbenchError
from fedbench.node.config import NodeHome
from fedbench.store import AuditEvent, Database

__all__ = ["AuditError", "AuditKey", "AuditLog", "ChainCheck", "Head"]

_GENESIS = "0" * 64
KEYED = "audit.keyed"
"""The action of the first entry of the keyed part of the chain."""


class AuditError(FedbenchError):
    """The audit key or heads file is unreadable, or a partner's heads file is not one."""

    code = "audit"


@dataclass(frozen=True)
class ChainCheck:
    """The result of verifying the chain: `ok`, how many entries were checked, the first bad one, and notes."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    problem: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Head:
    """A point of a node's chain another party can hold: entry `entry` has MAC `mac` (and who holds it)."""

    entry: int
    mac: str
    holder: str
    project: str = ""
    job: str = ""
    at: str = ""

    def to_dict(self) -> dict[str, object]:
        """The JSON form, for the heads file and `fedbench audit export-heads`."""
        return {
            "entry": self.entry,
            "mac": self.mac,
            "holder": self.holder,
            "project": self.project,
            "job": self.job,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, data: object) -> Head:
        """Read one head back; a malformed one raises AuditError naming what is wrong."""
        if not isinstance(data, dict):
            raise AuditError(f"an audit head must be a JSON object, not {data!r}")
        entry, mac = data.get("entry"), data.get("mac")
        if not isinstance(entry, int) or isinstance(entry, bool) or entry < 1:
            raise AuditError(f"an audit head's entry must be a positive integer, not {entry!r}")
        if not isinstance(mac, str) or len(mac) != 64 or any(c not in "0123456789abcdef" for c in mac):
            raise AuditError(f"an audit head's mac must be 64 lowercase hex digits, not {mac!r}")
        return cls(
            entry,
            mac,
            str(data.get("holder", "")),
            str(data.get("project", "")),
            str(data.get("job", "")),
            str(data.get("at", "")),
        )


@dataclass(frozen=True)
class AuditKey:
    """The node's audit MAC key and where the keyed part of its chain starts (after entry `keyed_after`)."""

    key: bytes
    keyed_after: int
    keyed_after_hash: str

    @classmethod
    def load(cls, path: Path) -> AuditKey | None:
        """The key stored at `path`, or None when there is none."""
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(bytes.fromhex(data["key"]), int(data["keyed_after"]), str(data["keyed_after_hash"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditError(
                f"the audit key {path} is unreadable ({exc}); restore it from the node's backup"
            ) from None

    @classmethod
    def create(cls, path: Path, keyed_after: int, keyed_after_hash: str) -> AuditKey:
        """A fresh 256-bit key written to `path` with mode 0600 (never overwriting one)."""
        made = cls(secrets.token_bytes(32), keyed_after, keyed_after_hash)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {
            "format": 1,
            "key": made.key.hex(),
            "keyed_after": keyed_after,
            "keyed_after_hash": keyed_after_hash,
            "created_at": datetime.now(UTC).isoformat(),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return made


def _message(event: AuditEvent, prev_hash: str) -> bytes:
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
    return json.dumps(fields, sort_keys=True).encode()


class AuditLog:
    """Appends and reads the audit events of one node's database, chained under the node's audit key."""

    def __init__(
        self,
        db: Database,
        key: AuditKey | None = None,
        *,
        key_file: Path | None = None,
        heads_file: Path | None = None,
    ) -> None:
        self._db = db
        self._key = key
        self._key_file = key_file
        self._heads_file = heads_file
        self._lock = threading.Lock()

    @classmethod
    def for_home(cls, db: Database, home: NodeHome, *, create_key: bool = True) -> AuditLog:
        """The log of a node home, keyed by its `secrets/audit.key` (created, and the chain keyed, if absent)."""
        key = AuditKey.load(home.audit_key_file)
        log = cls(db, key, key_file=home.audit_key_file, heads_file=home.audit_heads_file)
        if key is None and create_key:
            last = log._last()
            log._key = AuditKey.create(
                home.audit_key_file, (last.id or 0) if last else 0, last.hash if last else _GENESIS
            )
            before = f"entries up to {log._key.keyed_after} are hash-chained only" if last else "a new log"
            log.record(actor="node", action=KEYED, allowed=True, reason=f"chain keyed from here ({before})")
        return log

    def _digest(self, event: AuditEvent, prev_hash: str) -> str:
        message = _message(event, prev_hash)
        if self._key is not None and (event.id or 0) > self._key.keyed_after:
            return hmac.new(self._key.key, message, hashlib.sha256).hexdigest()
        return hashlib.sha256(message).hexdigest()

    def _last(self) -> AuditEvent | None:
        with self._db.session() as session:
            last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
            if last is not None:
                session.expunge(last)
        return last

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
            event.hash = self._digest(event, prev_hash)
            session.add(event)
            session.flush()
            session.refresh(event)
            session.expunge(event)
        return event

    def head(self, holder: str = "", project: str = "", job: str = "") -> Head | None:
        """The chain's latest point (entry and MAC), to hand to `holder`; None while the log is empty."""
        last = self._last()
        if last is None or last.id is None:
            return None
        return Head(last.id, last.hash, holder, project, job, datetime.now(UTC).isoformat())

    def note_sent(self, head: Head) -> None:
        """Keep a head we handed to a partner outside the database (append-only, 0600), then audit it."""
        if self._heads_file is not None:
            self._heads_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self._heads_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(json.dumps(head.to_dict()) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        self.record(
            actor="node",
            peer=head.holder,
            project=head.project or None,
            action="audit.head.sent",
            allowed=True,
            reason=f"job {head.job}: our audit head is entry {head.entry} with MAC {head.mac}",
        )

    def sent_heads(self) -> list[Head]:
        """The heads this node handed to partners, from its heads file (outside the database)."""
        if self._heads_file is None or not self._heads_file.exists():
            return []
        heads = []
        for number, line in enumerate(self._heads_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                heads.append(Head.from_dict(json.loads(line)))
            except (ValueError, AuditError) as exc:
                raise AuditError(f"line {number} of {self._heads_file} is not an audit head: {exc}") from None
        return heads

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

    def verify(self, partner_heads: Sequence[Head] = ()) -> ChainCheck:
        """Walk the keyed chain, then check every head we sent (and `partner_heads`) is still a point of it.

        The first entry whose link or MAC does not match is reported; a head whose entry is gone or differs
        means the chain was cut or replaced after it was handed out.
        """
        events = self.events()
        notes = self._notes(events)
        bad = self._walk(events)
        if bad is None:
            bad = self._check_heads(events, [*self.sent_heads(), *partner_heads])
        if bad is None:
            return ChainCheck(True, len(events), notes=notes)
        return ChainCheck(False, len(events), bad[0], bad[1], notes)

    def _walk(self, events: list[AuditEvent]) -> tuple[int, str] | None:
        key = self._key
        if key is None:
            keyed = next((e for e in events if e.action == KEYED), None)
            if keyed is not None and keyed.id is not None:
                return keyed.id, (
                    f"the chain is keyed from here, but the audit key {self._key_file} is missing: "
                    "restore it from the node's backup"
                )
        prev_hash = _GENESIS
        for event in events:
            if event.id is None:
                continue
            if event.prev_hash != prev_hash:
                return event.id, "its link to the previous entry is broken (an entry before it was deleted)"
            if event.hash != self._digest(event, prev_hash):
                what = "MAC" if key is not None and event.id > key.keyed_after else "hash"
                return event.id, f"its content does not match its {what}"
            if key is not None and event.id == key.keyed_after and event.hash != key.keyed_after_hash:
                return event.id, "it is not the entry the audit key file says the keyed part follows"
            prev_hash = event.hash
        last = events[-1].id if events and events[-1].id is not None else 0
        if key is not None and last <= key.keyed_after:
            return key.keyed_after + 1, (
                f"it is missing: the audit key was created after entry {key.keyed_after}, so the log must go "
                f"on past it, but it ends at entry {last} (entries were deleted)"
            )
        return None

    def _check_heads(self, events: list[AuditEvent], heads: list[Head]) -> tuple[int, str] | None:
        by_id = {e.id: e.hash for e in events}
        last = events[-1].id if events and events[-1].id is not None else 0
        for head in sorted(heads, key=lambda h: h.entry):
            held = f"the head held by {head.holder or 'a partner'}" + (
                f" (job {head.job})" if head.job else ""
            )
            if head.entry not in by_id:
                cut = f"the log ends at entry {last}" if head.entry > last else "it was deleted"
                return head.entry, f"it is missing, but {held} names it: {cut}"
            if by_id[head.entry] != head.mac:
                return head.entry, f"its MAC differs from {held}: the chain was replaced"
        return None

    def _notes(self, events: list[AuditEvent]) -> tuple[str, ...]:
        key = self._key
        if key is None:
            return (
                f"the chain is not keyed (no audit key at {self._key_file}); the node creates one at start",
            )
        if key.keyed_after > 0 and events:
            return (
                f"entries up to {key.keyed_after} predate the audit key and are hash-chained only; "
                f"entries from {key.keyed_after + 1} on are keyed",
            )
        return ()
