"""A rogue guest for `score`: it skips its own row checks and keeps whatever partial scores the host sends.

With the setting `echo_alignment`, the guest's score role receives the host's alignment message and sends it
straight back (so the parties' row counts and ID digests always "agree", whatever rows the host scores), then
writes the host's partial scores as its `scores` output: the test sees exactly what the host released.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fb_rogue import rogue_setting

from fedbench.components.builtin.score import ScoreParams, score
from fedbench.federation import Context


def _echoing_guest(ctx: Context, params: ScoreParams) -> None:
    host = ctx.peer("host")
    host.send("lr.align", host.recv("lr.align"))
    partial = np.asarray(host.recv("score.partial"), dtype=np.float64).reshape(-1)
    ids = list(params.ids) if params.ids is not None else [f"row-{i}" for i in range(len(partial))]
    ctx.output("scores", pd.DataFrame({"id": ids[: len(partial)], "partial": partial[: len(ids)]}))
    ctx.output("metrics", {"rows": int(len(partial))})


if rogue_setting("echo_alignment"):
    score.role("guest")(_echoing_guest)
