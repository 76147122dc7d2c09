"""`select`: keep features by IV, top-k IV, missing rate, variance or a manual list; each party learns only its own.

Feature selection prunes what downstream training sees. Missing rate, variance and the manual list are local:
each party applies them to its own columns. The IV of every feature, the host's included, is held by the guest
(the `model` output of `binning`), so the IV criteria are decided by the guest, which tells the host only which
of the host's own features pass them (a list of names). The host's other decisions stay with the host, so
each party learns exactly which of its own features are kept; the guest's decision table (metrics) shows its
own features in full and the host's only by IV.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.columns import find_label
from fedbench.components.spec import Component, Port, register
from fedbench.errors import ConfigError, FedbenchError
from fedbench.federation import Context

__all__ = ["SelectError", "SelectParams", "decide", "iv_passing", "select"]

"""The label columns the guest carries along, in order, when neither `label` nor the binning model names one."""


class SelectParams(BaseModel):
    """Parameters of `select`."""

    model_config = {"extra": "forbid"}

    iv_min: float | None = Field(
        default=None, ge=0.0, description="keep features whose IV is at least this (needs binning_model)"
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        description="keep the k features of highest IV over both parties (needs binning_model)",
    )
    max_missing: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="keep features whose share of missing values is at most this",
    )
    min_variance: float | None = Field(
        default=None, ge=0.0, description="keep numeric features whose variance is at least this"
    )
    keep: list[str] | None = Field(
        default=None, description="keep only these features (each party applies it to its own columns)"
    )
    label: str | None = Field(
        default=None,
        description="the guest's label column, carried along; none: the binning model's, else 'default' or 'y'",
    )
    id_column: str = Field(default="id", description="the ID column, carried along and never a feature")


select = register(
    Component(
        name="select",
        version="1",
        params=SelectParams,
        roles=("guest", "host"),
        use="train",
        inputs=(
            Port("data", "table", "each party's rows"),
            Port("binning_model", "model", "the binning step's model, for the IV criteria", optional=True),
        ),
        outputs=(
            Port("data", "table", "our ID, the label (guest) and our kept features"),
            Port("model", "model", "the list of our kept features"),
            Port(
                "metrics", "metrics", "our decision table (the guest's also lists the host's features by IV)"
            ),
        ),
        description="Keep features by IV, top-k IV, missing rate, variance or a manual list.",
    )
)


class SelectError(FedbenchError):
    """An IV criterion without a binning model, or a binning model that does not fit."""

    code = "select"


def _uses_iv(params: SelectParams) -> bool:
    return params.iv_min is not None or params.top_k is not None


def iv_passing(iv: dict[str, dict[str, float]], params: SelectParams) -> set[tuple[str, str]]:
    """The (party, feature) pairs that pass `iv_min` and are among the `top_k` highest IVs over both parties."""
    ranked = sorted(
        ((float(value), party, name) for party, table in iv.items() for name, value in table.items()),
        key=lambda r: (-r[0], r[1], r[2]),
    )
    if params.iv_min is not None:
        ranked = [r for r in ranked if r[0] >= params.iv_min]
    if params.top_k is not None:
        ranked = ranked[: params.top_k]
    return {(party, name) for _, party, name in ranked}


def decide(
    table: pd.DataFrame, features: list[str], params: SelectParams, iv_kept: set[str] | None
) -> list[dict[str, Any]]:
    """One decision row per feature of ours: missing rate, variance, and whether it is kept and why not."""
    rows = []
    for name in features:
        column = table[name]
        missing = float(column.isna().mean()) if len(column) else 0.0
        variance = None
        if pd.api.types.is_numeric_dtype(column.dtype) and column.notna().sum() > 1:
            variance = float(np.nanvar(column.to_numpy(dtype=np.float64), ddof=1))
        reasons = []
        if params.keep is not None and name not in params.keep:
            reasons.append("not in keep")
        if params.max_missing is not None and missing > params.max_missing:
            reasons.append("missing rate")
        if params.min_variance is not None and variance is not None and variance < params.min_variance:
            reasons.append("variance")
        if iv_kept is not None and name not in iv_kept:
            reasons.append("iv")
        rows.append(
            {
                "feature": name,
                "missing_rate": missing,
                "variance": variance,
                "kept": not reasons,
                "dropped_by": reasons,
            }
        )
    return rows


def _binning_model(ctx: Context) -> Any:
    try:
        return ctx.input("binning_model")
    except ConfigError:
        return None


def _label(table: pd.DataFrame, params: SelectParams, model: Any) -> str | None:
    if params.label is None and isinstance(model, dict) and model.get("label") in table.columns:
        return str(model["label"])
    return find_label(table, params.label, SelectError)


def _write(
    ctx: Context,
    table: pd.DataFrame,
    carried: list[str],
    decisions: list[dict[str, Any]],
    extra: dict[str, Any],
) -> None:
    kept = [row["feature"] for row in decisions if row["kept"]]
    ctx.output("data", table[[*carried, *kept]].reset_index(drop=True))
    ctx.output("model", {"component": "select", "role": ctx.role, "features": kept})
    ctx.output("metrics", {"decisions": decisions, **extra})
    ctx.metrics.log("features_kept", float(len(kept)))
    ctx.progress(1.0, f"kept {len(kept)} of {len(decisions)} features")


@select.role("guest")
def guest(ctx: Context, params: SelectParams) -> None:
    """Decide our features; under IV criteria, tell the host which of its features pass them."""
    table = ctx.input("data")
    model = _binning_model(ctx)
    label = _label(table, params, model)
    carried = [c for c in (params.id_column, label) if c is not None and c in table.columns]
    features = [str(c) for c in table.columns if c not in carried]
    iv_kept: set[str] | None = None
    host_rows: list[dict[str, Any]] = []
    if _uses_iv(params):
        if (
            not isinstance(model, dict)
            or model.get("role") != "guest"
            or not isinstance(model.get("iv"), dict)
        ):
            raise SelectError(
                "iv_min and top_k need the guest's binning model: connect binning's model output to binning_model"
            )
        iv = {party: dict(model["iv"].get(party, {})) for party in ("guest", "host")}
        passing = iv_passing(iv, params)
        iv_kept = {name for party, name in passing if party == "guest"}
        host_kept = sorted(name for party, name in passing if party == "host")
        ctx.peer("host").send("iv_kept", host_kept)
        host_rows = [
            {"party": "host", "feature": name, "iv": float(value), "passes_iv": name in host_kept}
            for name, value in sorted(iv["host"].items(), key=lambda kv: -float(kv[1]))
        ]
    decisions = decide(table, features, params, iv_kept)
    if isinstance(model, dict) and isinstance(model.get("iv"), dict):
        for row in decisions:
            row["iv"] = model["iv"].get("guest", {}).get(row["feature"])
    for row in decisions:
        row["party"] = "guest"
    _write(ctx, table, carried, decisions, {"host_by_iv": host_rows})


@select.role("host")
def host(ctx: Context, params: SelectParams) -> None:
    """Decide our features locally; under IV criteria, keep only those the guest says pass them."""
    table = ctx.input("data")
    carried = [params.id_column] if params.id_column in table.columns else []
    features = [str(c) for c in table.columns if c not in carried]
    iv_kept: set[str] | None = None
    if _uses_iv(params):
        names = ctx.peer("guest").recv("iv_kept")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SelectError("the guest's list of our features passing the IV criteria is malformed")
        iv_kept = set(names)
    decisions = decide(table, features, params, iv_kept)
    for row in decisions:
        row["party"] = "host"
    _write(ctx, table, carried, decisions, {})
