"""`JobSpec`: the typed job record, its wire form, and refusal of a peer's malformed spec in plain words.

No node is started: the spec is computed from an in-memory project row (as every member computes it) and a
peer's spec is checked at the admission entry (`Planner.plan_job`) before anything reads the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from fedbench.errors import Refused
from fedbench.node.jobs import JobSpec, JobStep, job_spec
from fedbench.node.jobs.context import JobContext
from fedbench.node.jobs.plan import Planner
from fedbench.pipeline import Pipeline
from fedbench.store import Project

ROLES = {"guest": ["g"], "host": ["h"]}
WIRE_KEYS = [
    "job_id",
    "project",
    "name",
    "roles",
    "force",
    "uses",
    "datasets",
    "psi_rows",
    "psi_steps",
    "psi_keys",
    "steps",
]


def _project() -> Project:
    pinned = {
        "g": [{"name": "gd", "fingerprint": "a" * 64, "n_rows": 30}],
        "h": [{"name": "hd", "fingerprint": "b" * 64, "n_rows": 40}],
    }
    return Project(
        id="p" * 32, name="demo", initiator="g", members=["g", "h"], datasets=pinned, token_hash="x"
    )


def _planner() -> Planner:
    """The admission entry of node `h`; no store is given: none of these specs reads an artifact."""
    nothing = cast(Any, None)
    return Planner(JobContext("h", Path("."), nothing, nothing, nothing, lambda *args: None))


def _spec() -> JobSpec:
    pipeline = (
        Pipeline("match-and-count")
        .add("match", "psi", inputs={"data": {"g": "gd", "h": "hd"}}, id_column="id")
        .add("count", "row_count", inputs={"data": Pipeline.ref("match", "data")})
    )
    return job_spec(_project(), pipeline.name, pipeline.validate(ROLES), ROLES, False)


def test_a_job_spec_round_trips_through_its_unchanged_wire_form() -> None:
    """Record -> wire -> (JSON, as peers and the job table carry it) -> record gives the same job and wire."""
    spec = _spec()
    wire = spec.to_wire()
    assert list(wire) == WIRE_KEYS, "the wire format's fields stay as they were"
    assert wire["roles"] == ROLES and wire["force"] is False
    assert wire["datasets"] == {"g": ["gd"], "h": ["hd"]} and wire["psi_rows"] == {"g": 30, "h": 40}
    assert wire["psi_steps"] == 1 and wire["psi_keys"] == [wire["steps"][0]["key"]]
    assert [list(s) for s in wire["steps"]] == [["name", "component", "params", "inputs", "key"]] * 2
    assert wire["steps"][1]["inputs"] == {"data": {"step": "match", "output": "data"}}

    carried = json.loads(json.dumps(wire))
    again = JobSpec.from_wire(carried)
    assert again == spec
    assert again.to_wire() == wire
    assert isinstance(again.steps[0], JobStep) and again.steps[0].component == "psi"
    assert again.members == ["g", "h"] and again.roles == {"guest": ("g",), "host": ("h",)}


def test_a_peer_spec_without_the_recomputed_fields_is_read_with_them_empty() -> None:
    """A peer sends what the job is (roles, steps, keys); uses and PSI sizes each node recomputes itself."""
    wire = _spec().to_wire()
    sent = {k: wire[k] for k in ("job_id", "project", "name", "roles", "force", "steps")}
    read = JobSpec.from_wire(sent, sender="g")
    assert read.uses == () and read.psi_keys == () and read.psi_rows == {}
    assert [s.key for s in read.steps] == [s["key"] for s in wire["steps"]]


def test_the_recomputed_spec_agrees_with_an_honest_peer() -> None:
    """The admission entry recomputes the peer's job with our records: same keys, same wire form."""
    spec = _spec()
    assert _planner().plan_job("g", _project(), spec.to_wire()).to_wire() == spec.to_wire()


def _malformed(change: str) -> Any:
    wire = _spec().to_wire()
    if change == "not a mapping":
        return [wire]
    if change == "no roles":
        del wire["roles"]
    elif change == "roles not lists":
        wire["roles"] = {"guest": "g"}
    elif change == "bad job id":
        wire["job_id"] = "../../etc"
    elif change == "steps a number":
        wire["steps"] = 5
    elif change == "a step a text":
        wire["steps"] = ["count"]
    elif change == "a step without key":
        del wire["steps"][1]["key"]
    elif change == "a step with unknown keys":
        wire["steps"][1]["run_as"] = "root"
    elif change == "dataset a number":
        wire["steps"][0]["inputs"]["data"] = {"dataset": 5}
    elif change == "psi_rows not numbers":
        wire["psi_rows"] = {"g": "many"}
    return wire


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("not a mapping", "a job's spec is a mapping .* not a list"),
        ("no roles", "it has no 'roles'"),
        ("roles not lists", r"a job's roles are \{role: \[party, ...\]\}"),
        ("bad job id", "a job id is 1 to 64 letters"),
        ("steps a number", "its steps are a list, not a number"),
        ("a step a text", "step #1 is a text, not a mapping"),
        ("a step without key", "step 'count' has no key"),
        ("a step with unknown keys", r"step 'count' has unknown keys \['run_as'\]"),
        ("dataset a number", "input 'data' of step 'match' names its dataset with a number"),
        (
            "psi_rows not numbers",
            "the PSI rows of party 'g' must be a whole number of at least 0, not a text",
        ),
    ],
)
def test_a_malformed_peer_spec_is_refused_in_plain_words(change: str, message: str) -> None:
    """Each malformed shape is `Refused` naming the sender and the field; never a Python exception's name.

    Before `JobSpec`, a missing 'roles' was refused as "KeyError: 'roles'", a step given as text as
    "AttributeError: 'str' object has no attribute 'items'" and steps given as a number as "TypeError: 'int'
    object is not iterable".
    """
    planner = _planner()
    with pytest.raises(Refused, match=f"^malformed job spec from mallory: {message}") as caught:
        planner.plan_job("mallory", _project(), _malformed(change))
    for internal in ("KeyError", "TypeError", "AttributeError", "ValueError", "Traceback"):
        assert internal not in str(caught.value)
