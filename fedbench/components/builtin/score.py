"""`score`: apply a trained `hetero_lr` model jointly to new rows of each party (batch scoring).

Each party loads its own part of the model and its rows of a data set authorised in the project, aligned by a
PSI output or selected by a given ID list. The host sends its partial scores X_h w_h of those rows to the
guest, which adds its own, applies the sigmoid and writes the probabilities, predicted labels and, if asked,
scorecard points. Scoring counts as the project's `score` use.

The host scores only rows that a PSI of the project released to the guest, decided from its own records
(`ctx.psi_releases()`): anything else, given by `ids` or in the rows to score, is refused with one message
that does not depend on which IDs the host holds, so `score` is never a membership oracle beyond the PSI
policy. See docs/protocols/hetero_lr.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.hetero_lr import scores_table
from fedbench.components.builtin.released import released_rows
from fedbench.components.spec import Component, Port, register
from fedbench.federation import Context
from fedbench.ml.design import Design
from fedbench.ml.lr_model import (
    align_rows,
    check_model,
    guest_probabilities,
    host_send_scores,
    scorecard_points,
)

__all__ = ["ScoreParams", "score"]


class ScoreParams(BaseModel):
    """Parameters of `score`."""

    model_config = {"extra": "forbid"}

    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="binary: score at or above predicts 1; none: the model's own",
    )
    scorecard: bool = Field(default=False, description="add scorecard points (higher: lower risk)")
    base_score: float = Field(default=600.0, ge=0.0, le=10_000.0, description="points at the base odds")
    base_odds: float = Field(
        default=50.0, gt=0.0, le=1e6, description="good:bad odds that earn the base score"
    )
    pdo: float = Field(default=20.0, gt=0.0, le=1_000.0, description="points to double the odds")
    ids: list[str] | None = Field(
        default=None,
        description="score only these IDs, in this order (each released to the guest by a PSI of the project); "
        "none: the (aligned) table as it is",
    )


score = register(
    Component(
        name="score",
        version="1",
        params=ScoreParams,
        roles=("guest", "host"),
        use="score",
        inputs=(
            Port("model", "model", "each party's part of a hetero_lr model of this project"),
            Port(
                "data",
                "table",
                "each party's rows to score: a PSI output (or rows derived from one), or picked by ids",
            ),
        ),
        outputs=(
            Port("scores", "table", "guest: id, score (probability), pred and points; host: the ids scored"),
            Port("metrics", "metrics", "rows scored and the score distribution's quantiles"),
        ),
        description="Score new rows with a trained hetero_lr model: probabilities, labels, scorecard points.",
    )
)


def _load(ctx: Context, role: str) -> tuple[dict[str, Any], pd.DataFrame, Design]:
    model = check_model(ctx.input("model"), role, ctx)
    table = ctx.input("data")
    params: ScoreParams = ctx.params
    ids = params.ids
    if role == "host":
        table, ids = released_rows(ctx, table, model["id_column"], params.ids), None
    aligned = align_rows(
        ctx, "host" if role == "guest" else "guest", table, model["id_column"], ids, model["model_id"]
    )
    return model, aligned, Design.from_dict(model["design"])


@score.role("guest")
def guest(ctx: Context, params: ScoreParams) -> None:
    """Add the host's partial scores to ours, write probabilities, labels and points."""
    model, table, design = _load(ctx, "guest")
    ctx.progress(0.3, f"scoring {len(table)} rows")
    proba = guest_probabilities(ctx, "score.partial", design, np.asarray(model["coef"]), table)
    classes = list(model["classes"])
    threshold = params.threshold if params.threshold is not None else float(model.get("threshold", 0.5))
    label = model.get("label")
    truth = table[label] if label in table.columns else None
    out = scores_table(table[model["id_column"]], truth, proba, classes, threshold)
    if truth is None:
        out = out.drop(columns=["y"], errors="ignore")
    metrics: dict[str, Any] = {"rows": len(out)}
    if len(classes) == 2:
        if params.scorecard:
            out["points"] = np.round(
                scorecard_points(out["score"], params.base_score, params.base_odds, params.pdo), 1
            )
        if len(out):
            quantiles = np.quantile(out["score"], [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
            metrics["score_quantiles"] = {
                q: float(v)
                for q, v in zip(["min", "p10", "p25", "median", "p75", "p90", "max"], quantiles, strict=True)
            }
            metrics["predicted_positive_rate"] = float((out["pred"] == classes[1]).mean())
            ctx.metrics.log("predicted_positive_rate", metrics["predicted_positive_rate"])
    ctx.metrics.log("rows_scored", len(out))
    ctx.output("scores", out)
    ctx.output("metrics", metrics)
    ctx.progress(1.0, f"{len(out)} rows scored")


@score.role("host")
def host(ctx: Context, params: ScoreParams) -> None:
    """Send our partial scores of the aligned rows to the guest."""
    model, table, design = _load(ctx, "host")
    host_send_scores(ctx, "score.partial", design, np.asarray(model["coef"]), table)
    ctx.output("scores", pd.DataFrame({"id": table[model["id_column"]].to_numpy()}))
    ctx.output("metrics", {"rows": len(table)})
    ctx.progress(1.0, f"{len(table)} rows scored")
