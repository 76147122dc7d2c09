"""Projects between real nodes: the lifecycle, and every attack on it refused, audited, and leaking nothing.

Attacks are sent raw over the mutual-TLS channel from the test process holding a party's certificate, so
they bypass the attacker's own node: the victim's node alone must refuse them.
"""

from __future__ import annotations

import itertools
import stat
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import MetaData, text
from test_rogue_projects import count_pipeline, honest_spec, psi_pipeline

import fedbench
from fedbench.errors import NotFound, Refused
from fedbench.store import Database

_names = itertools.count()


def _table(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"c{i}" for i in range(n)], "x": rng.normal(size=n)})


@pytest.fixture
def project(trio):
    """A fresh active project between guest and host, each with one authorised dataset of its own."""
    suffix = next(_names)
    guest, host = (
        fedbench.connect(home=trio.home("guest").root),
        fedbench.connect(home=trio.home("host").root),
    )
    guest.datasets.upload(_table(), name=f"g{suffix}", id_column="id")
    host.datasets.upload(_table(seed=1), name=f"h{suffix}", id_column="id")
    guest.projects.propose(f"p{suffix}", partners="host", datasets=[f"g{suffix}"], purpose="test", psi_runs=1)
    host.projects.accept(f"p{suffix}", datasets=[f"h{suffix}"])
    return guest.project(f"p{suffix}"), host.project(f"p{suffix}"), f"g{suffix}", f"h{suffix}"


def _database(federation, party: str) -> Database:
    """The party node's metadata database (SQLite in its home, or FEDBENCH_TEST_DATABASE_URL's server)."""
    home = federation.home(party)
    return Database(home.database_url(home.load_config()))


def _stored_text(federation, party: str) -> bytes:
    """Everything the party's store holds: the SQLite files' bytes, or every row of every table."""
    root = federation.home(party).root
    if (root / "fedbench.db").exists():
        wal = root / "fedbench.db-wal"
        return (root / "fedbench.db").read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    with _database(federation, party) as db, db.engine.connect() as conn:
        tables = MetaData()
        tables.reflect(conn)
        return repr([conn.execute(table.select()).all() for table in tables.sorted_tables]).encode()


def _token(federation, party: str, project_id: str) -> str:
    return (federation.home(party).secrets_dir / f"project-{project_id}.token").read_text()


def _submit(federation, sender: str, project_id: str, token: str | None, **body):
    request = {"job_id": uuid.uuid4().hex, "use": "train", "datasets": {}, "psi_rows": {}, **body}
    client = federation.peer_client(sender, "host")
    return client.request("job.submit", request, project=project_id, token=token)


def _host_refusals(federation, project_id: str) -> pd.DataFrame:
    audit = fedbench.connect(home=federation.home("host").root).audit()
    return audit[(audit["project"] == project_id) & ~audit["allowed"]]


def test_proposal_acceptance_and_token_stored_only_as_hash(trio, project):
    guest_view, host_view, g, h = project
    assert guest_view.state == host_view.state == "active"
    assert {d["name"] for d in host_view.info["datasets"]["guest"]} == {g}
    assert {d["name"] for d in guest_view.info["datasets"]["host"]} == {h}
    project_id = guest_view.info["id"]
    token = _token(trio, "guest", project_id)
    assert token == _token(trio, "host", project_id) and len(token) == 64
    for party in ("guest", "host"):
        path = trio.home(party).secrets_dir / f"project-{project_id}.token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert token.encode() not in _stored_text(trio, party)
    spec = honest_spec(guest_view.info, count_pipeline({"guest": g, "host": h}))
    admitted = _submit(trio, "guest", project_id, token, spec=spec)
    assert admitted["admitted"] is True


def test_pending_proposal_is_listed_and_a_job_before_acceptance_is_refused(trio):
    guest, host = (
        fedbench.connect(home=trio.home("guest").root),
        fedbench.connect(home=trio.home("host").root),
    )
    guest.datasets.upload(_table(), name="early", id_column="id")
    guest.projects.propose("unaccepted", partners="host", datasets=["early"])
    assert "unaccepted" in [p.name for p in host.projects.pending()]
    project_id = guest.project("unaccepted").info["id"]
    with pytest.raises(Refused, match="pending"):
        _submit(trio, "guest", project_id, _token(trio, "guest", project_id))
    with pytest.raises(Refused, match="proposed"):
        guest.project("unaccepted").authorize_job("train", {})
    assert not _host_refusals(trio, project_id).empty
    host.projects.reject("unaccepted", reason="not now")
    assert guest.project("unaccepted").state == "rejected"


