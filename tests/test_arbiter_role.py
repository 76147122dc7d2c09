"""The arbiter: a third member that brings no data, default roles, optional roles, and the three-node sandbox.

Jobs run on a real three-node sandbox (`sandbox.up(arbiter=True)`); the test component `roll_call` (roles
guest, host, arbiter; the arbiter optional) has guest and host tell the arbiter who they are, or has the
guest say that there is no arbiter.
"""

from __future__ import annotations

import json

import pytest
from conftest import PLUGINS, job_states, up_with_test_components
from pydantic import BaseModel

import fedbench
from fedbench import components, sandbox
from fedbench.cli import main
from fedbench.components import Component, Port
from fedbench.errors import ConfigError
from fedbench.pipeline import Pipeline, PipelineError, step_keys

PARTIES = ["guest", "host", "arbiter"]


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """Guest, host and arbiter with the demo data (guest and host only) and the three-member `demo` project."""
    root = tmp_path_factory.mktemp("arbiter")
    up_with_test_components(root, demo_data=True, arbiter=True)
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def roll_call(pytestconfig):
    """The test components, registered in this process too (for validation without nodes)."""
    import sys

    sys.path.insert(0, PLUGINS)
    try:
        import fb_test_components
    finally:
        sys.path.remove(PLUGINS)
    return fb_test_components.roll_call


def _connect(root, party: str) -> fedbench.Workbench:
    return fedbench.connect(home=root / party)


def test_the_demo_project_has_three_members_and_the_arbiter_brings_no_data(fed):
    assert [n.party for n in sandbox.status(fed)] == PARTIES
    for party in PARTIES:
        project = _connect(fed, party).project("demo")
        assert project.state == "active"
        assert project.info["members"] == PARTIES
        assert sorted(project.info["accepted_by"]) == sorted(PARTIES)
        assert project.info["datasets"]["arbiter"] == []
        assert {d["name"] for d in project.info["datasets"]["host"]} == {"credit", "breast_cancer"}
    assert _connect(fed, "arbiter").datasets.list() == [], "demo data is registered on guest and host only"


def test_default_roles_put_the_data_less_member_in_arbiter(fed):
    run = _connect(fed, "guest").project("demo").run("roll_call", data="credit").wait(show_progress=False)
    arbiter_view = _connect(fed, "arbiter").project("demo").run_by_id(run.job_id)
    assert [(s["step"], s["role"], s["state"]) for s in arbiter_view.info["steps"]] == [
        ("roll_call", "arbiter", "succeeded")
    ]
    host_view = _connect(fed, "host").project("demo").run_by_id(run.job_id)
    assert [s["role"] for s in host_view.info["steps"]] == ["host"]


def test_three_role_component_with_the_optional_arbiter(fed):
    guest = _connect(fed, "guest").project("demo")
    run = guest.run("roll_call", data="credit", force=True).wait(show_progress=False)
    value = _connect(fed, "arbiter").project("demo").run_by_id(run.job_id).output("metrics").value()
    rows = {p: len(_connect(fed, p).datasets.get("credit").to_pandas()) for p in ("guest", "host")}
    assert value == {"arbiter": "arbiter", "parties": ["guest", "host"], "rows": rows, "inputs": []}
    assert run.metrics.empty, "the arbiter's metric stays on the arbiter's node"
    arbiter_metrics = _connect(fed, "arbiter").project("demo").run_by_id(run.job_id).metrics
    assert arbiter_metrics[["party", "name", "value"]].values.tolist() == [["arbiter", "parties", 2.0]]


def test_three_role_component_without_an_arbiter(fed):
    guest = _connect(fed, "guest").project("demo")
    run = guest.run("roll_call", data="credit", roles={"guest": ["guest"], "host": ["host"], "arbiter": []})
    run.wait(show_progress=False)
    assert run.output("metrics").value() == {
        "arbiter": None,
        "parties": ["guest"],
        "note": "no arbiter in this job",
    }
    state, steps = job_states(fed, "arbiter", run.job_id, settle=False)
    assert (state, steps) == ("admitted", {}), "the arbiter admitted the job but plays no part in it"
    assert run.job_id not in set(_connect(fed, "arbiter").project("demo").runs().get("job_id", []))


def test_a_two_role_component_runs_and_is_reused_with_the_arbiter_present(fed):
    guest = _connect(fed, "guest").project("demo")
    first = guest.run("row_count", data="credit").wait(show_progress=False)
    second = guest.run("row_count", data="credit").wait(show_progress=False)
    totals = first.output("metrics").value()
    assert set(totals["rows"]) == {"guest", "host"}
    for party in ("guest", "host"):
        assert job_states(fed, party, first.job_id)[1] == {"row_count": "succeeded"}
        assert job_states(fed, party, second.job_id)[1] == {"row_count": "reused"}, (
            "a member that plays no role in the step does not block its reuse"
        )
    assert job_states(fed, "arbiter", first.job_id) == ("succeeded", {})


def test_the_arbiter_may_accept_before_the_host(fed):
    guest, host, arbiter = (_connect(fed, p) for p in PARTIES)
    guest.projects.propose(
        "early-arbiter", partners=["host", "arbiter"], datasets=["credit"], jobs_per_day=100
    )
    arbiter.projects.accept("early-arbiter", datasets=[])
    assert guest.project("early-arbiter").state == "proposed"
    host.projects.accept("early-arbiter", datasets=["credit"])
    arbiter_view = arbiter.project("early-arbiter")
    assert {d["name"] for d in arbiter_view.info["datasets"]["host"]} == {"credit"}, (
        "the initiator told the arbiter the host's datasets once the host accepted"
    )
    assert set(arbiter_view.quotas["max_psi_rows"]) == set(PARTIES)
    run = guest.project("early-arbiter").run("roll_call", data="credit").wait(show_progress=False)
    value = arbiter.project("early-arbiter").run_by_id(run.job_id).output("metrics").value()
    assert value["parties"] == ["guest", "host"]


