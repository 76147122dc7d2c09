"""`homo_lr`: horizontal logistic regression, each client holding the same columns for different customers.

N data parties play `client` (at least 3, what secure aggregation needs) and one party with no data plays
`server`. Two secure-aggregation rounds first give everyone the global mean and scale of each feature, so all
clients standardise alike; then each training round the server sends the global weights, the chosen clients
run local epochs (FedAvg, or FedProx with `mu > 0`) and send their row-weighted change through secure
aggregation, and the server adds the survivors' average change. The server learns only sums over the
surviving clients (rows, feature moments, weighted changes, training loss), never one client's. Every party
ends with the same global model. See docs/protocols/homo_lr.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.columns import find_label
from fedbench.components.builtin.metrics import roc_auc
from fedbench.components.spec import Component, Port, register
from fedbench.errors import FedbenchError
from fedbench.federation import Context
from fedbench.ml.homo_lr import LocalData, local_update, log_loss, predict_proba, weight_shape
from fedbench.ml.lr_model import model_card, table_fingerprint
from fedbench.secagg.config import RoundConfig
from fedbench.secagg.errors import RoundAborted
from fedbench.secagg.federated import client_numbers, client_round, round_config, server_round

__all__ = ["HomoLRError", "HomoLRParams", "homo_lr"]

ROW_SCALE = 1024.0
"""A client's values enter a round weighted by its rows / 1024 (its share in the row-weighted average)."""
MAX_ROWS = 10_000_000
"""The most rows a client may bring: with the value ranges below, it fixes each round's clip range."""
STATS_RANGE = 1e4
"""The largest statistic a client sends, in units of the feature's power-of-two magnitude."""
LOSS_CAP = 100.0
"""A client's training loss is sent capped at this (with its weight change, in the same round)."""
STATISTICS = ("magnitude", "mean", "spread")
"""The rounds that standardise the features before training: each feature's power-of-two magnitude (from
the mean log2 of its mean absolute value), then its mean and its variance in units of that magnitude, so
every statistic stays near 1 whatever the feature's scale and keeps its precision in fixed point."""
MIN_CLIENTS = 3


