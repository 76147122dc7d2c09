"""`preprocess`: missing-value fill, outlier capping, scaling and one-hot encoding of each party's own features.

Each party fits the transform on its own training table and writes the fitted state (fill values, caps,
scaling parameters, category lists) as its `model`; given that state as the `fitted` input it applies it
unchanged instead, so validation, test and scoring tables get exactly the training-time transform. No value
crosses a party boundary: the parties only exchange their row and feature counts (and any local problem), so
the step runs and fails on both sides together.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from fedbench.components.builtin.columns import find_label
from fedbench.components.spec import Component, Port, register
from fedbench.errors import ConfigError, FedbenchError
from fedbench.federation import Context

__all__ = [
    "OTHER",
    "STATE_VERSION",
    "PreprocessError",
    "PreprocessParams",
    "apply_state",
    "fit_state",
    "missing_features",
    "preprocess",
]

STATE_VERSION = 1
"""The version of the fitted state's layout."""

OTHER = "other"
"""The category that collects the values beyond `max_categories` (and unseen ones)."""


class PreprocessError(FedbenchError):
    """A table does not fit the params or the fitted state, or the parties' tables do not align."""

    code = "preprocess"


class PreprocessParams(BaseModel):
    """Parameters of `preprocess` (ignored, except `label` and `id_column`, when a `fitted` state is given)."""

    model_config = {"extra": "forbid"}

    fill: Literal["none", "constant", "mean", "median", "mode"] = Field(
        default="none", description="how missing values of numeric features are filled (before capping)"
    )
    fill_value: float = Field(default=0.0, description="the value missing values get with fill='constant'")
    cap_low: float | None = Field(
        default=None, ge=0.0, le=1.0, description="cap values below this quantile (e.g. 0.01); none: no cap"
    )
    cap_high: float | None = Field(
        default=None, ge=0.0, le=1.0, description="cap values above this quantile (e.g. 0.99); none: no cap"
    )
    scale: Literal["none", "minmax", "standard"] = Field(
        default="none",
        description="minmax: to [0, 1] over the training rows; standard: mean 0, std 1 (population std)",
    )
    categorical: list[str] = Field(
        default_factory=list, description="features to one-hot encode (on the party that holds them)"
    )
    max_categories: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="one-hot columns per feature; rarer values go to an 'other' column",
    )
    label: str | None = Field(
        default=None, description="the guest's label column, kept as is; none: 'default' or 'y' if present"
    )
    id_column: str = Field(default="id", description="the ID column, kept as is")

    @model_validator(mode="after")
    def _caps_in_order(self) -> Self:
        if self.cap_low is not None and self.cap_high is not None and self.cap_low >= self.cap_high:
            raise ValueError(f"cap_low ({self.cap_low}) must be below cap_high ({self.cap_high})")
        return self


preprocess = register(
    Component(
        name="preprocess",
        version="1",
        params=PreprocessParams,
        roles=("guest", "host"),
        use="train",
        inputs=(
            Port("data", "table", "each party's rows: the training rows to fit on, or the rows to transform"),
            Port(
                "fitted",
                "model",
                "a fitted state from an earlier preprocess, applied unchanged",
                optional=True,
            ),
        ),
        outputs=(
            Port("data", "table", "our rows with transformed features (ID and label as they were)"),
            Port(
                "model",
                "model",
                "the fitted state: fill values, caps, scaling and categories of our features",
            ),
        ),
        description="Fill, cap, scale and one-hot encode each party's own features, fitted once and reused.",
    )
)


def _label(table: pd.DataFrame, label: str | None) -> str | None:
    return find_label(table, label, PreprocessError)


def _is_numeric(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column))


