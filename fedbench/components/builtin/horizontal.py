"""What every horizontal model shares: its params, the clients' rows, and the two roles' round loops.

N parties play `client` (at least 3, what secure aggregation needs), one party with no data plays `server`.
The clients agree on the columns, then three secure-aggregation rounds give everyone the global mean and scale
of each feature, so all standardise alike; then each training round the server sends the global weights (a
flat vector), the chosen clients train locally and send their row-weighted change through secure aggregation,
and the server adds the survivors' average change (FedAvg; FedProx when the model's local steps pull towards
the global weights). A model plugs in as a `LocalTrainer` on the clients and its initial weights on the server
(`homo_lr`, `homo_nn`). See docs/protocols/homo_lr.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.columns import find_label
from fedbench.components.builtin.metrics import roc_auc
from fedbench.components.spec import Port
from fedbench.errors import FedbenchError
from fedbench.federation import Context
from fedbench.ml.dp import epsilon, private_change
from fedbench.ml.lr_model import model_card, table_fingerprint
from fedbench.secagg.config import RoundConfig
from fedbench.secagg.errors import RoundAborted
from fedbench.secagg.federated import client_numbers, client_round, round_config, server_round

__all__ = [
    "HorizontalError",
    "HorizontalParams",
    "LocalTrainer",
    "Rows",
    "Trained",
    "finish",
    "label_text",
    "client_role",
    "quality_of",
    "server_role",
]

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

PORTS_IN = (
    Port("train", "table", "each client's training rows with the label (the server brings none)"),
    Port("validation", "table", "each client's own validation rows, scored every round", optional=True),
)
PORTS_OUT = (
    Port("model", "model", "the global model: features, standardisation, weights, model card"),
    Port("metrics", "metrics", "per round: aggregate training loss and who took part; ours"),
)


class HorizontalError(FedbenchError):
    """A horizontal training cannot go on: bad columns or labels, too few clients, or a diverged model."""

    code = "horizontal"


class HorizontalParams(BaseModel):
    """The parameters every horizontal model has."""

    model_config = {"extra": "forbid"}

    rounds: int = Field(default=20, ge=1, le=1000, description="training rounds (one aggregation each)")
    local_epochs: int = Field(
        default=1, ge=1, le=100, description="passes over its rows per client per round"
    )
    batch_size: int = Field(default=256, ge=1, le=1_000_000, description="rows per local gradient step")
    learning_rate: float = Field(default=0.5, gt=0.0, le=10.0, description="local step size")
    strategy: Literal["fedavg", "fedprox"] = Field(default="fedavg", description="how clients train locally")
    mu: float = Field(default=0.01, ge=0.0, le=10.0, description="FedProx: pull towards the global weights")
    clients_per_round: float = Field(
        default=1.0, gt=0.0, le=1.0, description="share of the clients sampled each round (at least 3)"
    )
    clip: float = Field(default=100.0, gt=0.0, le=1e9, description="largest weight change a client may send")
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
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of the client sampling and the start")
    dp_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="client-level differential privacy: the noise multiplier (0: off; 1 is a common start)",
    )
    dp_clip: float = Field(
        default=1.0,
        gt=0.0,
        le=1e6,
        description="differential privacy: the most a client's change may move (L2 norm)",
    )
    dp_delta: float = Field(
        default=1e-5, gt=0.0, lt=1.0, description="differential privacy: the delta of (epsilon, delta)"
    )

    @property
    def proximal(self) -> float:
        """FedProx's pull towards the global weights in the local loss (0: FedAvg)."""
        return self.mu if self.strategy == "fedprox" else 0.0


