"""Components that exist only for tests: a step that takes its time (to cancel it, or kill its node)."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from fedbench.components import Component, Context, Port, register


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
