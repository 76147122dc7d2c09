"""A test-only component that shows what a step's worker was given to wait with, then waits for a message
that never comes (the guest) or ends at once (the host): the guest's step fails after its node's `recv_timeout`."""

from __future__ import annotations

from pydantic import BaseModel

from fedbench.components import Component, Context, Port, register


class WaitParams(BaseModel):
    """No parameters."""


wait_for_peer = register(
    Component(
        name="wait_for_peer",
        version="1",
        params=WaitParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table"),),
        outputs=(Port("metrics", "metrics"),),
        description="Log the step's receive timeout and send deadline; the guest then waits for the host in vain.",
    )
)


def _settings(ctx: Context) -> None:
    ctx.metrics.log("recv_timeout", ctx.recv_timeout)
    ctx.metrics.log("send_deadline", float(getattr(ctx.transport, "_send_deadline", -1.0)))


@wait_for_peer.role("guest")
def _guest(ctx: Context, params: WaitParams) -> None:
    _settings(ctx)
    ctx.peer("host").recv("never_sent")


@wait_for_peer.role("host")
def _host(ctx: Context, params: WaitParams) -> None:
    _settings(ctx)
    ctx.output("metrics", {"rows": len(ctx.input("data"))})
