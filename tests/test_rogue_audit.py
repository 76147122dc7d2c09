"""Hole 10 of issue #14: the audit chain against whoever can write the database, and its anchors at partners.

An attacker with write access to a node's database (but not its home's `secrets/`) deletes entries and
recomputes the hashes; after the fix the chain is keyed (HMAC-SHA256, key in `secrets/audit.key`), so the
recomputation fails verify, and each job's audit head is held by the partner, so cutting the chain's tail is
detected too. Attacks run on a copy of a live node's home (verify is offline), so the sandbox stays honest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import DATABASE_URL, Federation

import fedbench
from fedbench import sandbox
from fedbench.errors import Refused
from fedbench.node.audit import AuditLog
from fedbench.node.config import NodeHome
from fedbench.store import Database

pytestmark = pytest.mark.skipif(DATABASE_URL is not None, reason="the attacks edit a copy of the SQLite file")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """A guest and a host with the demo data and the accepted `demo` project."""
    root = tmp_path_factory.mktemp("audit-sandbox")
    sandbox.up(root)
    yield Federation(root)
    sandbox.down(root)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbench", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _copy_home(source: NodeHome, target: Path) -> NodeHome:
    """An offline copy of a running node's home: node.json, secrets/, tls/ and a consistent SQLite snapshot."""
    target.mkdir(parents=True)
    shutil.copy2(source.config_file, target / "node.json")
    shutil.copytree(source.secrets_dir, target / "secrets")
    shutil.copytree(source.tls_dir, target / "tls")
    src, dst = sqlite3.connect(source.root / "fedbench.db"), sqlite3.connect(target / "fedbench.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return NodeHome(target)


def _canonical(row: sqlite3.Row, prev: str) -> bytes:
    """What an attacker who read our code hashes for one entry (the same fields as `node/audit.py`)."""
    ts = datetime.fromisoformat(row["ts"]).replace(tzinfo=UTC).isoformat()
    fields = {
        "id": row["id"],
        "ts": ts,
        "actor": row["actor"],
        "peer": row["peer"],
        "project": row["project"],
        "action": row["action"],
        "datasets": json.loads(row["datasets"]),
        "allowed": bool(row["allowed"]),
        "reason": row["reason"],
        "prev": prev,
    }
    return json.dumps(fields, sort_keys=True).encode()


def _plain(message: bytes) -> str:
    return hashlib.sha256(message).hexdigest()


def _guessed_key(message: bytes) -> str:
    return hmac.new(b"\x00" * 32, message, hashlib.sha256).hexdigest()


def _rechain(db: Path, start: int, digest: Callable[[bytes], str]) -> None:
    """The attacker relinks every entry from `start` on with `digest`, after its own edits."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute("select * from audit_event order by id").fetchall()
        prev = "0" * 64
        for row in rows:
            if row["id"] >= start:
                new = digest(_canonical(row, prev))
                con.execute(
                    "update audit_event set prev_hash = ?, hash = ? where id = ?", (prev, new, row["id"])
                )
                prev = new
            else:
                prev = row["hash"]
        con.commit()
    finally:
        con.close()


def _ids(db: Path) -> list[int]:
    con = sqlite3.connect(db)
    try:
        return [row[0] for row in con.execute("select id from audit_event order by id")]
    finally:
        con.close()


def _delete(db: Path, where: str, *params: object) -> None:
    con = sqlite3.connect(db)
    try:
        con.execute(f"delete from audit_event where {where}", params)
        con.commit()
    finally:
        con.close()


def _run_job(federation: Federation) -> str:
    wb = fedbench.connect(home=federation.home("guest").root)
    try:
        run = wb.project("demo").run("row_count", data="credit", force=True).wait(show_progress=False)
        return str(run.job_id)
    finally:
        wb.close()


def _audit_rows(federation: Federation, party: str, action: str, peer: str, job_id: str) -> pd.DataFrame:
    """`party`'s own audit entries of `action` with `peer` that name `job_id`."""
    wb = fedbench.connect(home=federation.home(party).root)
    try:
        audit = wb.audit()
    finally:
        wb.close()
    return audit[(audit["action"] == action) & (audit["peer"] == peer) & audit["reason"].str.contains(job_id)]


def _received_head(federation: Federation, party: str, sender: str, job_id: str) -> tuple[int, str]:
    """The head `sender` sent `party` for `job_id`, read from `party`'s own audit log; waits for it, and for
    the sender to have noted it as sent (it writes its heads file once the partner has taken the head)."""
    deadline = time.monotonic() + 60
    while True:
        held = _audit_rows(federation, party, "audit.head.received", sender, job_id)
        noted = _audit_rows(federation, sender, "audit.head.sent", party, job_id)
        if len(held) and len(noted[noted["allowed"]]):
            words = held.iloc[-1]["reason"].split()
            return int(words[words.index("entry") + 1]), words[words.index("MAC") + 1]
        assert time.monotonic() < deadline, f"{party} holds no audit head of {sender} for job {job_id}"
        time.sleep(0.5)


def test_deleting_entries_and_rehashing_fails_verify(demo: Federation, tmp_path: Path) -> None:
    home = _copy_home(demo.home("guest"), tmp_path / "guest")
    db = home.root / "fedbench.db"
    assert _cli("audit", "verify", "--home", str(home.root)).returncode == 0
    ids = _ids(db)
    victim = ids[len(ids) // 2]
    after = ids[ids.index(victim) + 1]
    _delete(db, "id = ?", victim)
    _rechain(db, after, _plain)
    tampered = _cli("audit", "verify", "--home", str(home.root))
    assert tampered.returncode == 1, tampered.stdout
    assert f"TAMPERED at entry {after}" in tampered.stdout


def test_a_rechain_with_a_guessed_key_fails_verify(demo: Federation, tmp_path: Path) -> None:
    home = _copy_home(demo.home("guest"), tmp_path / "guest")
    db = home.root / "fedbench.db"
    ids = _ids(db)
    victim = ids[len(ids) // 2]
    after = ids[ids.index(victim) + 1]
    _delete(db, "id = ?", victim)
    _rechain(db, after, _guessed_key)
    tampered = _cli("audit", "verify", "--home", str(home.root))
    assert tampered.returncode == 1 and f"TAMPERED at entry {after}" in tampered.stdout, tampered.stdout


def test_the_audit_key_is_a_0600_secret_and_not_in_the_database(demo: Federation) -> None:
    home = demo.home("guest")
    key_file = home.audit_key_file
    assert key_file.parent == home.secrets_dir
    assert oct(key_file.stat().st_mode & 0o777) == oct(0o600)
    key = json.loads(key_file.read_text())["key"]
    assert key.encode() not in (home.root / "fedbench.db").read_bytes()


def test_a_job_leaves_each_partner_holding_the_others_head(demo: Federation) -> None:
    job_id = _run_job(demo)
    entry, mac = _received_head(demo, "host", "guest", job_id)
    con = sqlite3.connect(demo.home("guest").root / "fedbench.db")
    try:
        (stored,) = con.execute("select hash from audit_event where id = ?", (entry,)).fetchone()
    finally:
        con.close()
    assert stored == mac
    _received_head(demo, "guest", "host", job_id)


def test_truncating_our_chain_after_a_job_is_detected(demo: Federation, tmp_path: Path) -> None:
    job_id = _run_job(demo)
    entry, _ = _received_head(demo, "host", "guest", job_id)
    home = _copy_home(demo.home("guest"), tmp_path / "guest")
    db = home.root / "fedbench.db"
    _delete(db, "id >= ?", entry)
    cut = _cli("audit", "verify", "--home", str(home.root))
    assert cut.returncode == 1 and f"TAMPERED at entry {entry}" in cut.stdout, cut.stdout
    assert "host" in cut.stdout

    home.audit_heads_file.unlink()
    alone = _cli("audit", "verify", "--home", str(home.root))
    assert alone.returncode == 0, alone.stdout
    heads = tmp_path / "host-heads.json"
    exported = _cli("audit", "export-heads", "--home", str(demo.home("host").root), "--out", str(heads))
    assert exported.returncode == 0, exported.stderr
    checked = _cli("audit", "verify", "--home", str(home.root), "--partner-heads", str(heads))
    assert checked.returncode == 1 and f"TAMPERED at entry {entry}" in checked.stdout, checked.stdout
    honest = _cli("audit", "verify", "--home", str(demo.home("guest").root), "--partner-heads", str(heads))
    assert honest.returncode == 0, honest.stdout
    asked = _cli("audit", "verify", "--home", str(home.root), "--ask-partners")
    assert asked.returncode == 1 and f"TAMPERED at entry {entry}" in asked.stdout, asked.stdout
    assert "held by host" in asked.stdout
    honest = _cli("audit", "verify", "--home", str(demo.home("guest").root), "--ask-partners")
    assert honest.returncode == 0 and "partner heads matched" in honest.stdout, honest.stdout


def test_a_rogue_partner_cannot_plant_heads(demo: Federation) -> None:
    wb = fedbench.connect(home=demo.home("guest").root)
    try:
        project_id = wb.project("demo").info["id"]
    finally:
        wb.close()
    token = (demo.home("host").secrets_dir / f"project-{project_id}.token").read_text().strip()
    rogue = demo.peer_client("host", "guest")
    job_id = _run_job(demo)
    _received_head(demo, "guest", "host", job_id)
    attempts = [
        ({"job_id": uuid.uuid4().hex, "entry": 1, "mac": "0" * 64}, "no job"),
        ({"job_id": job_id, "entry": 1, "mac": "0" * 64}, "already"),
        ({"job_id": job_id, "entry": -3, "mac": "zz"}, "entry"),
    ]
    try:
        for body, reason in attempts:
            with pytest.raises(Refused, match=reason):
                rogue.request("audit.head", body, project=project_id, token=token)
        held = rogue.request("audit.heads", {}, project=project_id, token=token)["heads"]
        assert held and {h["from"] for h in held} == {"host"} and {h["project"] for h in held} == {project_id}
        with pytest.raises(Refused, match="wrong token"):
            rogue.request("audit.heads", {}, project=project_id, token="x" * 43)
    finally:
        rogue.close()
    wb = fedbench.connect(home=demo.home("guest").root)
    try:
        audit = wb.audit()
        refused = audit[(audit["action"] == "audit.head") & ~audit["allowed"] & (audit["peer"] == "host")]
        assert len(refused) >= len(attempts)
    finally:
        wb.close()
    assert _cli("audit", "verify", "--home", str(demo.home("guest").root)).returncode == 0
    assert _received_head(demo, "guest", "host", _run_job(demo))


def _home_with_plain_log(tmp_path: Path, entries: int) -> tuple[Database, NodeHome]:
    """A node home whose log was written before audit keys existed (hash-chained only)."""
    home = NodeHome(tmp_path / "node")
    home.root.mkdir()
    db = Database(f"sqlite:///{home.root / 'fedbench.db'}")
    legacy = AuditLog(db)
    for n in range(entries):
        legacy.record(actor="admin", action="datasets.register", allowed=True, reason=f"old {n}")
    return db, home


def test_an_old_home_is_keyed_from_a_recorded_point(tmp_path: Path) -> None:
    db, home = _home_with_plain_log(tmp_path, 3)
    with db:
        log = AuditLog.for_home(db, home)
        assert oct(home.audit_key_file.stat().st_mode & 0o777) == oct(0o600)
        assert json.loads(home.audit_key_file.read_text())["keyed_after"] == 3
        for n in range(2):
            log.record(actor="admin", action="users.add", allowed=True, reason=f"new {n}")
        check = log.verify()
        assert check.ok and check.entries == 6
        assert any("up to 3 predate the audit key" in note for note in check.notes)
        again = AuditLog.for_home(db, home)
        assert len(again.events()) == 6, "an existing key is reused, never replaced"
    _rechain(home.root / "fedbench.db", 2, _plain)
    with Database(f"sqlite:///{home.root / 'fedbench.db'}") as db2:
        check = AuditLog.for_home(db2, home, create_key=False).verify()
    assert not check.ok and check.first_bad_id == 4, check
    assert "MAC" in check.problem


def test_a_keyed_chain_without_its_key_fails_verify(tmp_path: Path) -> None:
    db, home = _home_with_plain_log(tmp_path, 0)
    with db:
        log = AuditLog.for_home(db, home)
        log.record(actor="admin", action="users.add", allowed=True)
        assert log.verify().ok
        home.audit_key_file.unlink()
        check = AuditLog.for_home(db, home, create_key=False).verify()
    assert not check.ok and check.first_bad_id == 1 and "audit key" in check.problem, check


def test_a_head_no_longer_in_the_chain_is_reported(tmp_path: Path) -> None:
    db, home = _home_with_plain_log(tmp_path, 0)
    with db:
        log = AuditLog.for_home(db, home)
        log.record(actor="admin", action="users.add", allowed=True)
        head = log.head("host", "p1", "j1")
        assert head is not None
        log.note_sent(head)
        assert log.verify().ok
        assert AuditLog.for_home(db, home).sent_heads() == [head]
    _delete(home.root / "fedbench.db", "id >= ?", head.entry)
    with Database(f"sqlite:///{home.root / 'fedbench.db'}") as db2:
        check = AuditLog.for_home(db2, home, create_key=False).verify()
    assert not check.ok and check.first_bad_id == head.entry and "held by host" in check.problem, check
