"""A test-only component that tells which process ran its step (to see a warm worker at work)."""

from __future__ import annotations

import os

from pydantic import BaseModel

from fedbench.components import Component, Context, Port, register


class WhoamiParams(BaseModel):
    """No parameters: the step only reports its worker's process id."""


whoami = register(
    Component(
        name="whoami",
        version="1",
        params=WhoamiParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table"),),
        outputs=(Port("metrics", "metrics"),),
        description="Write the process id of the worker that ran the step (each party its own).",
    )
)


def _report(ctx: Context, params: WhoamiParams) -> None:
    ctx.output("metrics", {"pid": os.getpid(), "party": ctx.party})


whoami.role("guest")(_report)
whoami.role("host")(_report)