def test_revoked_project_refuses_everything_and_cancels_admitted_jobs(trio, project):
    guest_view, host_view, g, h = project
    project_id = guest_view.info["id"]
    job = guest_view.authorize_job("train", {})
    host_view.revoke(reason="partner left")
    assert guest_view.refresh().state == "revoked"
    with pytest.raises(Refused, match="revoked"):
        _submit(trio, "guest", project_id, _token(trio, "guest", project_id))
    with pytest.raises(Refused, match="revoked"):
        guest_view.authorize_job("train", {"guest": [g]})
    refusals = _host_refusals(trio, project_id)
    assert refusals["reason"].str.contains("revoked").any()
    for party in ("guest", "host"):
        with _database(trio, party) as db, db.engine.connect() as conn:
            state = conn.execute(text("select state from job where id = :id"), {"id": job["job_id"]}).scalar()
        assert state == "cancelled"


def test_token_used_from_a_non_member_certificate_is_refused(trio, project):
    guest_view, _, _, h = project
    project_id = guest_view.info["id"]
    stolen = _token(trio, "guest", project_id)
    with pytest.raises(Refused, match="not a member") as info:
        _submit(trio, "mallory", project_id, stolen, datasets={"host": [h]})
    assert h not in str(info.value), "a refusal names nothing of the victim's data"
    assert _host_refusals(trio, project_id)["actor"].eq("mallory").any()


def test_token_of_one_project_used_for_another_is_refused(trio, project):
    first = project[0]
    other_id = first.info["id"]
    guest = fedbench.connect(home=trio.home("guest").root)
    guest.datasets.upload(_table(), name="second-ds", id_column="id")
    guest.projects.propose("second", partners="host", datasets=["second-ds"])
    second_id = guest.project("second").info["id"]
    fedbench.connect(home=trio.home("host").root).projects.accept("second", datasets=[])
    with pytest.raises(Refused, match="wrong token"):
        _submit(trio, "guest", second_id, _token(trio, "guest", other_id))
    with pytest.raises(Refused, match="no project token"):
        _submit(trio, "guest", second_id, None)
    assert _host_refusals(trio, second_id)["reason"].str.contains("wrong token").any()


def test_dataset_not_authorised_or_replaced_is_refused(trio, project):
    guest_view, _, g, h = project
    project_id = guest_view.info["id"]
    token = _token(trio, "guest", project_id)
    host = fedbench.connect(home=trio.home("host").root)
    host.datasets.upload(_table(seed=5), name=f"{h}-private", id_column="id")
    private = honest_spec(guest_view.info, count_pipeline({"guest": g, "host": f"{h}-private"}))
    with pytest.raises(Refused, match="not authorised"):
        _submit(trio, "guest", project_id, token, spec=private)
    host.datasets.delete(h)
    host.datasets.upload(_table(seed=9), name=h, id_column="id")
    with pytest.raises(Refused, match="changed since it was authorised"):
        _submit(
            trio,
            "guest",
            project_id,
            token,
            spec=honest_spec(guest_view.info, count_pipeline({"guest": g, "host": h})),
        )
    assert len(_host_refusals(trio, project_id)) >= 2


def test_use_not_allowed_is_refused(trio):
    guest, host = (
        fedbench.connect(home=trio.home("guest").root),
        fedbench.connect(home=trio.home("host").root),
    )
    guest.datasets.upload(_table(), name="psi-only-ds", id_column="id")
    guest.projects.propose("psi-only", partners="host", datasets=["psi-only-ds"], uses=["psi"])
    host.projects.accept("psi-only", datasets=[])
    project_id = guest.project("psi-only").info["id"]
    with pytest.raises(Refused, match="use 'train' is not allowed"):
        _submit(trio, "guest", project_id, _token(trio, "guest", project_id), use="train")
    with pytest.raises(Refused, match="not allowed"):
        guest.project("psi-only").authorize_job("train", {})


def test_psi_quota_and_declared_size_are_enforced(trio, project):
    guest_view, _, g, h = project
    project_id = guest_view.info["id"]
    token = _token(trio, "guest", project_id)
    declared = guest_view.refresh().quotas["max_psi_rows"]
    assert declared == {"guest": 50, "host": 50}
    data = {"guest": g, "host": h}
    _submit(trio, "guest", project_id, token, spec=honest_spec(guest_view.info, psi_pipeline(data)))
    with pytest.raises(Refused, match="quota exhausted"):
        _submit(trio, "guest", project_id, token, spec=honest_spec(guest_view.info, psi_pipeline(data)))
    assert _host_refusals(trio, project_id)["reason"].str.contains("quota exhausted").any()
    assert guest_view.usage()["psi_runs"] == 0, "raw requests bypassed the guest's node: it counted nothing"
    guest = fedbench.connect(home=trio.home("guest").root)
    guest.projects.propose(
        f"{guest_view.name}-capped", partners="host", datasets=[g], max_psi_rows={"guest": 10}
    )
    fedbench.connect(home=trio.home("host").root).projects.accept(f"{guest_view.name}-capped", datasets=[h])
    capped = guest.project(f"{guest_view.name}-capped").info
    with pytest.raises(Refused, match="more than its declared maximum of 10"):
        _submit(
            trio,
            "guest",
            capped["id"],
            _token(trio, "guest", capped["id"]),
            spec=honest_spec(capped, psi_pipeline(data)),
        )
    assert _host_refusals(trio, capped["id"])["reason"].str.contains("declared maximum").any()