def test_only_the_initiator_may_announce_that_every_member_accepted(fed):
    from conftest import Federation

    project_id = _connect(fed, "host").project("demo").info["id"]
    token = (fed / "host" / "secrets" / f"project-{project_id}.token").read_text()
    forged = {"datasets": {"guest": []}, "terms": {}, "accepted_by": PARTIES}
    with pytest.raises(fedbench.Refused, match="only the project's initiator"):
        Federation(fed).peer_client("host", "arbiter").request(
            "project.activated", forged, project=project_id, token=token
        )
    assert {d["name"] for d in _connect(fed, "arbiter").project("demo").info["datasets"]["guest"]} == {
        "credit",
        "breast_cancer",
    }


def test_asking_a_two_party_sandbox_for_an_arbiter_is_a_config_error(tmp_path, capsys):
    home = tmp_path / "two"
    home.mkdir()
    (home / "sandbox.json").write_text(json.dumps({"parties": ["guest", "host"]}))
    with pytest.raises(ConfigError, match="no arbiter; .*another --home.*sandbox down"):
        sandbox.up(home, arbiter=True)
    assert main(["sandbox", "up", "--home", str(home), "--arbiter"]) == 2
    assert "sandbox down" in capsys.readouterr().err
    assert not (home / "guest").exists(), "nothing was created or started"


class _NoParams(BaseModel):
    """A component without parameters."""


def test_optional_roles_are_declared_among_the_roles():
    with pytest.raises(ConfigError, match="not among its roles"):
        Component("bad", "1", _NoParams, ("guest", "host"), "train", optional_roles=("arbiter",))
    with pytest.raises(ConfigError, match="must not be optional"):
        Component("bad", "1", _NoParams, ("arbiter",), "train", optional_roles=("arbiter",))
    component = Component(
        "fine", "1", _NoParams, ("guest", "host", "arbiter"), "train", (Port("data", "table"),)
    )
    assert component.describe()["optional_roles"] == []


def test_validation_and_keys_with_an_optional_role_left_out(roll_call):
    assert components.get("roll_call").describe()["optional_roles"] == ["arbiter"]
    assert roll_call.required_roles() == ("guest", "host")
    plan = Pipeline("p").add("call", "roll_call", inputs={"data": "credit"})
    two = {"guest": ["g"], "host": ["h"]}
    ordered = plan.validate(two)
    assert plan.validate({**two, "arbiter": []}) == ordered
    with pytest.raises(PipelineError, match=r"needs parties for roles \['host'\]"):
        plan.validate({"guest": ["g"], "arbiter": ["a"]})
    key = step_keys(ordered, two, lambda ref: "dataset:x", "p1")
    assert step_keys(ordered, {**two, "arbiter": []}, lambda ref: "dataset:x", "p1") == key
    assert step_keys(ordered, {**two, "arbiter": ["a"]}, lambda ref: "dataset:x", "p1") != key


def test_ctx_peer_of_an_absent_optional_role_says_so():
    from fedbench.federation import Context, TaskIO

    context = Context(
        party="g",
        role="guest",
        roles={"guest": ["g"], "host": ["h"]},
        job_id="j",
        step="s",
        params=None,
        transport=None,  # type: ignore[arg-type]
        io=TaskIO(lambda n: None, lambda n, v: None, lambda e: None, lambda: False),
    )
    assert context.peers("arbiter") == []
    with pytest.raises(ConfigError, match="no party plays role 'arbiter'"):
        context.peer("arbiter")


def test_default_roles_of_a_project_row():
    """The initiator is guest, members with pinned datasets hosts, members without arbiters."""
    from fedbench.node.jobs import _default_roles
    from fedbench.store import Project

    pinned = [{"name": "t", "fingerprint": "f", "n_rows": 3}]
    row = Project(
        id="p" * 32,
        name="p",
        initiator="a",
        members=["a", "b", "c", "d"],
        datasets={"a": pinned, "b": pinned, "c": [], "d": pinned},
        token_hash="x",
    )
    assert _default_roles(row) == {"guest": ["a"], "host": ["b", "d"], "arbiter": ["c"]}
    row.datasets = {"a": pinned, "b": pinned}
    row.members = ["a", "b"]
    assert _default_roles(row) == {"guest": ["a"], "host": ["b"]}, "two-party roles are as before"


def test_default_roles_of_a_horizontal_pipeline():
    """A horizontal step's default roles: members with pinned data train (client), the data-less aggregate."""
    from fedbench.node.jobs.plan import default_roles
    from fedbench.pipeline import Pipeline, PipelineError
    from fedbench.store import Project

    pinned = [{"name": "t", "fingerprint": "f", "n_rows": 3}]
    row = Project(
        id="p" * 32,
        name="branches",
        initiator="b1",
        members=["b1", "b2", "b3", "agg"],
        datasets={"b1": pinned, "b2": pinned, "b3": pinned, "agg": []},
        token_hash="x",
    )
    plan = Pipeline("h").add("train", "homo_lr", inputs={"train": "t"})
    assert default_roles(row, plan) == {"client": ["b1", "b2", "b3"], "server": ["agg"]}
    assert default_roles(row, Pipeline("v").add("n", "row_count", inputs={"data": "t"}))["guest"] == ["b1"]
    row.datasets = {"b1": pinned, "b2": pinned, "b3": pinned, "agg": pinned}
    with pytest.raises(PipelineError, match="no member without data to aggregate"):
        default_roles(row, plan)