def _category(value: Any) -> str:
    """A value as a category name: 3.0 and 3 are both '3'."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _finite(value: Any, fallback: float) -> float:
    number = float(value)
    return fallback if math.isnan(number) else number


def _quantile(values: pd.Series, q: float) -> float | None:
    number = float(values.quantile(q))
    return None if math.isnan(number) else number


def _fit_numeric(column: pd.Series, params: PreprocessParams) -> dict[str, Any]:
    values = column.astype(float)
    fill: float | None = None
    if params.fill == "constant":
        fill = params.fill_value
    elif params.fill == "mean":
        fill = _finite(values.mean(), params.fill_value)
    elif params.fill == "median":
        fill = _finite(values.median(), params.fill_value)
    elif params.fill == "mode":
        modes = values.mode(dropna=True)
        fill = float(modes.iloc[0]) if len(modes) else params.fill_value
    if fill is not None:
        values = values.fillna(fill)
    low = None if params.cap_low is None else _quantile(values, params.cap_low)
    high = None if params.cap_high is None else _quantile(values, params.cap_high)
    values = values.clip(lower=low, upper=high)
    shift, factor = 0.0, 1.0
    if params.scale == "minmax":
        shift = _finite(values.min(), 0.0)
        spread = _finite(values.max(), shift) - shift
        factor = spread if spread > 0 else 1.0
    elif params.scale == "standard":
        shift = _finite(values.mean(), 0.0)
        std = _finite(values.std(ddof=0), 0.0)
        factor = std if std > 0 else 1.0
    return {"kind": "numeric", "fill": fill, "low": low, "high": high, "shift": shift, "factor": factor}


def _fit_categorical(column: pd.Series, limit: int) -> dict[str, Any]:
    names = column.dropna().map(_category)
    counts = names.value_counts()
    ordered = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
    categories = [str(name) for name, _ in ordered[:limit]]
    return {"kind": "categorical", "categories": categories, "other": len(ordered) > limit}


def fit_state(table: pd.DataFrame, params: PreprocessParams, role: str) -> dict[str, Any]:
    """The fitted state of our features (every column but the ID and the label) on a training table."""
    label = _label(table, params.label) if role == "guest" else None
    features = [str(c) for c in table.columns if c not in (params.id_column, label)]
    reserved = [name for name in params.categorical if name in (params.id_column, label)]
    if reserved:
        raise PreprocessError(f"categorical features {reserved} are the ID or the label, not features")
    transforms: dict[str, dict[str, Any]] = {}
    for name in features:
        column = table[name]
        if name in params.categorical:
            transforms[name] = _fit_categorical(column, params.max_categories)
        elif _is_numeric(column):
            transforms[name] = _fit_numeric(column, params)
        else:
            transforms[name] = {"kind": "passthrough"}
    return {
        "component": "preprocess",
        "version": STATE_VERSION,
        "role": role,
        "features": features,
        "transforms": transforms,
    }


def _apply_numeric(column: pd.Series, spec: dict[str, Any]) -> pd.Series:
    values = column.astype(float)
    if spec["fill"] is not None:
        values = values.fillna(float(spec["fill"]))
    values = values.clip(lower=spec["low"], upper=spec["high"])
    return (values - float(spec["shift"])) / float(spec["factor"])


def _apply_categorical(name: str, column: pd.Series, spec: dict[str, Any]) -> dict[str, pd.Series]:
    present = column.notna()
    names = column.map(_category).where(present, None)
    out = {f"{name}={c}": (names == c).astype(float) for c in spec["categories"]}
    if spec["other"]:
        out[f"{name}={OTHER}"] = (present & ~names.isin(spec["categories"])).astype(float)
    return out


def _check_state(state: Any, role: str) -> dict[str, Any]:
    if not isinstance(state, dict) or state.get("component") != "preprocess":
        raise PreprocessError("the fitted input is not the model output of a preprocess step")
    if state.get("version") != STATE_VERSION:
        raise PreprocessError(f"the fitted state has version {state.get('version')}, we read {STATE_VERSION}")
    if state.get("role") != role:
        raise PreprocessError(f"the fitted state was made by the {state.get('role')}, we are the {role}")
    return state


def missing_features(table: pd.DataFrame, state: dict[str, Any]) -> list[str]:
    """The fitted state's features the table does not have."""
    return [name for name in state["features"] if name not in table.columns]


def apply_state(table: pd.DataFrame, state: dict[str, Any]) -> pd.DataFrame:
    """The table with each fitted feature transformed in place (one-hot columns where the feature was);
    columns the state does not know (ID, label, others) are kept as they are."""
    missing = missing_features(table, state)
    if missing:
        raise PreprocessError(f"the table lacks the fitted features {missing}")
    columns: dict[str, pd.Series] = {}
    for name in table.columns:
        spec = state["transforms"].get(str(name))
        column = table[name]
        if spec is None or spec["kind"] == "passthrough":
            columns[str(name)] = column
        elif spec["kind"] == "numeric":
            columns[str(name)] = _apply_numeric(column, spec)
        else:
            columns.update(_apply_categorical(str(name), column, spec))
    return pd.DataFrame(columns, index=table.index).reset_index(drop=True)


def _fitted(ctx: Context) -> Any:
    try:
        return ctx.input("fitted")
    except ConfigError:
        return None


def _run(ctx: Context, params: PreprocessParams, peer_role: str) -> None:
    table = ctx.input("data")
    given = _fitted(ctx)
    problem: str | None = None
    state: dict[str, Any] = {}
    try:
        state = fit_state(table, params, ctx.role) if given is None else _check_state(given, ctx.role)
        missing = missing_features(table, state)
        if missing:
            problem = f"the {ctx.role}'s table lacks the fitted features {missing}"
    except PreprocessError as exc:
        problem = f"the {ctx.role}: {exc}"
    peer = ctx.peer(peer_role)
    features = len(state.get("features", []))
    peer.send("counts", {"rows": len(table), "features": features, "problem": problem})
    theirs = peer.recv("counts")
    if not isinstance(theirs, dict) or set(theirs) != {"rows", "features", "problem"}:
        raise PreprocessError(f"the {peer_role}'s counts are not in the expected form")
    if problem is not None:
        raise PreprocessError(problem)
    if theirs["problem"] is not None:
        raise PreprocessError(f"stopped because of {theirs['problem']}")
    if int(theirs["rows"]) != len(table):
        raise PreprocessError(
            f"the parties' tables are not aligned: we hold {len(table)} rows, the {peer_role} {theirs['rows']}"
        )
    ctx.progress(0.5, f"{'applying' if given is not None else 'fitted'} the transform of {features} features")
    out = apply_state(table, state)
    ctx.output("data", out)
    ctx.output("model", state)
    ctx.metrics.log("columns", float(len(out.columns)))
    ctx.progress(1.0, f"{len(out)} rows, {len(out.columns)} columns")


@preprocess.role("guest")
def guest(ctx: Context, params: PreprocessParams) -> None:
    """Fit (or take) and apply our transform; our label column is kept as it is."""
    _run(ctx, params, "host")


@preprocess.role("host")
def host(ctx: Context, params: PreprocessParams) -> None:
    """Fit (or take) and apply our transform."""
    _run(ctx, params, "guest")
