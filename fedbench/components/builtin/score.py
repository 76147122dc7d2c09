"""`score`: apply a trained model jointly to new rows of each party (batch scoring).

Each party loads its own part of the model and its rows of a data set authorised in the project, aligned by a
PSI output or selected by a given ID list; what happens next depends on the model's `component`:

* `hetero_lr`: the host sends its partial scores X_h w_h of those rows to the guest, which adds its own,
  applies the sigmoid and writes the probabilities, predicted labels and, if asked, scorecard points
  (docs/protocols/hetero_lr.md);
* `hetero_secureboost`: the rows walk every tree with the host answering at its own splits, one exchange per
  level (`fedbench.ml.secureboost.predict`; docs/protocols/secureboost.md, "Scoring"); the guest writes
  probabilities and predicted labels, or the predicted values of a regression. Scorecard points are for
  logistic regression only: asking for them with a tree model fails the step with the fix.

Scoring counts as the project's `score` use. The host scores only rows that a PSI of the project released
to the guest, decided from its own records (`ctx.psi_releases()`): anything else, given by `ids` or in the
rows to score, is refused with one message that does not depend on which IDs the host holds, so `score` is
never a membership oracle beyond the PSI policy.
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
    ModelError,
    align_rows,
    check_model,
    guest_probabilities,
    host_send_scores,
    scorecard_points,
)
from fedbench.ml.secureboost.predict import GuestPart, HostPart, guest_margins, serve_walk

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
            Port(
                "model",
                "model",
                "each party's part of a hetero_lr or hetero_secureboost model of this project",
            ),
            Port(
                "data",
                "table",
                "each party's rows to score: a PSI output (or rows derived from one), or picked by ids",
            ),
        ),
        outputs=(
            Port(
                "scores",
                "table",
                "guest: id, score (probability or value), pred and points; host: the ids scored",
            ),
            Port("metrics", "metrics", "rows scored and the score distribution's quantiles"),
        ),
        description="Score new rows with a trained model (logistic regression or boosted trees): "
        "probabilities, labels, predicted values, scorecard points.",
    )
)


SCORED = {"hetero_lr": "logistic regression", "hetero_secureboost": "boosted trees"}
"""The training components whose models `score` applies, with what the model is in words."""


def _check_model(model: Any, role: str, ctx: Context) -> dict[str, Any]:
    """The model part, checked: a model `score` applies, of our role, made in this project."""
    if not isinstance(model, dict) or model.get("component") not in SCORED:
        raise ModelError(
            "the model input is not a model score can apply; pass the model output of a hetero_lr or "
            "hetero_secureboost step (or a model imported from its export)"
        )
    if model["component"] == "hetero_lr":
        return check_model(model, role, ctx)
    if model.get("role") != role:
        raise ModelError(f"the model part is the {model.get('role')}'s, but we play {role}")
    if model.get("project") != ctx.project.get("id"):
        raise ModelError(
            "the model was trained in another project and cannot be used in this one; train it in "
            f"project {ctx.project.get('name')!r}"
        )
    return model


def _load(ctx: Context, role: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """Our model part and our rows to score, aligned with the peer's (same IDs, order and model)."""
    model = _check_model(ctx.input("model"), role, ctx)
    params: ScoreParams = ctx.params
    if params.scorecard and model["component"] != "hetero_lr":
        raise ModelError(
            f"scorecard points are made from a logistic regression's log-odds; this is a "
            f"{SCORED[model['component']]} model: set scorecard to false (or score with a hetero_lr model)"
        )
    table = ctx.input("data")
    ids = params.ids
    if role == "host":
        table, ids = released_rows(ctx, table, model["id_column"], params.ids), None
    aligned = align_rows(
        ctx, "host" if role == "guest" else "guest", table, model["id_column"], ids, model["model_id"]
    )
    return model, aligned


def _quantiles(values: pd.Series) -> dict[str, float]:
    found = np.quantile(values, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    names = ["min", "p10", "p25", "median", "p75", "p90", "max"]
    return {q: float(v) for q, v in zip(names, found, strict=True)}


def _lr_scores(ctx: Context, params: ScoreParams, model: dict[str, Any], table: pd.DataFrame) -> pd.DataFrame:
    """The guest's scores with a hetero_lr model: the host's partial scores added to ours."""
    design = Design.from_dict(model["design"])
    proba = guest_probabilities(ctx, "score.partial", design, np.asarray(model["coef"]), table)
    classes = list(model["classes"])
    threshold = params.threshold if params.threshold is not None else float(model.get("threshold", 0.5))
    label = model.get("label")
    truth = table[label] if label in table.columns else None
    out = scores_table(table[model["id_column"]], truth, proba, classes, threshold)
    if len(classes) == 2 and params.scorecard:
        out["points"] = np.round(
            scorecard_points(out["score"], params.base_score, params.base_odds, params.pdo), 1
        )
    return out


def _tree_scores(
    ctx: Context, params: ScoreParams, model: dict[str, Any], table: pd.DataFrame
) -> pd.DataFrame:
    """The guest's scores with a hetero_secureboost model: every tree walked with the host (`predict`)."""
    part = GuestPart.from_model(model)
    margin = guest_margins(ctx, part, part.matrix(table))
    label = model.get("label")
    truth = table[label] if label in table.columns else None
    ids = table[model["id_column"]]
    if part.objective == "regression":
        if params.threshold is not None:
            ctx.warn("the threshold applies to classification models; a regression model's scores are values")
        out = pd.DataFrame({"id": ids.to_numpy()})
        if truth is not None:
            out["y"] = truth.to_numpy()
        out["score"] = part.transform(margin)
        return out
    proba = part.transform(margin)
    threshold = params.threshold if params.threshold is not None else float(model.get("threshold", 0.5))
    return scores_table(ids, truth, proba.reshape(len(margin), -1), part.classes, threshold)


@score.role("guest")
def guest(ctx: Context, params: ScoreParams) -> None:
    """Score our aligned rows with the host: probabilities, labels and points, or predicted values."""
    model, table = _load(ctx, "guest")
    ctx.progress(0.3, f"scoring {len(table)} rows")
    if model["component"] == "hetero_lr":
        out = _lr_scores(ctx, params, model, table)
    else:
        out = _tree_scores(ctx, params, model, table)
    metrics: dict[str, Any] = {"rows": len(out)}
    if "score" in out.columns and len(out):
        metrics["score_quantiles"] = _quantiles(out["score"])
    if "pred" in out.columns and "score" in out.columns and len(out):
        positive = model.get("classes", [0, 1])[1]
        metrics["predicted_positive_rate"] = float((out["pred"] == positive).mean())
        ctx.metrics.log("predicted_positive_rate", metrics["predicted_positive_rate"])
    ctx.metrics.log("rows_scored", len(out))
    ctx.output("scores", out)
    ctx.output("metrics", metrics)
    ctx.progress(1.0, f"{len(out)} rows scored")


@score.role("host")
def host(ctx: Context, params: ScoreParams) -> None:
    """Send our partial scores (hetero_lr), or answer the guest's walk at our splits (hetero_secureboost)."""
    model, table = _load(ctx, "host")
    if model["component"] == "hetero_lr":
        design = Design.from_dict(model["design"])
        host_send_scores(ctx, "score.partial", design, np.asarray(model["coef"]), table)
    else:
        part = HostPart.from_model(model)
        serve_walk(ctx, part, part.matrix(table))
    ctx.output("scores", pd.DataFrame({"id": table[model["id_column"]].to_numpy()}))
    ctx.output("metrics", {"rows": len(table)})
    ctx.progress(1.0, f"{len(table)} rows scored")
