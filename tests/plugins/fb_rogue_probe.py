"""A rogue patch that only proves the harness: the rogue host reports a row count it does not have."""

from __future__ import annotations

from fb_rogue import rogue_setting

from fedbench.components.builtin.row_count import row_count
from fedbench.federation import Context


def _lying_host(ctx: Context, params: object) -> None:
    ctx.peer("guest").send("rows", int(rogue_setting("claimed_rows", 0)))
    ctx.progress(1.0, "counted")


if rogue_setting("claimed_rows") is not None:
    row_count.role("host")(_lying_host)
