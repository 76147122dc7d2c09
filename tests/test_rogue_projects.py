"""A partner running modified code against projects and job admission: every deviation refused by the victim.

Each attack is played against an unmodified victim node over real mutual TLS: raw requests from the test
process holding the attacker's certificate (`peer_client`), or, where the attacker must *answer* the victim
(the initiator's answer to an accept), a patched initiator node (`tests/plugins/fb_rogue_projects.py`). Each
test asserts the refusal on the victim's side, an audit entry there, and that the victim still admits an
honest job afterwards.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rogue import rogue_sandbox

import fedbench
from fedbench import sandbox
from fedbench.errors import Refused
from fedbench.pipeline import Pipeline, step_keys
from fedbench.ui.dashboards.projects import ProjectsApp

_names = itertools.count()
ROLES = {"guest": ["guest"], "host": ["host"]}


def _table(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"c{i}" for i in range(n)], "x": rng.normal(size=n)})


def _wb(federation: Any, party: str) -> fedbench.Workbench:
    return fedbench.connect(home=federation.home(party).root)


def _project(
    trio: Any, *, host_datasets: int = 1, accept_rows: int | None = None, **terms: Any
) -> tuple[dict[str, Any], str, list[str]]:
    """A fresh project proposed by guest and accepted by host: (guest's view, guest dataset, host datasets)."""
    n = next(_names)
    guest, host = _wb(trio, "guest"), _wb(trio, "host")
    g = f"rg{n}"
    hs = [f"rh{n}-{i}" for i in range(host_datasets)]
    guest.datasets.upload(_table(), name=g, id_column="id")
    for i, h in enumerate(hs):
        host.datasets.upload(_table(seed=10 + i), name=h, id_column="id")
    guest.projects.propose(f"rp{n}", partners="host", datasets=[g], **terms)
    host.projects.accept(f"rp{n}", datasets=hs, max_psi_rows=accept_rows)
    return guest.project(f"rp{n}").info, g, hs


def _token(federation: Any, party: str, project_id: str) -> str:
    return (federation.home(party).secrets_dir / f"project-{project_id}.token").read_text()


def honest_spec(
    info: dict[str, Any], pipeline: Pipeline, roles: dict[str, list[str]] = ROLES
) -> dict[str, Any]:
    """A job spec exactly as an honest initiator's node builds it (its step keys included).

    A dataset its party did not pin gets a made-up fingerprint: the receiver refuses it before keys matter.
    """
    ordered = pipeline.validate(roles)
    pinned = {party: {d["name"]: d for d in items} for party, items in info["datasets"].items()}
    parties = sorted({p for members in roles.values() for p in members})

    def dataset_key(ref: dict[str, Any]) -> str:
        named = ref["dataset"]
        parts = []
        for party in parties:
            dataset = named if isinstance(named, str) else named.get(party)
            if dataset is not None:
                entry = pinned.get(party, {}).get(dataset, {"fingerprint": "0" * 64})
                parts.append(f"{party}={entry['fingerprint']}")
        return "dataset:" + "|".join(parts)

    keys = step_keys(ordered, roles, dataset_key, info["id"])
    return {
        "job_id": uuid.uuid4().hex,
        "project": info["id"],
        "name": pipeline.name,
        "roles": roles,
        "force": False,
        "steps": [{**s.to_dict(), "key": keys[s.name]} for s in ordered],
    }


def psi_pipeline(data: dict[str, str]) -> Pipeline:
    return Pipeline("match").add("match", "psi", inputs={"data": data}, id_column="id")


def count_pipeline(data: dict[str, str]) -> Pipeline:
    return Pipeline("count").add("count", "row_count", inputs={"data": data})


def _submit(
    federation: Any,
    sender: str,
    receiver: str,
    info: dict[str, Any],
    body: dict[str, Any],
    token: str | None = None,
) -> Any:
    """A raw `job.submit`; the described fields default to an innocent-looking training job."""
    request = {"use": "train", "uses": ["train"], "datasets": {}, "psi_rows": {}, **body}
    request.setdefault("job_id", request.get("spec", {}).get("job_id") or uuid.uuid4().hex)
    client = federation.peer_client(sender, receiver)
    return client.request(
        "job.submit", request, project=info["id"], token=token or _token(federation, sender, info["id"])
    )


def _honest_job_admitted(
    federation: Any, sender: str, receiver: str, info: dict[str, Any], data: dict
) -> None:
    """The victim still admits an honest job of the project afterwards."""
    spec = honest_spec(info, count_pipeline(data))
    assert _submit(federation, sender, receiver, info, {"spec": spec})["admitted"] is True


def _refusals(federation: Any, party: str, project_id: str) -> pd.DataFrame:
    audit = _wb(federation, party).audit()
    return audit[(audit["project"] == project_id) & ~audit["allowed"]]


def _request(
    federation: Any, sender: str, receiver: str, action: str, info: dict[str, Any], body: dict
) -> Any:
    client = federation.peer_client(sender, receiver)
    return client.request(action, body, project=info["id"], token=_token(federation, sender, info["id"]))


# ----- hole 1: the partner keeps the terms its user reviewed -------------------------------------------------


@pytest.fixture(scope="module")
def rogue_initiator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A sandbox whose guest (an initiator) answers accepts with wider terms than it proposed."""
    root = Path(tmp_path_factory.mktemp("rogue-projects")) / "sb"
    swap = {"release": "both", "min_intersection": 0, "psi_runs": 1000, "max_psi_rows": {"guest": 10**9}}
    federation = rogue_sandbox(root, patches=["fb_rogue_projects"], settings={"answer_terms": swap})
    yield federation
    sandbox.down(root)


def test_an_answer_with_other_terms_than_proposed_is_refused_and_nothing_changes(rogue_initiator):
    guest, host = _wb(rogue_initiator, "guest"), _wb(rogue_initiator, "host")
    proposed = {"uses": ["psi"], "release": "count_only", "min_intersection": 100, "psi_runs": 1}
    guest.projects.propose(
        "narrow", partners="host", datasets=["credit"], max_psi_rows={"guest": 50}, **proposed
    )
    reviewed = host.project("narrow").info["terms"]
    card = ProjectsApp(host).proposals["narrow"].box.children[0].value
    assert "any identifiers it likes within that size" in card, (
        "the accept view says what the terms do not stop"
    )
    with pytest.raises(Refused, match="terms differ from the proposal"):
        host.projects.accept("narrow", datasets=["credit"])
    after = host.project("narrow").info
    assert after["state"] == "pending"
    assert after["terms"] == reviewed
    assert after["terms"]["release"] == "count_only" and after["terms"]["max_psi_rows"]["guest"] == 50
    refused = _refusals(rogue_initiator, "host", after["id"])
    assert refused["action"].eq("project.accept").any()
    assert refused["reason"].str.contains("release").any()
    run = guest.project("demo").run("row_count", data="credit").wait(show_progress=False)
    assert run.output("metrics").value()["rows"]["host"] > 0


# ----- hole 2: admission recomputes the job from its spec -------------------------------------------------------


def test_a_psi_labelled_train_is_refused_where_no_psi_is_allowed(trio):
    info, g, (h,) = _project(trio, uses=["train"])
    with pytest.raises(Refused, match="use 'psi' is not allowed"):
        _submit(
            trio, "guest", "host", info, {"spec": honest_spec(info, psi_pipeline({"guest": g, "host": h}))}
        )
    assert _refusals(trio, "host", info["id"])["reason"].str.contains("use 'psi'").any()
    _honest_job_admitted(trio, "guest", "host", info, {"guest": g, "host": h})


def test_a_psi_labelled_train_counts_as_a_psi_run(trio):
    info, g, (h,) = _project(trio, psi_runs=1)
    data = {"guest": g, "host": h}
    assert (
        _submit(trio, "guest", "host", info, {"spec": honest_spec(info, psi_pipeline(data))})["admitted"]
        is True
    )
    assert _wb(trio, "host").project(info["name"]).usage()["psi_runs"] == 1
    with pytest.raises(Refused, match="quota exhausted: 1 PSI runs"):
        _submit(trio, "guest", "host", info, {"spec": honest_spec(info, psi_pipeline(data))})
    assert _refusals(trio, "host", info["id"])["reason"].str.contains("quota exhausted").any()
    _honest_job_admitted(trio, "guest", "host", info, data)


def test_each_psi_step_of_a_job_counts_as_one_psi_run(trio):
    info, g, (h,) = _project(trio, psi_runs=1)
    data = {"guest": g, "host": h}
    twice = psi_pipeline(data).add("again", "psi", inputs={"data": data}, id_column="id", lower=True)
    with pytest.raises(Refused, match="quota exhausted: 1 PSI runs"):
        _submit(trio, "guest", "host", info, {"spec": honest_spec(info, twice)})
    assert _wb(trio, "host").project(info["name"]).usage()["psi_runs"] == 0
    assert _submit(trio, "guest", "host", info, {"spec": honest_spec(info, psi_pipeline(data))})["admitted"]
    assert _wb(trio, "host").project(info["name"]).usage()["psi_runs"] == 1


def test_our_datasets_left_out_of_the_description_are_still_checked(trio):
    info, g, (h, kept) = _project(trio, host_datasets=2)
    host = _wb(trio, "host")
    host.datasets.delete(h)
    host.datasets.upload(_table(seed=99), name=h, id_column="id")
    spec = honest_spec(info, count_pipeline({"guest": g, "host": h}))
    with pytest.raises(Refused, match="changed since it was authorised"):
        _submit(trio, "guest", "host", info, {"spec": spec, "datasets": {}})
    assert _refusals(trio, "host", info["id"])["reason"].str.contains("changed since").any()
    _honest_job_admitted(trio, "guest", "host", info, {"guest": g, "host": kept})


def test_a_job_without_a_spec_that_would_touch_data_is_refused(trio):
    info, g, (h,) = _project(trio)
    for body in ({"datasets": {"host": [h]}}, {"use": "psi", "uses": ["psi"]}):
        with pytest.raises(Refused, match="spec"):
            _submit(trio, "guest", "host", info, body)
    assert len(_refusals(trio, "host", info["id"])) >= 2
    _honest_job_admitted(trio, "guest", "host", info, {"guest": g, "host": h})


def test_a_declared_psi_size_is_checked_on_the_recomputed_sizes(trio):
    info, g, (h,) = _project(trio, accept_rows=10)
    assert info["terms"]["max_psi_rows"]["host"] == 10
    with pytest.raises(Refused, match="more than its declared maximum of 10"):
        _submit(
            trio,
            "guest",
            "host",
            info,
            {"spec": honest_spec(info, psi_pipeline({"guest": g, "host": h})), "psi_rows": {}},
        )
    assert _refusals(trio, "host", info["id"])["reason"].str.contains("declared maximum").any()
    _honest_job_admitted(trio, "guest", "host", info, {"guest": g, "host": h})


# ----- hole 3: caps are agreed terms, never rewritten alone ------------------------------------------------------


def test_a_partner_cannot_accept_again_to_raise_its_cap(trio):
    info, g, (h,) = _project(trio)
    pinned = info["datasets"]["host"]
    with pytest.raises(Refused, match="active"):
        _request(trio, "host", "guest", "project.accept", info, {"datasets": pinned, "max_psi_rows": 10**9})
    assert _wb(trio, "guest").project(info["name"]).info["terms"]["max_psi_rows"]["host"] == 50
    assert _refusals(trio, "guest", info["id"])["action"].eq("project.accept").any()
    _honest_job_admitted(trio, "host", "guest", info, {"guest": g, "host": h})


def test_a_partner_cannot_declare_more_than_the_cap_proposed_for_it(trio):
    n = next(_names)
    guest, host = _wb(trio, "guest"), _wb(trio, "host")
    guest.datasets.upload(_table(), name=f"cg{n}", id_column="id")
    host.datasets.upload(_table(seed=3), name=f"ch{n}", id_column="id")
    guest.projects.propose(f"cap{n}", partners="host", datasets=[f"cg{n}"], max_psi_rows={"host": 10})
    info = guest.project(f"cap{n}").info
    pinned = [{"name": f"ch{n}", "fingerprint": "0" * 64, "n_rows": 50}]
    with pytest.raises(Refused, match="at most 10"):
        _request(trio, "host", "guest", "project.accept", info, {"datasets": pinned, "max_psi_rows": 10**6})
    assert guest.project(f"cap{n}").state == "proposed"
    assert _refusals(trio, "guest", info["id"])["reason"].str.contains("at most 10").any()
    accepted = host.projects.accept(f"cap{n}", datasets=[f"ch{n}"])
    assert accepted.info["terms"]["max_psi_rows"]["host"] == 10
    info = guest.project(f"cap{n}").info
    assert info["terms"]["max_psi_rows"]["host"] == 10
    _honest_job_admitted(trio, "host", "guest", info, {"guest": f"cg{n}", "host": f"ch{n}"})


def test_the_initiator_cannot_rewrite_caps_or_terms_with_activated(trio):
    info, g, (h,) = _project(trio, release="count_only")
    host = _wb(trio, "host")
    before = host.project(info["name"]).info
    forged = {
        "datasets": info["datasets"],
        "terms": {**info["terms"], "max_psi_rows": {"guest": 10**9, "host": 10**9}},
        "accepted_by": ["guest", "host"],
    }
    with pytest.raises(Refused, match="max_psi_rows"):
        _request(trio, "guest", "host", "project.activated", info, forged)
    forged["terms"] = {**info["terms"], "release": "both"}
    with pytest.raises(Refused, match="release"):
        _request(trio, "guest", "host", "project.activated", info, forged)
    after = host.project(info["name"]).info
    assert after["terms"] == before["terms"] and after["datasets"] == before["datasets"]
    assert _refusals(trio, "host", info["id"])["action"].eq("project.activated").sum() >= 2
    _honest_job_admitted(trio, "guest", "host", info, {"guest": g, "host": h})


# ----- hole 11 (job control): a job message names a job of the presented project, from one of its parties ------


@pytest.fixture
def queued_job(trio):
    """A job of a guest-host project admitted (queued) on host, and a second project mallory shares with host."""
    info, g, (h,) = _project(trio)
    spec = honest_spec(info, count_pipeline({"guest": g, "host": h}))
    _submit(trio, "guest", "host", info, {"spec": spec})
    n = next(_names)
    mallory, host = _wb(trio, "mallory"), _wb(trio, "host")
    mallory.datasets.upload(_table(seed=7), name=f"m{n}", id_column="id")
    mallory.projects.propose(f"mp{n}", partners="host", datasets=[f"m{n}"])
    host.projects.accept(f"mp{n}", datasets=[])
    return info, spec["job_id"], mallory.project(f"mp{n}").info, (g, h)


def _host_job_state(trio: Any, job_id: str) -> str:
    import sqlite3

    con = sqlite3.connect(trio.home("host").root / "fedbench.db")
    try:
        return str(con.execute("select state from job where id = ?", (job_id,)).fetchone()[0])
    finally:
        con.close()


def test_a_member_of_another_project_cannot_cancel_fail_or_start_a_job(trio, queued_job):
    info, job_id, other, (g, h) = queued_job
    for action in ("job.cancel", "job.fail", "job.start", "job.done"):
        with pytest.raises(Refused, match="no job"):
            _request(trio, "mallory", "host", action, other, {"job_id": job_id, "reason": "spoofed"})
    assert _host_job_state(trio, job_id) == "queued"
    refused = _refusals(trio, "host", other["id"])
    assert set(refused["action"]) >= {"job.cancel", "job.fail", "job.start", "job.done"}
    _request(trio, "guest", "host", "job.cancel", info, {"job_id": job_id, "reason": "honest cancel"})
    assert _host_job_state(trio, job_id) == "cancelled"
    _honest_job_admitted(trio, "guest", "host", info, {"guest": g, "host": h})


def test_a_job_of_one_project_cannot_be_started_under_another_projects_token(trio, queued_job):
    info, job_id, _, (g, h) = queued_job
    second, _, _ = _project(trio)
    with pytest.raises(Refused, match="no job"):
        _request(trio, "guest", "host", "job.start", second, {"job_id": job_id, "reuse": []})
    with pytest.raises(Refused, match="no job"):
        _request(trio, "guest", "host", "job.start", info, {"job_id": uuid.uuid4().hex, "reuse": []})
    assert _host_job_state(trio, job_id) == "queued"
    assert _refusals(trio, "host", second["id"])["action"].eq("job.start").any()
    assert _refusals(trio, "host", info["id"])["action"].eq("job.start").any()
    _honest_job_admitted(trio, "guest", "host", info, {"guest": g, "host": h})