class HomoLRParams(BaseModel):
    """Parameters of `homo_lr`."""

    model_config = {"extra": "forbid"}

    rounds: int = Field(default=20, ge=1, le=1000, description="training rounds (one aggregation each)")
    local_epochs: int = Field(
        default=1, ge=1, le=100, description="passes over its rows per client per round"
    )
    batch_size: int = Field(default=256, ge=1, le=1_000_000, description="rows per local gradient step")
    learning_rate: float = Field(default=0.5, gt=0.0, le=10.0, description="local step size")
    l2: float = Field(
        default=0.0, ge=0.0, le=100.0, description="L2 penalty on the weights (not the intercept)"
    )
    strategy: Literal["fedavg", "fedprox"] = Field(default="fedavg", description="how clients train locally")
    mu: float = Field(default=0.01, ge=0.0, le=10.0, description="FedProx: pull towards the global weights")
    clients_per_round: float = Field(
        default=1.0, gt=0.0, le=1.0, description="share of the clients sampled each round (at least 3)"
    )
    clip: float = Field(
        default=100.0, gt=0.0, le=1e9, description="largest row-weighted weight change a client may send"
    )
    stage_timeout: float = Field(
        default=60.0, gt=0.0, le=3600.0, description="seconds the server waits for each stage of a round"
    )
    label: str | None = Field(
        default=None, description="the label column; none: 'default' if present, else 'y'"
    )
    classes: list[str] | None = Field(
        default=None, description="the label's classes in order; none: the label is binary 0/1"
    )
    features: list[str] | None = Field(
        default=None, description="feature columns; none: every numeric column but the ID and the label"
    )
    id_column: str = Field(default="id", description="the ID column, left out of the features")
    missing: Literal["mean", "error"] = Field(
        default="mean",
        description="a missing feature value counts as the feature's global mean, or is an error",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of the client sampling")


homo_lr = register(
    Component(
        name="homo_lr",
        version="1",
        params=HomoLRParams,
        roles=("client", "server"),
        use="train",
        inputs=(
            Port("train", "table", "each client's training rows with the label (the server brings none)"),
            Port(
                "validation", "table", "each client's own validation rows, scored every round", optional=True
            ),
        ),
        outputs=(
            Port("model", "model", "the global model: features, standardisation, weights, model card"),
            Port("metrics", "metrics", "per round: aggregate training loss and who took part; ours"),
        ),
        description="Train a logistic regression across parties holding the same columns, with secure aggregation.",
    )
)


class HomoLRError(FedbenchError):
    """A horizontal training cannot go on: bad columns or labels, too few clients, or a diverged model."""

    code = "homo_lr"


# ----- the client ---------------------------------------------------------------------------------------------


class _Rows:
    """One client's table split into features and class numbers, checked against the params."""

    def __init__(self, table: pd.DataFrame, params: HomoLRParams, where: str) -> None:
        label = find_label(table, params.label, HomoLRError)
        if label is None:
            raise HomoLRError(f"{where}: no label column ('default' or 'y'); name it with the param label")
        if params.features is not None:
            missing = [f for f in params.features if f not in table.columns]
            if missing:
                raise HomoLRError(
                    f"{where}: no feature columns {missing}; the table has {list(table.columns)}"
                )
            names = list(params.features)
        else:
            names = [
                c
                for c in table.columns
                if c not in (label, params.id_column) and pd.api.types.is_numeric_dtype(table[c])
            ]
        if not names:
            raise HomoLRError(f"{where}: no numeric feature columns; name them with the param features")
        values = table[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.argwhere(np.isinf(values) | (np.isnan(values) & (params.missing == "error")))
        if bad.size:
            row, col = bad[0]
            raise HomoLRError(
                f"{where}: feature {names[col]!r} has a missing or infinite value in row {row}; fill or drop "
                "such rows first (with missing 'mean', a missing value counts as the feature's global mean)"
            )
        if len(values) > MAX_ROWS:
            raise HomoLRError(
                f"{where}: {len(values):,} rows, more than the {MAX_ROWS:,} a client may bring; sample them"
            )
        if len(values) == 0:
            raise HomoLRError(f"{where}: the table has no rows")
        self.features = names
        self.classes = list(params.classes) if params.classes is not None else ["0", "1"]
        as_text = table[label].map(_label_text)
        codes = as_text.map({c: i for i, c in enumerate(self.classes)})
        unknown = sorted(set(as_text[codes.isna()]))
        if unknown:
            fix = "list every class in the param classes" if params.classes else "give the param classes"
            raise HomoLRError(
                f"{where}: label {label!r} has values {unknown[:5]} outside the classes {self.classes}; {fix}"
            )
        self.x = values
        self.codes = codes.to_numpy(dtype=np.int64)


def _label_text(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _weighted(rows: int, values: np.ndarray) -> np.ndarray:
    """Values weighted by the client's rows, with the weight itself last (the round sums both)."""
    return np.append(np.asarray(values, dtype=np.float64).ravel() * (rows / ROW_SCALE), rows / ROW_SCALE)


def _ring_clip(units: float) -> float:
    """The clip range of a round whose unweighted values stay within [-units, units]."""
    return max(units, 1.0) * MAX_ROWS / ROW_SCALE


def _statistic(name: str, x: np.ndarray, found: dict[str, np.ndarray]) -> np.ndarray:
    """One client's values for statistics round `name` (over its present values), given the earlier rounds."""
    with np.errstate(all="ignore"):
        if name == "magnitude":
            values = np.log2(np.maximum(np.nanmean(np.abs(x), 0), 2.0**-60))
        elif name == "mean":
            values = np.nanmean(x / _unit(found["magnitude"]), 0)
        else:
            unit = _unit(found["magnitude"])
            values = np.nanmean(((x - found["mean"] * unit) / unit) ** 2, 0)
    return np.clip(np.nan_to_num(values, nan=0.0), -STATS_RANGE, STATS_RANGE)


def _per_feature(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A statistics round's vector: each value weighted by the feature's present rows / 1024, then those weights."""
    present = (~np.isnan(x)).sum(0) / ROW_SCALE
    return np.concatenate([values * present, present])


def _unit(magnitude: np.ndarray) -> np.ndarray:
    return 2.0 ** np.round(magnitude)


def _standardisation(found: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The global mean and standard deviation of each feature (a constant feature gets scale 1)."""
    unit = _unit(found["magnitude"])
    scale = np.sqrt(np.maximum(found["spread"], 0.0)) * unit
    return found["mean"] * unit, np.where(scale > 0, scale, 1.0)


@homo_lr.role("client")
def client(ctx: Context, params: HomoLRParams) -> None:
    """Agree on columns and scaling, then train locally each round we are chosen; keep the global model."""
    train = _Rows(ctx.input("train"), params, f"{ctx.party}'s training rows")
    validation_table = ctx.optional_input("validation")
    validation = (
        None
        if validation_table is None
        else _Rows(validation_table, params, f"{ctx.party}'s validation rows")
    )
    server = ctx.peer("server")
    server.send("schema", {"features": train.features, "classes": train.classes})
    agreed = server.recv("agreed", dict)
    if agreed.get("features") != train.features:
        raise HomoLRError(
            f"the clients' feature columns differ: ours are {train.features}, the server settled on "
            f"{agreed.get('features')}; give every client the same columns (or the param features)"
        )
    rows = len(train.x)
    ctx.progress(0.02, "agreeing on the features' scale")
    found: dict[str, np.ndarray] = {}
    for number, name in enumerate(STATISTICS):
        vector = _per_feature(train.x, _statistic(name, train.x, found))
        plan = server.recv(f"{name}-round", dict)
        sub = ctx.iter(number)
        config = round_config(
            sub, number, list(plan["participants"]), vector.size, clip=_ring_clip(STATS_RANGE), bits=64
        )
        client_round(sub, config, vector, params.stage_timeout)
        found[name] = _checked(server.recv(name, dict)["values"], len(train.features), name)
    mean, scale = _standardisation(found)
    shape = weight_shape(len(train.features), len(train.classes))
    columns = shape[1]
    data = LocalData.build(train.x, train.codes, mean, scale, columns)
    check = (
        None if validation is None else LocalData.build(validation.x, validation.codes, mean, scale, columns)
    )
    rng = ctx.private_rng("homo_lr local batches", params.seed)
    mu = params.mu if params.strategy == "fedprox" else 0.0
    taken = 0
    while True:
        plan = server.recv("plan", dict)
        weights = np.asarray(plan["weights"], dtype=np.float64)
        if weights.shape != shape or not np.all(np.isfinite(weights)):
            raise HomoLRError(f"the server sent weights of shape {weights.shape}, not {shape}, or not finite")
        r = int(plan["round"])
        if check is not None:
            _log_validation(ctx, weights, check, r)
        if plan.get("done"):
            break
        if ctx.party not in plan["participants"]:
            continue
        loss = log_loss(weights, data, params.l2)
        local = local_update(
            weights,
            data,
            epochs=params.local_epochs,
            batch_size=params.batch_size,
            learning_rate=params.learning_rate,
            l2=params.l2,
            mu=mu,
            rng=rng,
        )
        change = np.clip(local - weights, -params.clip, params.clip)
        update = np.append(_weighted(rows, change), rows / ROW_SCALE * min(loss, LOSS_CAP))
        planned = _training_round(ctx, r, plan["participants"], update.size, params)
        taken += client_round(ctx.iter(planned.number), planned.config, update, params.stage_timeout)
        ctx.progress(min(0.98, r / params.rounds), f"round {r} of {params.rounds}")
    metrics = {"rounds_taken_part": taken, "rows": rows, "train": _quality(weights, data)}
    if check is not None:
        metrics["validation"] = _quality(weights, check)
    model = _model(ctx, params, train.features, train.classes, mean, scale, weights)
    model["card"] = model_card(
        ctx, params.model_dump(), "secure aggregation", table_fingerprint(ctx.input("train")), rows, metrics
    )
    ctx.output("model", model)
    ctx.output("metrics", metrics)
    ctx.progress(1.0, "trained")


def _checked(values: Any, width: int, name: str) -> np.ndarray:
    """A statistic the server sent: one finite value per feature, else the round's result is refused."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (width,) or not np.all(np.isfinite(array)):
        raise HomoLRError(f"the server's {name} statistics have shape {array.shape}, not ({width},) finite")
    return array


def _quality(weights: np.ndarray, data: LocalData) -> dict[str, float]:
    p = predict_proba(weights, data.x)
    out = {"loss": log_loss(weights, data, 0.0)}
    if weights.shape[1] == 1:
        labels = data.y[:, 0]
        if 0 < labels.sum() < len(labels):
            out["auc"] = roc_auc(labels, p[:, 0])
        out["accuracy"] = float(((p[:, 0] >= 0.5) == (labels == 1)).mean())
    else:
        out["accuracy"] = float((p.argmax(1) == data.y.argmax(1)).mean())
    return out


def _log_validation(ctx: Context, weights: np.ndarray, check: LocalData, r: int) -> None:
    for name, value in _quality(weights, check).items():
        ctx.metrics.log(f"validation_{name}", value, step=r)


def _model(
    ctx: Context,
    params: HomoLRParams,
    features: list[str],
    classes: list[str],
    mean: np.ndarray,
    scale: np.ndarray,
    weights: np.ndarray,
) -> dict[str, Any]:
    """The global model as every party keeps it (each adds its own model card)."""
    return {
        "component": "homo_lr",
        "version": "1",
        "party": ctx.party,
        "project": ctx.project.get("id"),
        "features": features,
        "classes": classes,
        "mean": [float(v) for v in mean],
        "scale": [float(v) for v in scale],
        "weights": [[float(v) for v in row] for row in weights],
    }


@dataclass(frozen=True)
class _Planned:
    number: int
    config: RoundConfig


def _training_round(ctx: Context, r: int, parties: list[str], length: int, params: HomoLRParams) -> _Planned:
    """Training round `r`'s secure-aggregation round (numbered after the statistics rounds) and config."""
    numbers = client_numbers(ctx)
    number = len(STATISTICS) + r
    clip = _ring_clip(max(params.clip, LOSS_CAP))
    config = round_config(ctx.iter(number), number, [numbers[p] for p in parties], length, clip=clip, bits=64)
    return _Planned(number, config)


# ----- the server ---------------------------------------------------------------------------------------------


def _sum_round(ctx: Context, tag: str, round_number: int, names: list[str], timeout: float) -> np.ndarray:
    """A statistics round over every client: each feature's mean over the survivors' present values."""
    numbers = sorted(client_numbers(ctx).values())
    ctx.broadcast("client", f"{tag}-round", {"round": round_number, "participants": numbers})
    sub = ctx.iter(round_number)
    config = round_config(sub, round_number, numbers, 2 * len(names), clip=_ring_clip(STATS_RANGE), bits=64)
    result = server_round(sub, config, timeout)
    present = result.total[len(names) :]
    empty = [n for n, count in zip(names, present, strict=True) if not count > 0]
    if empty:
        raise HomoLRError(
            f"the {tag} round found no value of features {empty} in any client's rows (or every client "
            "dropped out); leave those features out with the param features"
        )
    return result.total[: len(names)] / present


@homo_lr.role("server")
def server(ctx: Context, params: HomoLRParams) -> None:
    """Check the clients agree, run the statistics rounds, then the training rounds; keep the global model."""
    numbers = client_numbers(ctx)
    if len(numbers) < MIN_CLIENTS:
        raise HomoLRError(
            f"horizontal training with secure aggregation needs at least {MIN_CLIENTS} clients, not "
            f"{len(numbers)}; add parties to the project"
        )
    schemas = ctx.gather("client", "schema", dict)
    features = {party: schema.get("features") for party, schema in schemas.items()}
    for party, sent in features.items():
        if not (isinstance(sent, list) and sent and all(isinstance(n, str) for n in sent)):
            raise HomoLRError(f"client {party} sent no list of feature names; it must run homo_lr version 1")
    first = sorted(features)[0]
    differ = sorted(p for p, f in features.items() if f != features[first])
    if differ:
        raise HomoLRError(
            f"clients {differ} have other feature columns than {first} ({features[first]}); give every "
            "client the same columns (or the param features)"
        )
    names: list[str] = list(features[first] or [])
    classes = list(schemas[first].get("classes", []))
    ctx.broadcast("client", "agreed", {"features": names})
    width = len(names)
    ctx.progress(0.02, "agreeing on the features' scale")
    found: dict[str, np.ndarray] = {}
    for number, name in enumerate(STATISTICS):
        found[name] = _sum_round(ctx, name, number, names, params.stage_timeout)
        ctx.broadcast("client", name, {"values": found[name]})
    mean, scale = _standardisation(found)
    shape = weight_shape(width, len(classes))
    weights = np.zeros(shape)
    rng = np.random.default_rng(params.seed)
    per_round = max(MIN_CLIENTS, math.ceil(params.clients_per_round * len(numbers)))
    parties = sorted(numbers)
    losses: list[float] = []
    history: list[dict[str, Any]] = []
    for r in range(1, params.rounds + 1):
        chosen = sorted(rng.choice(parties, size=min(per_round, len(parties)), replace=False).tolist())
        ctx.broadcast("client", "plan", {"round": r, "participants": chosen, "weights": weights})
        planned = _training_round(ctx, r, chosen, weights.size + 2, params)
        try:
            result = server_round(ctx.iter(planned.number), planned.config, params.stage_timeout)
        except RoundAborted as exc:
            ctx.warn(f"round {r} was abandoned and the model kept its weights: {exc}")
            history.append({"round": r, "abandoned": str(exc)})
            continue
        rows = result.total[-2]
        if not rows > 0:
            ctx.warn(f"round {r} summed no rows; the model kept its weights")
            continue
        weights = weights + (result.total[:-2] / rows).reshape(shape)
        loss = float(result.total[-1] / rows)
        losses.append(loss)
        ctx.metrics.log("loss", loss, step=r)
        ctx.metrics.log("clients", float(len(result.survivors)), step=r)
        history.append(
            {
                "round": r,
                "loss": loss,
                "clients": len(result.survivors),
                "dropped": len(result.dropped),
                "excluded": sorted(result.excluded.values()),
            }
        )
        for reason in result.excluded.values():
            ctx.warn(f"round {r}: {reason}")
        ctx.progress(min(0.98, (r) / params.rounds), f"round {r} of {params.rounds}: loss {loss:.4f}")
        if not np.all(np.isfinite(weights)):
            break
    ctx.broadcast(
        "client", "plan", {"round": params.rounds + 1, "participants": [], "weights": weights, "done": True}
    )
    _check_trained(losses, weights, params)
    metrics = {"rounds": history, "loss": losses[-1], "features": names, "classes": classes}
    model = _model(ctx, params, names, classes, mean, scale, weights)
    model["card"] = model_card(ctx, params.model_dump(), "secure aggregation", "", 0, {"loss": losses[-1]})
    ctx.output("model", model)
    ctx.output("metrics", metrics)
    ctx.progress(1.0, "trained")


def _check_trained(losses: list[float], weights: np.ndarray, params: HomoLRParams) -> None:
    """Refuse a model no round changed, or one whose loss ran away (never shown as a success)."""
    if not losses:
        raise HomoLRError("no training round completed: every round was abandoned; see the warnings")
    if (
        not np.all(np.isfinite(weights))
        or not math.isfinite(losses[-1])
        or losses[-1] > 2 * max(losses[0], 1e-9)
    ):
        raise HomoLRError(
            f"the training diverged (loss {losses[0]:.4g} at the first round, {losses[-1]:.4g} at the last); "
            f"lower learning_rate (now {params.learning_rate})"
        )
