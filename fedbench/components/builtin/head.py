"""`head`: keep the first `n` rows of each party's table, checked to be possible on every party.

After a PSI both parties hold their rows in the same order, so the first `n` rows are the same IDs on every
side. The parties exchange only their row counts.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from fedbench.components.spec import Component, Port, register
from fedbench.errors import FedbenchError
from fedbench.federation import Context

__all__ = ["HeadParams", "head"]


class HeadParams(BaseModel):
    """Parameters of `head`."""

    model_config = {"extra": "forbid"}

    n: int = Field(default=1000, ge=1, le=100_000_000, description="how many rows to keep")


head = register(
    Component(
        name="head",
        version="1",
        params=HeadParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table", "each party's table"),),
        outputs=(Port("data", "table", "the first n rows"),),
        description="Keep the first n rows on every party.",
    )
)


class NotEnoughRows(FedbenchError):
    """A party has fewer rows than asked for."""

    code = "not_enough_rows"


def _keep(ctx: Context, params: HeadParams, peer_rows: int) -> None:
    table = ctx.input("data")
    if min(len(table), peer_rows) < params.n:
        raise NotEnoughRows(f"n={params.n} but the parties hold {len(table)} and {peer_rows} rows")
    ctx.output("data", table.iloc[: params.n].reset_index(drop=True))
    ctx.progress(1.0, f"kept {params.n} rows")


@head.role("guest")
def guest(ctx: Context, params: HeadParams) -> None:
    """Tell the host our row count, learn its count, keep the head."""
    ctx.peer("host").send("rows", len(ctx.input("data")))
    _keep(ctx, params, int(ctx.peer("host").recv("rows")))


@head.role("host")
def host(ctx: Context, params: HeadParams) -> None:
    """Mirror of the guest's side."""
    ctx.peer("guest").send("rows", len(ctx.input("data")))
    _keep(ctx, params, int(ctx.peer("guest").recv("rows")))
