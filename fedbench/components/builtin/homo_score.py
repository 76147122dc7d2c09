"""`homo_score`: each client scores its own rows with its copy of a horizontal model, on its own node.

A horizontal model is global: every party holds all of it (`homo_lr`, `homo_nn`), so scoring needs no peer and sends no
message. Each party playing `client` writes, for its rows, the probability of each class (binary: `score`, the
probability of the second class), the predicted class and, when the table has the model's label, the true
label beside it. Nothing leaves the party.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.horizontal import label_text
from fedbench.components.builtin.metrics import roc_auc
from fedbench.components.spec import Component, Port, register
from fedbench.federation import Context
from fedbench.ml.homo_lr import predict_proba
from fedbench.ml.homo_nn import predict_proba as network_proba
from fedbench.ml.lr_model import ModelError

__all__ = ["HomoScoreParams", "homo_score", "score_table"]


class HomoScoreParams(BaseModel):
    """Parameters of `homo_score`."""

    model_config = {"extra": "forbid"}

    threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="binary: score at or above predicts the 2nd class"
    )
    label: str | None = Field(
        default=None, description="the label column to keep beside the scores, if present"
    )
    id_column: str = Field(default="id", description="the ID column, kept beside the scores")


homo_score = register(
    Component(
        name="homo_score",
        version="1",
        params=HomoScoreParams,
        roles=("client",),
        use="score",
        inputs=(
            Port("model", "model", "the global model of a homo_lr or homo_nn step"),
            Port("data", "table", "the rows to score, with the model's feature columns"),
        ),
        outputs=(
            Port(
                "scores",
                "table",
                "id, each class's probability (binary: score), prediction, label if present",
            ),
            Port("metrics", "metrics", "rows scored, score quantiles, AUC when the label is present"),
        ),
        description="Score each party's own rows with a horizontal model, locally.",
    )
)


def _checked(model: Any, ctx: Context) -> dict[str, Any]:
    if not isinstance(model, dict) or model.get("component") not in ("homo_lr", "homo_nn"):
        raise ModelError(
            "the model input is not a horizontal model; pass the model output of a homo_lr or homo_nn step"
        )
    if model.get("project") != ctx.project.get("id"):
        raise ModelError(
            "the model was trained in another project and cannot be used in this one; train it in "
            f"project {ctx.project.get('name')!r}"
        )
    return model


def score_table(model: dict[str, Any], table: pd.DataFrame, params: HomoScoreParams) -> pd.DataFrame:
    """The scores of `table`'s rows under a horizontal `model` (a missing value counts as the global mean)."""
    features: list[str] = list(model["features"])
    missing = [f for f in features if f not in table.columns]
    if missing:
        raise ModelError(f"the rows to score lack the model's feature columns {missing}")
    x = table[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    mean, scale = np.asarray(model["mean"]), np.asarray(model["scale"])
    x = (np.where(np.isnan(x), mean, x) - mean) / scale
    if model["component"] == "homo_nn":
        proba = network_proba(np.asarray(model["weights"]), list(model["layers"]), model["activation"], x)
    else:
        proba = predict_proba(np.asarray(model["weights"]), np.hstack([x, np.ones((len(x), 1))]))
    classes: list[Any] = _typed(list(model["classes"]))
    out = pd.DataFrame(
        {"id": table[params.id_column].to_numpy()} if params.id_column in table.columns else {}
    )
    if proba.shape[1] == 1:
        out["score"] = proba[:, 0]
        out["pred"] = np.where(proba[:, 0] >= params.threshold, classes[1], classes[0])
    else:
        for i, name in enumerate(classes):
            out[f"p_{name}"] = proba[:, i]
        out["pred"] = np.asarray(classes, dtype=object)[proba.argmax(1)]
    label = params.label or next((c for c in ("default", "y") if c in table.columns), None)
    if label is not None and label in table.columns:
        out["y"] = table[label].to_numpy()
    return out


def _typed(classes: list[str]) -> list[Any]:
    """The classes as numbers when they all are whole numbers (the label was numeric), else as text."""
    try:
        return [int(c) for c in classes]
    except ValueError:
        return classes


def _text(values: Any) -> np.ndarray:
    return np.asarray([label_text(v) for v in values])


@homo_score.role("client")
def client(ctx: Context, params: HomoScoreParams) -> None:
    """Score our rows with our copy of the global model."""
    model = _checked(ctx.input("model"), ctx)
    table = ctx.input("data")
    ctx.progress(0.3, f"scoring {len(table)} rows")
    out = score_table(model, table, params)
    metrics: dict[str, Any] = {"rows": len(out)}
    if "score" in out.columns and len(out):
        metrics["score_quantiles"] = {
            q: float(v)
            for q, v in zip(("p10", "median", "p90"), np.quantile(out["score"], [0.1, 0.5, 0.9]), strict=True)
        }
        if "y" in out.columns:
            truth = (_text(out["y"]) == str(model["classes"][1])).astype(float)
            if 0 < truth.sum() < len(truth):
                metrics["auc"] = roc_auc(truth, out["score"].to_numpy())
    if "y" in out.columns and len(out):
        metrics["accuracy"] = float((_text(out["pred"]) == _text(out["y"])).mean())
    ctx.metrics.log("rows_scored", len(out))
    ctx.output("scores", out)
    ctx.output("metrics", metrics)
    ctx.progress(1.0, f"{len(out)} rows scored")
