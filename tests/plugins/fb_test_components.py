"""Components that exist only for tests: a step that takes its time (to cancel it, or kill its node), and a
roll call with an optional arbiter (to run a three-role component with and without one)."""

from __future__ import annotations

import contextlib
import time

from pydantic import BaseModel, Field

from fedbench.components import Component, Context, Port, register
from fedbench.errors import ConfigError


class SlowParams(BaseModel):
    """How long the step runs."""

    seconds: float = Field(default=30.0, ge=0)


slow = register(
    Component(
        name="slow",
        version="1",
        params=SlowParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table"),),
        outputs=(Port("metrics", "metrics"),),
        description="Run for a while, checking for cancellation, then count rows.",
    )
)


def _run(ctx: Context, params: SlowParams) -> None:
    started = time.monotonic()
    while time.monotonic() - started < params.seconds:
        ctx.check_cancelled()
        ctx.progress((time.monotonic() - started) / max(params.seconds, 1e-9), "working")
        time.sleep(0.1)
    ctx.output("metrics", {"rows": len(ctx.input("data"))})


slow.role("guest")(_run)
slow.role("host")(_run)


class RollCallParams(BaseModel):
    """No parameters: the roll call only reports who took part."""


roll_call = register(
    Component(
        name="roll_call",
        version="1",
        params=RollCallParams,
        roles=("guest", "host", "arbiter"),
        optional_roles=("arbiter",),
        use="train",
        inputs=(Port("data", "table"),),
        outputs=(Port("metrics", "metrics"),),
        description="Guest and host tell the arbiter their party and row count; it outputs the list.",
    )
)


def _report(ctx: Context, params: RollCallParams) -> None:
    rows = len(ctx.input("data"))
    arbiters = ctx.peers("arbiter")
    for arbiter in arbiters:
        arbiter.send("present", {"party": ctx.party, "role": ctx.role, "rows": rows})
    if ctx.role == "guest" and not arbiters:
        ctx.output("metrics", {"arbiter": None, "parties": [ctx.party], "note": "no arbiter in this job"})


@roll_call.role("arbiter")
def _arbiter(ctx: Context, params: RollCallParams) -> None:
    present = [handle.recv("present") for role in ("guest", "host") for handle in ctx.peers(role)]
    ctx.metrics.log("parties", len(present))
    ctx.output(
        "metrics",
        {
            "arbiter": ctx.party,
            "parties": [p["party"] for p in present],
            "rows": {p["party"]: p["rows"] for p in present},
            "inputs": sorted(_readable_inputs(ctx)),
        },
    )


def _readable_inputs(ctx: Context) -> list[str]:
    """The inputs the arbiter can open (none: it brings no data)."""
    readable = []
    with contextlib.suppress(ConfigError):
        ctx.input("data")
        readable.append("data")
    return readable


roll_call.role("guest")(_report)
roll_call.role("host")(_report)
