"""`row_count`: a federated row count, the smallest real component (and the machinery's proof).

Each party counts the rows of its own input; the host sends its count to the guest, which writes the joint
counts as metrics. The host learns nothing; the guest learns only the host's row count. A step fails on a
party whose table has fewer than `min_rows` rows (useful to check a join before training).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from fedbench.components.spec import Component, Port, register
from fedbench.errors import FedbenchError
from fedbench.federation import Context

__all__ = ["RowCountParams", "row_count"]


class RowCountParams(BaseModel):
    """Parameters of `row_count`."""

    model_config = {"extra": "forbid"}

    min_rows: int = Field(default=0, ge=0, description="fail if a party's table has fewer rows than this")


row_count = register(
    Component(
        name="row_count",
        version="1",
        params=RowCountParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table", "each party's table"),),
        outputs=(Port("metrics", "metrics", "rows per party and in all (guest only)"),),
        description="Count the rows each party holds, without moving any row.",
    )
)


class TooFewRows(FedbenchError):
    """A party's table is smaller than the step's `min_rows`."""

    code = "too_few_rows"


def _count(ctx: Context, params: RowCountParams) -> int:
    rows = len(ctx.input("data"))
    ctx.progress(0.5, f"{rows} rows")
    if rows < params.min_rows:
        raise TooFewRows(f"{ctx.party} has {rows} rows, fewer than min_rows={params.min_rows}")
    return rows


@row_count.role("guest")
def guest(ctx: Context, params: RowCountParams) -> None:
    """Count ours, receive the host's, write the joint counts."""
    own = _count(ctx, params)
    counts = {ctx.party: own}
    for peer in ctx.peers("host"):
        counts[peer.party] = int(peer.recv("rows"))
    ctx.metrics.log("rows", float(sum(counts.values())))
    ctx.output("metrics", {"rows": counts, "total": sum(counts.values())})
    ctx.progress(1.0, "counted")


@row_count.role("host")
def host(ctx: Context, params: RowCountParams) -> None:
    """Count ours and tell the guest."""
    ctx.peer("guest").send("rows", _count(ctx, params))
    ctx.progress(1.0, "counted")
