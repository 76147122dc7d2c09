"""`evaluate`: metrics of a model's scores against the true labels, on the guest, for the UI to show and plot.

The guest holds a `scores` table (the id, the true label and the model's score or prediction), and optionally a
`validation_scores` table, evaluated side by side. Binary tasks give AUC, KS, log loss, metrics and the
confusion matrix at a threshold, a by-threshold table, ROC and KS curves and lift/gain by bucket; multi-class
tasks accuracy, F1 and the confusion matrix; regression MAE, MSE, RMSE and R2 (`metrics.py` computes them).
The host only takes part so the step runs on the project's parties; nothing is sent, and it outputs nothing.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.metrics import binary_metrics, multiclass_metrics, regression_metrics
from fedbench.components.spec import Component, Port, register
from fedbench.errors import ConfigError, FedbenchError
from fedbench.federation import Context

__all__ = ["EvaluateError", "EvaluateParams", "evaluate", "evaluate_table"]

_SCALARS = ("auc", "ks", "log_loss", "accuracy", "f1", "macro_f1", "rmse", "r2")


class EvaluateParams(BaseModel):
    """Parameters of `evaluate`."""

    model_config = {"extra": "forbid"}

    task: Literal["binary", "multiclass", "regression"] = Field(
        default="binary", description="what the model predicts: a 0/1 label, one of several classes, a number"
    )
    threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="binary: a score at or above this predicts class 1"
    )
    label: str = Field(default="y", description="the column holding the true label")
    score: str = Field(
        default="score", description="binary: the probability of class 1; regression: the prediction"
    )
    pred: str = Field(
        default="pred",
        description="multi-class: the predicted class (else the class whose score_<class> column is highest)",
    )
    bins: int = Field(default=10, ge=2, le=100, description="binary: buckets of the lift and gain table")


evaluate = register(
    Component(
        name="evaluate",
        version="1",
        params=EvaluateParams,
        roles=("guest", "host"),
        use="train",
        inputs=(
            Port("scores", "table", "the guest's scores: id, true label and score or prediction"),
            Port("validation_scores", "table", "scores on validation rows, shown beside", optional=True),
        ),
        outputs=(Port("metrics", "metrics", "metrics under `train` (and `validation`), guest only"),),
        description="Evaluate a model's scores: AUC, KS, lift, confusion matrix, ROC; or multi-class, regression.",
    )
)


class EvaluateError(FedbenchError):
    """A scores table lacks a column the task needs, or its values cannot be evaluated."""

    code = "evaluate"


def _column(table: pd.DataFrame, name: str, what: str) -> pd.Series:
    if name not in table.columns:
        raise EvaluateError(
            f"the scores table has no {what} column {name!r}; it has {list(table.columns)}; "
            f"set the param that names it"
        )
    return table[name]


def _class_scores(table: pd.DataFrame, classes: pd.Series) -> dict[Any, pd.Series]:
    """The score_<class> columns, keyed by class: a class as the models write it (text such as "high", or a
    number), else a number in the column's name."""
    by_name = {str(c): c for c in pd.unique(classes)}
    found: dict[Any, pd.Series] = {}
    for column in table.columns:
        name = str(column)
        if not name.startswith("score_"):
            continue
        if name[len("score_") :] in by_name:
            found[by_name[name[len("score_") :]]] = table[column]
        elif re.fullmatch(r"score_(-?\d+(?:\.\d+)?)", name):
            found[float(name[len("score_") :])] = table[column]
    return found


def evaluate_table(table: pd.DataFrame, params: EvaluateParams) -> dict[str, Any]:
    """The metrics of one scores table under `params` (the in-process core of the component)."""
    y = _column(table, params.label, "label")
    if params.task == "binary":
        return binary_metrics(
            y, _column(table, params.score, "score"), threshold=params.threshold, bins=params.bins
        )
    if params.task == "regression":
        return regression_metrics(y, _column(table, params.score, "prediction"))
    proba = _class_scores(table, pd.concat([y, table[params.pred]]) if params.pred in table.columns else y)
    if params.pred in table.columns:
        predicted = table[params.pred]
    elif proba:
        classes = sorted(proba)
        frame = pd.concat([proba[c] for c in classes], axis=1).to_numpy()
        predicted = pd.Series([classes[i] for i in frame.argmax(axis=1)])
    else:
        raise EvaluateError(
            f"multi-class evaluation needs a predicted-class column {params.pred!r} or score_<class> columns; "
            f"the table has {list(table.columns)}"
        )
    return multiclass_metrics(y, predicted, proba or None)


def _optional_input(ctx: Context, name: str) -> pd.DataFrame | None:
    try:
        table: pd.DataFrame = ctx.input(name)
    except ConfigError:
        return None
    return table


@evaluate.role("guest")
def guest(ctx: Context, params: EvaluateParams) -> None:
    """Evaluate the scores (and validation scores), log the headline numbers, write the metrics."""
    result: dict[str, Any] = {"task": params.task, "train": evaluate_table(ctx.input("scores"), params)}
    ctx.progress(0.5, "scores evaluated")
    validation = _optional_input(ctx, "validation_scores")
    if validation is not None:
        result["validation"] = evaluate_table(validation, params)
    for part in ("train", "validation"):
        for name in _SCALARS:
            value = result.get(part, {}).get(name)
            if value is not None:
                ctx.metrics.log(f"{part}_{name}", float(value))
    ctx.output("metrics", result)
    ctx.progress(1.0, "evaluated")


@evaluate.role("host")
def host(ctx: Context, params: EvaluateParams) -> None:
    """The host holds no labels or scores: it only takes part in the step."""
    ctx.progress(1.0, "nothing to evaluate on the host")