class LocalTrainer(Protocol):
    """A model's arithmetic on one client's standardised rows, on flat weight vectors."""

    def loss(self, weights: np.ndarray) -> float:
        """The mean training loss of the rows under `weights`."""
        ...

    def train(self, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The weights after this round's local epochs from the global `weights`."""
        ...

    def quality(self, weights: np.ndarray, x: np.ndarray, codes: np.ndarray) -> dict[str, float]:
        """Loss, AUC (binary) and accuracy on standardised rows `x` with class numbers `codes`."""
        ...


MakeTrainer = Callable[[np.ndarray, np.ndarray, int], LocalTrainer]
"""Builds a client's trainer from its standardised rows, their class numbers and the number of classes."""


def quality_of(proba: np.ndarray, codes: np.ndarray) -> dict[str, float]:
    """Mean cross-entropy, AUC (binary, both classes present) and accuracy of predicted probabilities.

    `proba` has one column (the second class's probability) or one per class; `codes` are class numbers.
    """
    p = np.clip(proba, 1e-12, 1 - 1e-12)
    if p.shape[1] == 1:
        positive = codes == 1
        out = {"loss": float(-np.mean(np.where(positive, np.log(p[:, 0]), np.log(1 - p[:, 0]))))}
        if 0 < positive.sum() < len(positive):
            out["auc"] = roc_auc(positive.astype(float), p[:, 0])
        out["accuracy"] = float(((p[:, 0] >= 0.5) == positive).mean())
        return out
    return {
        "loss": float(-np.mean(np.log(p[np.arange(len(codes)), codes]))),
        "accuracy": float((p.argmax(1) == codes).mean()),
    }


# ----- the clients' rows --------------------------------------------------------------------------------------


class Rows:
    """One client's table split into features (missing values as NaN) and class numbers, checked."""

    def __init__(self, table: pd.DataFrame, params: HorizontalParams, where: str) -> None:
        label = find_label(table, params.label, HorizontalError)
        if label is None:
            raise HorizontalError(
                f"{where}: no label column ('default' or 'y'); name it with the param label"
            )
        if params.features is not None:
            missing = [f for f in params.features if f not in table.columns]
            if missing:
                raise HorizontalError(
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
            raise HorizontalError(f"{where}: no numeric feature columns; name them with the param features")
        values = table[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.argwhere(np.isinf(values) | (np.isnan(values) & (params.missing == "error")))
        if bad.size:
            row, col = bad[0]
            raise HorizontalError(
                f"{where}: feature {names[col]!r} has a missing or infinite value in row {row}; fill or drop "
                "such rows first (with missing 'mean', a missing value counts as the feature's global mean)"
            )
        if len(values) > MAX_ROWS:
            raise HorizontalError(
                f"{where}: {len(values):,} rows, more than the {MAX_ROWS:,} a client may bring; sample them"
            )
        if len(values) == 0:
            raise HorizontalError(f"{where}: the table has no rows")
        self.features = names
        self.classes = list(params.classes) if params.classes is not None else ["0", "1"]
        as_text = table[label].map(label_text)
        codes = as_text.map({c: i for i, c in enumerate(self.classes)})
        unknown = sorted(set(as_text[codes.isna()]))
        if unknown:
            fix = "list every class in the param classes" if params.classes else "give the param classes"
            raise HorizontalError(
                f"{where}: label {label!r} has values {unknown[:5]} outside the classes {self.classes}; {fix}"
            )
        self.x = values
        self.codes = codes.to_numpy(dtype=np.int64)

    def standardised(self, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The features standardised with the global mean and scale, a missing value counting as the mean."""
        return (np.where(np.isnan(self.x), mean, self.x) - mean) / scale


def label_text(value: Any) -> str:
    """A label value as the text of its class (a whole float reads as an integer: 1.0 and 1 are one class)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


# ----- statistics rounds --------------------------------------------------------------------------------------


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


def _checked(values: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Numbers the server sent, refused unless of the expected shape and finite."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise HorizontalError(f"the server sent {what} of shape {array.shape}, not {shape} finite numbers")
    return array


@dataclass(frozen=True)
class _Planned:
    number: int
    config: RoundConfig


def _training_round(
    ctx: Context, r: int, parties: list[str], length: int, params: HorizontalParams
) -> _Planned:
    """Training round `r`'s secure-aggregation round (numbered after the statistics rounds) and config."""
    numbers = client_numbers(ctx)
    number = len(STATISTICS) + r
    private = params.dp_clip * (1 + 10 * params.dp_noise) if params.dp_noise > 0 else 0.0
    clip = _ring_clip(max(params.clip, LOSS_CAP, private))
    config = round_config(ctx.iter(number), number, [numbers[p] for p in parties], length, clip=clip, bits=64)
    return _Planned(number, config)


# ----- the client ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """What a party ends with: the columns, the global standardisation and weights, its metrics.

    `own_rows`: the party brought training rows (a client), so its model card fingerprints them.
    """

    features: list[str]
    classes: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    metrics: dict[str, Any]
    own_rows: bool


def client_role(
    ctx: Context, params: HorizontalParams, size: Callable[[int, int], int], make: MakeTrainer
) -> Trained:
    """A client's whole training: columns, statistics rounds, then local training each round it is chosen.

    `size(features, classes)` is the model's number of weights; `make` builds its trainer on our rows.
    """
    train = Rows(ctx.input("train"), params, f"{ctx.party}'s training rows")
    table = ctx.optional_input("validation")
    validation = None if table is None else Rows(table, params, f"{ctx.party}'s validation rows")
    server = ctx.peer("server")
    server.send("schema", {"features": train.features, "classes": train.classes})
    agreed = server.recv("agreed", dict)
    if agreed.get("features") != train.features:
        raise HorizontalError(
            f"the clients' feature columns differ: ours are {train.features}, the server settled on "
            f"{agreed.get('features')}; give every client the same columns (or the param features)"
        )
    width = len(train.features)
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
        found[name] = _checked(server.recv(name, dict)["values"], (width,), f"{name} statistics")
    mean, scale = _standardisation(found)
    classes = len(train.classes)
    trainer = make(train.standardised(mean, scale), train.codes, classes)
    check = None if validation is None else (validation.standardised(mean, scale), validation.codes)
    rng = ctx.private_rng("horizontal local batches", params.seed)
    rows = len(train.x)
    taken = 0
    spent: list[tuple[float, float]] = []
    while True:
        plan = server.recv("plan", dict)
        weights = _checked(plan["weights"], (size(width, classes),), "weights")
        r = int(plan["round"])
        if check is not None:
            for metric, value in trainer.quality(weights, *check).items():
                ctx.metrics.log(f"validation_{metric}", value, step=r)
        if plan.get("done"):
            break
        if ctx.party not in plan["participants"]:
            continue
        loss = trainer.loss(weights)
        ctx.metrics.log("loss", loss, step=r)
        change = trainer.train(weights, rng) - weights
        chosen = len(plan["participants"])
        if params.dp_noise > 0:
            private = private_change(change, chosen, params.dp_noise, params.dp_clip)
            update = np.concatenate([private, [1.0, 0.0]])
            spent.append((params.dp_noise, chosen / len(client_numbers(ctx))))
        else:
            change = np.clip(change, -params.clip, params.clip)
            update = np.concatenate(
                [change * (rows / ROW_SCALE), [rows / ROW_SCALE, rows / ROW_SCALE * min(loss, LOSS_CAP)]]
            )
        planned = _training_round(ctx, r, plan["participants"], update.size, params)
        taken += client_round(ctx.iter(planned.number), planned.config, update, params.stage_timeout)
        ctx.progress(min(0.98, r / params.rounds), f"round {r} of {params.rounds}")
    metrics: dict[str, Any] = {
        "rounds_taken_part": taken,
        "rows": rows,
        "train": trainer.quality(weights, train.standardised(mean, scale), train.codes),
    }
    if check is not None:
        metrics["validation"] = trainer.quality(weights, *check)
    if params.dp_noise > 0:
        metrics["dp"] = _privacy(params, spent, "if every chosen client's noise reached the sum")
    return Trained(train.features, train.classes, mean, scale, weights, metrics, own_rows=True)


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
        raise HorizontalError(
            f"the {tag} round found no value of features {empty} in any client's rows (or every client "
            "dropped out); leave those features out with the param features"
        )
    return result.total[: len(names)] / present


def _agreed_columns(ctx: Context) -> tuple[list[str], list[str]]:
    """The clients' feature names and classes, refused unless every client sent the same."""
    schemas = ctx.gather("client", "schema", dict)
    features = {party: schema.get("features") for party, schema in schemas.items()}
    for party, sent in features.items():
        if not (isinstance(sent, list) and sent and all(isinstance(n, str) for n in sent)):
            raise HorizontalError(
                f"client {party} sent no list of feature names; it must run the same version"
            )
    first = sorted(features)[0]
    differ = sorted(p for p, f in features.items() if f != features[first])
    if differ:
        raise HorizontalError(
            f"clients {differ} have other feature columns than {first} ({features[first]}); give every "
            "client the same columns (or the param features)"
        )
    classes = schemas[first].get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
        raise HorizontalError(f"client {first} sent no list of classes; it must run the same version")
    return list(features[first] or []), list(classes)


def server_role(ctx: Context, params: HorizontalParams, initial: Callable[[int, int], np.ndarray]) -> Trained:
    """The aggregator's whole training: check the clients agree, statistics rounds, training rounds.

    `initial(features, classes)` gives the model's starting weights, a flat vector every party gets.
    """
    numbers = client_numbers(ctx)
    if len(numbers) < MIN_CLIENTS:
        raise HorizontalError(
            f"horizontal training with secure aggregation needs at least {MIN_CLIENTS} clients, not "
            f"{len(numbers)}; add parties to the project"
        )
    names, classes = _agreed_columns(ctx)
    ctx.broadcast("client", "agreed", {"features": names})
    ctx.progress(0.02, "agreeing on the features' scale")
    found: dict[str, np.ndarray] = {}
    for number, name in enumerate(STATISTICS):
        found[name] = _sum_round(ctx, name, number, names, params.stage_timeout)
        ctx.broadcast("client", name, {"values": found[name]})
    mean, scale = _standardisation(found)
    weights = np.asarray(initial(len(names), len(classes)), dtype=np.float64)
    rng = np.random.default_rng(params.seed)
    per_round = max(MIN_CLIENTS, math.ceil(params.clients_per_round * len(numbers)))
    parties = sorted(numbers)
    losses: list[float] = []
    history: list[dict[str, Any]] = []
    spent: list[tuple[float, float]] = []
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
        weights = weights + result.total[:-2] / rows
        loss = float(result.total[-1] / rows)
        ctx.metrics.log("clients", float(len(result.survivors)), step=r)
        if params.dp_noise > 0:
            # each survivor added its share of the noise: dropouts leave less of it in the sum
            kept = math.sqrt(len(result.survivors) / len(chosen))
            spent.append((params.dp_noise * kept, len(chosen) / len(parties)))
            ctx.metrics.log("epsilon", epsilon(spent, params.dp_delta), step=r)
            loss = math.nan
        else:
            losses.append(loss)
            ctx.metrics.log("loss", loss, step=r)
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
        ctx.progress(min(0.98, r / params.rounds), f"round {r} of {params.rounds}: loss {loss:.4f}")
        if not np.all(np.isfinite(weights)):
            break
    ctx.broadcast(
        "client", "plan", {"round": params.rounds + 1, "participants": [], "weights": weights, "done": True}
    )
    _check_trained(losses, history, weights, params)
    metrics: dict[str, Any] = {
        "rounds": history,
        "loss": losses[-1] if losses else None,
        "features": names,
        "classes": classes,
    }
    if params.dp_noise > 0:
        metrics["dp"] = _privacy(
            params, spent, "the noise of the clients that took part to the end of each round"
        )
    return Trained(names, classes, mean, scale, weights, metrics, own_rows=False)


def _privacy(params: HorizontalParams, spent: list[tuple[float, float]], counting: str) -> dict[str, Any]:
    """The privacy a model's training spent, as its metrics and model card state it."""
    return {
        "epsilon": epsilon(spent, params.dp_delta),
        "delta": params.dp_delta,
        "noise_multiplier": params.dp_noise,
        "clip": params.dp_clip,
        "rounds": len(spent),
        "counting": counting,
        "accountant": "Opacus RDP (client sampling treated as Poisson)",
    }


def _check_trained(
    losses: list[float], history: list[dict[str, Any]], weights: np.ndarray, params: HorizontalParams
) -> None:
    """Refuse a model no round changed, or one whose loss ran away (never shown as a success)."""
    if not any("clients" in h for h in history):
        raise HorizontalError("no training round completed: every round was abandoned; see the warnings")
    if not losses:
        if not np.all(np.isfinite(weights)):
            raise HorizontalError(
                f"the weights are no longer finite; lower learning_rate (now {params.learning_rate})"
            )
        return
    if (
        not np.all(np.isfinite(weights))
        or not math.isfinite(losses[-1])
        or losses[-1] > 2 * max(losses[0], 1e-9)
    ):
        raise HorizontalError(
            f"the training diverged (loss {losses[0]:.4g} at the first round, {losses[-1]:.4g} at the last); "
            f"lower learning_rate (now {params.learning_rate})"
        )


def model_record(
    ctx: Context, component: str, params: HorizontalParams, result: Trained, **extra: Any
) -> dict[str, Any]:
    """The global model as a party keeps it, with its own model card."""
    fingerprint, rows = "", 0
    if result.own_rows:
        fingerprint, rows = table_fingerprint(ctx.input("train")), int(result.metrics["rows"])
    return {
        "component": component,
        "version": "1",
        "party": ctx.party,
        "project": ctx.project.get("id"),
        "features": result.features,
        "classes": result.classes,
        "mean": [float(v) for v in result.mean],
        "scale": [float(v) for v in result.scale],
        **extra,
        "card": model_card(ctx, params.model_dump(), "secure aggregation", fingerprint, rows, result.metrics),
    }


def finish(ctx: Context, model: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write a party's model and metrics, and say the step is done."""
    ctx.output("model", model)
    ctx.output("metrics", metrics)
    ctx.progress(1.0, "trained")
