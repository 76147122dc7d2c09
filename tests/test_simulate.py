"""`components.simulate`: a failing role is raised naming its party and stops the others; a role that never
ends times out instead of hanging the caller; messages and events can be recorded; inputs, outputs and roles
are checked as a node would check them."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from fedbench.components import (
    Cancelled,
    Component,
    Port,
    RecordedMessage,
    RoleFailed,
    SimulationTimeout,
    simulate,
)
from fedbench.errors import CodecError, ConfigError


class NoParams(BaseModel):
    pass


def _component(**functions: Any) -> Component:
    """A throwaway component (not registered) with a table input, two outputs and an optional arbiter."""
    component = Component(
        "probe",
        "1",
        NoParams,
        ("guest", "host", "arbiter"),
        "train",
        inputs=(Port("data", "table"), Port("model", "model", optional=True)),
        outputs=(Port("data", "table"), Port("metrics", "metrics")),
        optional_roles=("arbiter",),
    )
    for role in component.roles:
        component.role(role)(functions.get(role, lambda ctx, params: None))
    return component


TABLES = {
    "guest": pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]}),
    "host": pd.DataFrame({"id": ["a", "b"], "z": [3.0, 4.0]}),
}


def _simulation_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("simulate-probe-")]


def _wait_for_no_threads() -> None:
    for thread in _simulation_threads():
        thread.join(60)
    assert not _simulation_threads(), "a role thread of the simulation is still running"


def test_a_failing_role_is_raised_naming_its_party_and_stops_the_others() -> None:
    seen: dict[str, BaseException] = {}

    def guest(ctx: Any, params: Any) -> None:
        ctx.output("metrics", {"started": True})
        raise ValueError("the guest's table has no label column 'y'")

    def host(ctx: Any, params: Any) -> None:
        try:
            ctx.peer("guest").recv("never", timeout=3600)
        except BaseException as exc:
            seen["host"] = exc
            raise

    with pytest.raises(RoleFailed, match=r"^guest \(role guest\) failed.*no label column 'y'") as failed:
        simulate(_component(guest=guest, host=host), TABLES)
    assert failed.value.party == "guest" and failed.value.role == "guest"
    assert isinstance(failed.value.error, ValueError)
    assert set(failed.value.errors) == {"guest"}, "the host's cancellation is not a failure of its own"
    assert failed.value.outputs["guest"] == {"metrics": {"started": True}}
    _wait_for_no_threads()
    assert isinstance(seen["host"], Cancelled), "the host stopped waiting for a message that would never come"


def test_both_sides_of_a_symmetric_check_fail_with_their_own_reason() -> None:
    """A party that reads a message sent before its peer failed still runs its own check (not a cancellation)."""
    host_failed = threading.Event()

    def guest(ctx: Any, params: Any) -> None:
        host = ctx.peer("host")
        host.send("rows", 2)
        host_failed.wait(60)
        time.sleep(0.2)  # let the simulation see the host's failure first
        if host.recv("rows") != 2:
            raise ValueError("the guest holds 2 rows, the host 3")

    def host(ctx: Any, params: Any) -> None:
        guest = ctx.peer("guest")
        guest.send("rows", 3)
        if guest.recv("rows") != 3:
            host_failed.set()
            raise ValueError("the host holds 3 rows, the guest 2")

    with pytest.raises(RoleFailed, match="the host holds 3 rows") as failed:
        simulate(_component(guest=guest, host=host), TABLES)
    assert failed.value.party == "host"
    assert {party: str(error) for party, error in failed.value.errors.items()} == {
        "host": "the host holds 3 rows, the guest 2",
        "guest": "the guest holds 2 rows, the host 3",
    }


def test_a_failure_a_peer_repeats_from_an_error_record_is_not_its_own() -> None:
    """A party that stops because its peer sent an error record is not the one named, even when it stops first."""
    guest_stopped = threading.Event()

    def guest(ctx: Any, params: Any) -> None:
        try:
            answer = ctx.peer("host").recv("counts")  # the federation context raises an error record itself
        finally:
            guest_stopped.set()
        raise ValueError(f"'host' failed: {answer['reason']}")

    def host(ctx: Any, params: Any) -> None:
        ctx.peer("guest").send("counts", {"error": "dataset", "reason": "the host's table has no rows"})
        guest_stopped.wait(60)
        time.sleep(0.2)  # the guest's failure is reported first
        raise ValueError("the host's table has no rows")

    with pytest.raises(
        RoleFailed, match=r"^host \(role host\) failed.*: the host's table has no rows$"
    ) as failed:
        simulate(_component(guest=guest, host=host), TABLES)
    assert set(failed.value.errors) == {"host"}


def test_a_role_that_never_ends_times_out_without_hanging_the_caller() -> None:
    stop = threading.Event()

    def host(ctx: Any, params: Any) -> None:
        while not ctx.cancelled:
            stop.wait(0.05)

    with pytest.raises(SimulationTimeout, match="did not finish within 1 s: host still running") as timed_out:
        simulate(_component(host=host), TABLES, timeout=1.0)
    assert timed_out.value.parties == ["host"]
    _wait_for_no_threads()


def test_record_and_events_keep_what_each_party_received_and_reported() -> None:
    def guest(ctx: Any, params: Any) -> None:
        host = ctx.peer("host")
        host.send("rows", len(ctx.input("data")))
        ctx.iter(3).peer("host").send("vector", np.arange(3))
        ctx.metrics.log("loss", 0.5, step=1)
        ctx.output("data", ctx.input("data").assign(seen=host.recv("answer")))

    def host(ctx: Any, params: Any) -> None:
        guest = ctx.peer("guest")
        rows = guest.recv("rows")
        vector = ctx.iter(3).peer("guest").recv("vector")
        guest.send("answer", int(vector.sum()) + rows)
        ctx.warn("the host's table is tiny")

    record: list[RecordedMessage] = []
    events: list[tuple[str, dict[str, Any]]] = []
    outputs = simulate(_component(guest=guest, host=host), TABLES, record=record, events=events)
    assert [(m.sender, m.receiver, m.tag) for m in record] == [
        ("guest", "host", "rows"),
        ("guest", "host", "vector"),
        ("host", "guest", "answer"),
    ]
    assert record[1].key.endswith("/i3.vector") and isinstance(record[1].payload, np.ndarray)
    assert list(outputs["guest"]["data"]["seen"]) == [5, 5] and outputs["host"] == {}
    assert ("guest", {"type": "metric", "name": "loss", "value": 0.5, "step": 1}) in events
    assert ("host", {"type": "warning", "message": "the host's table is tiny"}) in events


def test_outputs_and_messages_are_checked_as_a_node_would() -> None:
    with pytest.raises(RoleFailed, match="output 'data' is a table: write a DataFrame, not dict"):
        simulate(_component(guest=lambda ctx, params: ctx.output("data", {"a": 1})), TABLES)
    with pytest.raises(RoleFailed) as failed:
        simulate(_component(host=lambda ctx, params: ctx.peer("guest").send("x", object())), TABLES)
    assert failed.value.party == "host" and isinstance(failed.value.error, CodecError)


def test_inputs_and_roles_follow_the_component() -> None:
    def guest(ctx: Any, params: Any) -> None:
        model = ctx.optional_input("model")
        ctx.output("metrics", {"arbiters": len(ctx.peers("arbiter")), "model": model})

    probe = _component(guest=guest)
    assert simulate(probe, TABLES)["guest"]["metrics"] == {"arbiters": 0, "model": None}
    with_arbiter = simulate(probe, {**TABLES, "arbiter": {}})
    assert with_arbiter["guest"]["metrics"]["arbiters"] == 1 and set(with_arbiter) == {
        "guest",
        "host",
        "arbiter",
    }
    given = {"guest": {"data": TABLES["guest"], "model": {"w": [1.0]}}, "host": TABLES["host"]}
    assert simulate(probe, given)["guest"]["metrics"]["model"] == {"w": [1.0]}
    named = simulate(
        probe, {"bank": TABLES["guest"], "telco": TABLES["host"]}, roles={"guest": "bank", "host": "telco"}
    )
    assert set(named) == {"bank", "telco"}
    with pytest.raises(ConfigError, match=r"tables were given for \['carol'\], who play no role"):
        simulate(probe, {**TABLES, "carol": TABLES["host"]})
    with pytest.raises(ConfigError, match=r"needs a party for roles \['host'\]"):
        simulate(probe, TABLES, roles={"guest": "guest"})
    with pytest.raises(ConfigError, match="has no input 'labels'"):
        simulate(probe, {"guest": {"labels": TABLES["guest"]}, "host": TABLES["host"]})
    unfinished = Component("unfinished", "1", NoParams, ("guest", "host"), "train")
    unfinished.role("guest")(lambda ctx, params: None)
    with pytest.raises(ConfigError, match=r"declares roles \['host'\] without a function"):
        simulate(unfinished, TABLES)