def test_daily_job_quota(trio):
    guest, host = (
        fedbench.connect(home=trio.home("guest").root),
        fedbench.connect(home=trio.home("host").root),
    )
    guest.datasets.upload(_table(), name="quota-ds", id_column="id")
    guest.projects.propose("two-a-day", partners="host", datasets=["quota-ds"], jobs_per_day=2)
    host.projects.accept("two-a-day", datasets=[])
    project = guest.project("two-a-day")
    project.authorize_job("train", {})
    project.authorize_job("train", {})
    with pytest.raises(Refused, match="2 jobs per day"):
        project.authorize_job("train", {})
    assert project.usage()["jobs_today"] == 2


def test_suspend_then_resume_only_by_the_suspender(trio, project):
    guest_view, host_view, g, _ = project
    host_view.suspend("audit in progress")
    assert guest_view.refresh().state == "suspended"
    with pytest.raises(Refused, match="suspended"):
        guest_view.authorize_job("train", {})
    with pytest.raises(Refused, match="only they can resume"):
        guest_view.resume()
    host_view.resume()
    assert guest_view.refresh().state == "active"
    assert guest_view.authorize_job("train", {})["job_id"]


def test_users_see_only_their_datasets_and_projects_and_viewers_cannot_run(trio, project):
    admin = fedbench.connect(home=trio.home("guest").root)
    alice = fedbench.connect(
        home=trio.home("guest").root, token=admin.add_user(f"alice{next(_names)}", "analyst")
    )
    bob = fedbench.connect(
        home=trio.home("guest").root, token=admin.add_user(f"bob{next(_names)}", "analyst")
    )
    vera_name = f"vera{next(_names)}"
    vera = fedbench.connect(home=trio.home("guest").root, token=admin.add_user(vera_name, "viewer"))
    alice.datasets.upload(_table(), name=f"alice-data-{next(_names)}", id_column="id")
    (own,) = alice.datasets.list()
    assert bob.datasets.list() == []
    with pytest.raises(NotFound):
        bob.datasets.get(own.name)
    guest_view = project[0]
    with pytest.raises(NotFound):
        bob.project(guest_view.name)
    assert bob.projects.list() == []
    with pytest.raises(Refused, match="viewer"):
        vera.datasets.upload(_table(), name="nope", id_column="id")
    admin.project(guest_view.name).add_member(vera_name)
    assert vera.project(guest_view.name).state == "active"
    with pytest.raises(Refused, match="viewer"):
        vera.project(guest_view.name).authorize_job("train", {})
    audit = admin.audit()
    assert ((audit["action"] == "datasets.register") & ~audit["allowed"]).any()


def test_tampered_audit_log_fails_verify(trio, project):
    home = trio.home("host").root

    def verify():
        return subprocess.run(
            [sys.executable, "-m", "fedbench", "audit", "verify", "--home", str(home)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    intact = verify()
    assert intact.returncode == 0 and "intact" in intact.stdout
    flip = text("update audit_event set allowed = not allowed where id = :id")
    with _database(trio, "host") as db:
        with db.engine.begin() as conn:
            second_id = conn.execute(text("select min(id) from audit_event")).scalar() + 1
            conn.execute(flip, {"id": second_id})
        try:
            tampered = verify()
            assert tampered.returncode == 1 and f"entry {second_id}" in tampered.stdout
        finally:
            with db.engine.begin() as conn:
                conn.execute(flip, {"id": second_id})
    assert verify().returncode == 0


def test_a_run_in_a_project_not_yet_accepted_says_so_and_is_audited(trio):
    guest = fedbench.connect(home=trio.home("guest").root)
    guest.datasets.upload(_table(), name="waiting-ds", id_column="id")
    guest.projects.propose("waiting", partners="host", datasets=["waiting-ds"])
    with pytest.raises(Refused, match="project 'waiting' is proposed: host has not accepted"):
        guest.project("waiting").run("row_count", data="waiting-ds")
    project_id = guest.project("waiting").info["id"]
    audit = guest.audit()
    refused = audit[(audit["project"] == project_id) & ~audit["allowed"]]
    assert refused["reason"].str.contains("host has not accepted").any()


def test_a_run_on_a_dataset_the_project_does_not_authorise_says_so_and_is_audited(trio, project):
    guest_view, _, g, h = project
    guest = fedbench.connect(home=trio.home("guest").root)
    guest.datasets.upload(_table(seed=4), name=f"{g}-other", id_column="id")
    with pytest.raises(Refused, match=f"dataset '{g}-other' of 'guest' is not authorised"):
        guest_view.run("row_count", data={"guest": f"{g}-other", "host": h})
    audit = guest.audit()
    refused = audit[(audit["project"] == guest_view.info["id"]) & ~audit["allowed"]]
    assert refused["reason"].str.contains("not authorised").any()
