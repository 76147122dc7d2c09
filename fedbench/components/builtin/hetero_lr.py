"""`hetero_lr`: vertical logistic regression, the guest holding the label and some features, the host the rest.

Two protocols (docs/protocols/hetero_lr.md says what each party sees):

* ``sshe`` (default): two parties, Paillier plus secret-shared weights (`fedbench.ml.sshe`); plain SGD with an
  optional L2 penalty, since the update must stay linear in the shares; at the end each party learns its own
  weights only;
* ``coordinated``: an arbiter holds the key and decrypts masked gradients (`fedbench.ml.coordinated`); each
  party steps its own optimizer (SGD, Adam, RMSprop; L1 or L2); batch sizes that would let the host recover
  labels are refused.

Both approximate the logistic loss the same way (`approximation`, see `fedbench.ml.approximation`): ``fourier``
(default) takes Newton steps on a quadratic warm-up and ends with `refine_epochs` on a periodic sigmoid the two
parties evaluate on shares, within 0.002 AUC of a centralized fit; ``taylor`` is FATE's first-order expansion.

More than two classes train one-vs-rest. Each epoch's loss streams to the run; the guest's `scores` (and
`validation_scores`) tables feed `evaluate`; the `model` output is each party's own part with a model card, and
a model given as `warm_start` continues from its weights.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from fedbench.components.builtin.columns import LABEL_CANDIDATES, find_label
from fedbench.components.builtin.key_size import KeyBits, key_bits_field
from fedbench.components.builtin.metrics import roc_auc
from fedbench.components.builtin.released import released_rows
from fedbench.components.spec import Component, Port, register
from fedbench.crypto.paillier import ObfuscatorPool
from fedbench.errors import FedbenchError
from fedbench.federation import Context
from fedbench.ml import coordinated
from fedbench.ml.approximation import HARMONICS, OMEGAS, newton_inverse, uses_newton, warmup_curvature
from fedbench.ml.design import Design, batches
from fedbench.ml.fourier_exchange import FourierExchange
from fedbench.ml.health import REFINE_METRIC, check_training
from fedbench.ml.lr_model import (
    align_rows,
    check_model,
    guest_probabilities,
    host_send_scores,
    model_card,
    new_model_id,
    table_fingerprint,
)
from fedbench.ml.optim import Optimizer, learning_rate
from fedbench.ml.sshe import SsheParty
from fedbench.ml.training import EarlyStopping, Phases, run_epochs

__all__ = ["HeteroLRError", "HeteroLRParams", "hetero_lr", "scores_table"]


class HeteroLRParams(BaseModel):
    """Parameters of `hetero_lr`."""

    model_config = {"extra": "forbid"}

    protocol: Literal["sshe", "coordinated"] = Field(
        default="sshe",
        description="sshe: two parties, secret-shared weights; coordinated: an arbiter decrypts masked gradients",
    )
    approximation: Literal["fourier", "taylor"] = Field(
        default="fourier",
        description="fourier: Newton steps, then refine epochs on a periodic sigmoid (as accurate as a centralized "
        "fit); taylor: FATE's first-order Taylor loss (cheaper epochs, about 0.005 AUC lower)",
    )
    epochs: int = Field(default=10, ge=1, le=1000, description="passes over the training rows")
    refine_epochs: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="fourier: the last epochs, on the periodic sigmoid (each costs about three ordinary epochs)",
    )
    batch_size: int = Field(default=5000, ge=0, le=10_000_000, description="rows per mini-batch; 0: all rows")
    learning_rate: float = Field(
        default=0.5,
        gt=0.0,
        le=0.5,
        description="step size of the first epoch (fourier: the share of a Newton step); at most 0.5, above which "
        "standardised data can diverge",
    )
    lr_schedule: Literal["constant", "inverse_time", "exponential"] = Field(
        default="constant",
        description="how the step size shrinks: lr/(1+decay*epoch) or lr*exp(-decay*epoch)",
    )
    lr_decay: float = Field(default=0.0, ge=0.0, le=10.0, description="decay of the learning-rate schedule")
    optimizer: Literal["sgd", "adam", "rmsprop"] = Field(
        default="sgd", description="sgd; adam and rmsprop need protocol coordinated"
    )
    penalty: Literal["none", "l2", "l1"] = Field(
        default="l2", description="regularisation of the weights (not the intercept); l1 needs coordinated"
    )
    alpha: float = Field(default=0.01, ge=0.0, le=100.0, description="strength of the penalty")
    early_stopping: bool = Field(default=True, description="stop when the loss changes less than tol")
    tol: float = Field(default=1e-4, ge=0.0, le=1.0, description="loss change that counts as converged")
    init: Literal["zeros", "random", "constant"] = Field(default="zeros", description="starting weights")
    init_value: float = Field(default=0.0, ge=-10.0, le=10.0, description="the value of init 'constant'")
    fit_intercept: bool = Field(default=True, description="learn an intercept (on the guest)")
    missing: Literal["mean", "error"] = Field(
        default="mean", description="a missing feature value counts as the training mean, or is an error"
    )
    class_weight: Literal["none", "balanced"] = Field(
        default="none", description="balanced: weight rows inversely to their class's share (coordinated)"
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of the batches and random init")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="binary: score at or above predicts 1")
    score_rows: bool = Field(
        default=True,
        description="score the training and validation rows for evaluate (the guest learns each row's score)",
    )
    label: str | None = Field(
        default=None, description="the guest's label column; none: 'default' if present, else 'y'"
    )
    id_column: str = Field(default="id", description="the ID column, left out of the features")
    key_bits: KeyBits = key_bits_field("the encrypted products")

    @model_validator(mode="after")
    def _protocol_supports(self) -> HeteroLRParams:
        if self.protocol == "sshe":
            unsupported = []
            if self.optimizer != "sgd":
                unsupported.append(f"optimizer {self.optimizer!r}")
            if self.penalty == "l1":
                unsupported.append("penalty 'l1'")
            if self.class_weight != "none":
                unsupported.append(f"class_weight {self.class_weight!r}")
            if unsupported:
                raise ValueError(
                    f"protocol 'sshe' updates secret-shared weights and supports only sgd with an l2 penalty; "
                    f"{', '.join(unsupported)} need protocol 'coordinated'"
                )
        return self


hetero_lr = register(
    Component(
        name="hetero_lr",
        version="2",
        params=HeteroLRParams,
        roles=("guest", "host", "arbiter"),
        optional_roles=("arbiter",),
        use="train",
        inputs=(
            Port("train", "table", "each party's training rows, aligned; the guest's with the label"),
            Port("validation", "table", "aligned validation rows, scored after training", optional=True),
            Port(
                "warm_start",
                "model",
                "an earlier hetero_lr model of this project to continue from",
                optional=True,
            ),
        ),
        outputs=(
            Port(
                "model", "model", "our part of the model: our features' weights, standardisation, model card"
            ),
            Port("scores", "table", "guest: id, true label y, score(s) and prediction of the training rows"),
            Port(
                "validation_scores", "table", "guest: the same for the validation rows (empty without them)"
            ),
            Port("metrics", "metrics", "loss per epoch, epochs run, seconds per epoch"),
        ),
        description="Train a logistic regression across guest and host features (SSHE or with an arbiter).",
    )
)


class HeteroLRError(FedbenchError):
    """The training data or setup does not fit: label, classes, alignment, roles."""

    code = "hetero_lr"


def _classes(values: pd.Series, label: str) -> list[Any]:
    if values.isna().any():
        raise HeteroLRError(f"the label {label!r} has missing values")
    classes = sorted(values.unique().tolist())
    if len(classes) < 2:
        raise HeteroLRError(
            f"the label {label!r} has a single class {classes}; a classifier needs two or more"
        )
    if len(classes) > 50:
        raise HeteroLRError(f"the label {label!r} has {len(classes)} classes; is it a label?")
    return classes


def _initial(params: HeteroLRParams, width: int, rng: np.random.Generator) -> np.ndarray:
    if params.init == "random":
        return rng.normal(0.0, 0.01, width)
    if params.init == "constant":
        return np.full(width, params.init_value)
    return np.zeros(width)


def scores_table(
    ids: pd.Series, y: pd.Series | None, proba: np.ndarray, classes: list[Any], threshold: float
) -> pd.DataFrame:
    """The guest's scores: id, true label `y` (if known), `score` and `pred` (binary) or score_<class> and pred."""
    out = pd.DataFrame({"id": ids.to_numpy()})
    if y is not None:
        out["y"] = y.to_numpy()
    if len(classes) == 2:
        out["score"] = proba[:, 0]
        out["pred"] = np.where(proba[:, 0] >= threshold, classes[1], classes[0])
    else:
        for k, c in enumerate(classes):
            out[f"score_{c}"] = proba[:, k]
        out["pred"] = [classes[i] for i in proba.argmax(axis=1)] if len(proba) else []
    return out


class _Training:
    """What both data parties share while training: the inputs, design, batches and timing."""

    def __init__(self, ctx: Context, params: HeteroLRParams, role: str, exclude: set[str]) -> None:
        self.ctx, self.params, self.role = ctx, params, role
        self.peer_role = "host" if role == "guest" else "guest"
        self.warm = ctx.optional_input("warm_start")
        if self.warm is not None:
            self.warm = check_model(self.warm, role, ctx)
            if self.warm["protocol"] != params.protocol:
                raise HeteroLRError(
                    f"the warm-start model was trained with protocol {self.warm['protocol']!r}, not {params.protocol!r}"
                )
        self.warm_id = self.warm["model_id"] if self.warm is not None else None
        self.model_id = ""
        self.n_models = 1
        self.table = ctx.input("train")
        self.validation = ctx.optional_input("validation")
        intercept = params.fit_intercept and role == "guest"
        self.design = (
            Design.from_dict(self.warm["design"])
            if self.warm is not None
            else Design.fit(self.table, exclude, intercept, params.missing)
        )
        self.x = self.design.matrix(self.table)
        self.batches = batches(len(self.table), params.batch_size, params.seed)
        self.losses: list[list[float]] = []
        self.refine_from: list[int | None] = []
        self.seconds: list[float] = []

    def start(self, ctx: Context, shared: dict[str, Any]) -> dict[str, Any]:
        """Align rows with the peer and swap what each side must know (classes, widths)."""
        self.table = align_rows(ctx, self.peer_role, self.table, self.params.id_column, None, self.model_id)
        peer = ctx.peer(self.peer_role)
        peer.send("lr.setup", {**shared, "width": self.design.width})
        theirs = peer.recv("lr.setup")
        if not isinstance(theirs, dict) or "width" not in theirs:
            raise HeteroLRError(f"the {self.peer_role}'s setup message is malformed")
        return dict(theirs)

    def starting_weights(self, classes: int) -> np.ndarray:
        if self.warm is not None:
            coef = np.asarray(self.warm["coef"], dtype=np.float64)
            if coef.shape != (classes, self.design.width):
                raise HeteroLRError(
                    f"the warm-start model has weights of shape {coef.shape}, not ({classes}, {self.design.width})"
                )
            return coef
        rng = np.random.default_rng(self.params.seed)
        return np.stack([_initial(self.params, self.design.width, rng) for _ in range(classes)])

    def model(self, coef: np.ndarray, extra: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "component": "hetero_lr",
            "version": "1",
            "role": self.role,
            "party": self.ctx.party,
            "project": self.ctx.project.get("id"),
            "protocol": self.params.protocol,
            "model_id": self.model_id,
            "id_column": self.params.id_column,
            "design": self.design.to_dict(),
            "coef": [[float(v) for v in row] for row in coef],
            **extra,
            "card": model_card(
                self.ctx,
                self.params.model_dump(),
                self.params.protocol,
                table_fingerprint(self.table),
                len(self.table),
                metrics,
            ),
        }


def _lr(params: HeteroLRParams, epoch: int) -> float:
    return learning_rate(params.learning_rate, params.lr_schedule, params.lr_decay, epoch)


def _refine(params: HeteroLRParams) -> int:
    """How many final epochs run on the periodic sigmoid (none with the Taylor approximation)."""
    return min(params.refine_epochs, params.epochs) if params.approximation == "fourier" else 0


def _train_sshe(
    ctx: Context, run: _Training, weights: np.ndarray, targets: np.ndarray | None, k: int
) -> np.ndarray:
    """One binary SSHE training (class k); returns our own revealed weights."""
    params = run.params
    index = 0 if run.role == "guest" else 1
    cctx = ctx.iter(k)
    batch_rows = max(len(b) for b in run.batches)
    alpha = params.alpha if params.penalty == "l2" else 0.0
    party = SsheParty(
        cctx,
        cctx.peer(run.peer_role),
        index,
        run.x,
        params.key_bits,
        run.design.intercept,
        batch_rows,
        approximation=params.approximation,
        alpha=alpha,
    )
    current = [-1]

    def step(bctx: Context, epoch: int, positions: np.ndarray, refining: bool) -> float | None:
        if epoch != current[0]:
            current[0] = epoch
            party.begin_epoch()
        labels = None if targets is None else targets[positions]
        return party.step(bctx, positions, _lr(params, epoch), alpha, labels, refining)

    try:
        party.share_weights(cctx, weights)
        run_epochs(
            cctx,
            epochs=params.epochs,
            batches=run.batches,
            step=step,
            epoch_loss=lambda ectx, mean: (mean or 0.0) if targets is not None else None,
            epoch_end=lambda ectx, epoch, loss, previous, started, refining: _epoch_end(
                ectx, run, k, epoch, loss, previous, started, refining
            ),
            progress=lambda epoch, b: _progress(ctx, run, k, epoch, b),
            refine=_refine(params),
        )
        return party.reveal_own(cctx)
    finally:
        party.close()


def _progress(ctx: Context, run: _Training, k: int, epoch: int, b: int) -> None:
    classes = run.n_models
    done = (epoch * len(run.batches) + b + 1) / (run.params.epochs * len(run.batches))
    ctx.progress(
        0.05 + 0.85 * (k + done) / classes, f"class {k + 1}/{classes}, epoch {epoch + 1}, batch {b + 1}"
    )


def _epoch_end(
    ectx: Context,
    run: _Training,
    k: int,
    epoch: int,
    loss: float | None,
    previous: float | None,
    started: float,
    refining: bool = False,
) -> bool:
    """Log the epoch (guest), agree whether to go on (the guest decides and tells the others). During the
    warm-up a "stop" means "go on to the refine epochs", which always run (`training.Phases`)."""
    seconds = time.perf_counter() - started
    if run.role != "guest":
        run.seconds.append(seconds)
        return ectx.peer("guest").recv("lr.continue", bool)
    assert loss is not None
    first_refine = refining and run.refine_from[k] is None
    if first_refine:
        run.refine_from[k] = len(run.losses[k])
    run.losses[k].append(loss)
    run.seconds.append(seconds)
    name = "loss" if run.n_models == 1 else f"loss_class{k}"
    ctx = ectx
    ctx.metrics.log(name, loss, step=epoch)
    ctx.metrics.log("epoch_seconds", seconds, step=epoch)
    if first_refine and k == 0:
        # the live chart marks where the loss changes from the quadratic warm-up's to the logistic one
        ctx.metrics.log(REFINE_METRIC, epoch, step=epoch)
    check_training(
        losses=run.losses[k], learning_rate=run.params.learning_rate, epochs=run.params.epochs
    ).raise_if_broken()
    warmup = run.params.epochs - _refine(run.params)
    stopping = EarlyStopping(warmup, run.params.early_stopping, run.params.tol)
    go_on = True if refining else stopping.go_on(epoch, loss, previous)
    for role in ("host", "arbiter"):
        if ctx.roles.get(role) and (role == "host" or run.params.protocol == "coordinated"):
            ctx.peer(role).send("lr.continue", go_on)
    return go_on


def _train_coordinated(
    ctx: Context,
    run: _Training,
    weights: np.ndarray,
    targets: np.ndarray | None,
    k: int,
    sample_weight: np.ndarray | None,
) -> np.ndarray:
    """One binary coordinated training (class k); returns our weights (fourier: the last epoch's mean)."""
    params = run.params
    cctx = ctx.iter(k)
    public = coordinated.receive_key(cctx)
    intercept = run.design.width - 1 if run.design.intercept else None
    fourier = params.approximation == "fourier"
    preconditioner = None
    if uses_newton(params.approximation, params.optimizer, params.penalty):
        preconditioner = newton_inverse(run.x, params.alpha if params.penalty == "l2" else 0.0, intercept)
    optimizer = Optimizer(params.optimizer, params.penalty, params.alpha, intercept, preconditioner)
    curvature = warmup_curvature(params.approximation, params.optimizer, params.penalty)
    w = weights.copy()
    # Obfuscators are made in the background while we wait for the peers, and taken once each.
    batch_rows = max(len(b) for b in run.batches)
    pool = ObfuscatorPool(public, size=batch_rows)
    exchange: list[FourierExchange] = []
    labels: dict[bytes, Any] = {}
    iterates: list[np.ndarray] = []
    current = [-1]

    def step(bctx: Context, epoch: int, positions: np.ndarray, refining: bool) -> None:
        nonlocal w
        if epoch != current[0]:
            current[0] = epoch
            iterates.clear()
        x = run.x[positions]
        obfuscators = pool.take(len(positions))
        sw = None if sample_weight is None else sample_weight[positions]
        if refining:
            if not exchange:
                private, peer_public = coordinated.exchange_keys(cctx, run.role, params.key_bits)
                index = 0 if run.role == "guest" else 1
                cosine = [c / o for c, o in zip(HARMONICS, OMEGAS, strict=True)]
                exchange.append(FourierExchange(private, peer_public, index, HARMONICS, cosine, batch_rows))
            key = positions.tobytes()
            if targets is None:
                gradient = coordinated.host_refine_step(
                    bctx, public, x, w, obfuscators, exchange[0], labels, key
                )
            else:
                gradient = coordinated.guest_refine_step(
                    bctx, public, x, w, targets[positions], sw, obfuscators, exchange[0], labels, key
                )
        elif targets is None:
            gradient = coordinated.host_step(bctx, public, x, w, obfuscators, curvature)
        else:
            gradient = coordinated.guest_step(
                bctx, public, x, w, targets[positions], sw, obfuscators, curvature
            )
        w = optimizer.step(w, gradient, _lr(params, epoch))
        iterates.append(w.copy())

    def epoch_loss(ectx: Context, mean: float | None) -> float | None:
        """The guest's loss of the epoch comes from the arbiter, who alone sees the whole residual."""
        return None if targets is None else ectx.peer("arbiter").recv("coord.loss", float)

    try:
        run_epochs(
            cctx,
            epochs=params.epochs,
            batches=run.batches,
            step=step,
            epoch_loss=epoch_loss,
            epoch_end=lambda ectx, epoch, loss, previous, started, refining: _epoch_end(
                ectx, run, k, epoch, loss, previous, started, refining
            ),
            progress=lambda epoch, b: _progress(ctx, run, k, epoch, b),
            refine=_refine(params),
        )
    finally:
        pool.close()
        for each in exchange:
            each.close()
    if fourier and iterates:
        return np.mean(iterates, axis=0)
    return w


def _train(
    ctx: Context,
    run: _Training,
    coef: np.ndarray,
    targets: list[np.ndarray | None],
    sample_weight: np.ndarray | None,
) -> np.ndarray:
    out = []
    run.n_models = len(targets)
    for k, target in enumerate(targets):
        run.losses.append([])
        run.refine_from.append(None)
        if run.params.protocol == "sshe":
            out.append(_train_sshe(ctx, run, coef[k], target, k))
        else:
            out.append(_train_coordinated(ctx, run, coef[k], target, k, sample_weight))
    return np.stack(out)


@hetero_lr.role("guest")
def guest(ctx: Context, params: HeteroLRParams) -> None:
    """Train with the host (and the arbiter), score the training and validation rows, write our model part."""
    table = ctx.input("train")
    label = find_label(table, params.label, HeteroLRError)
    if label is None:
        raise HeteroLRError(
            f"no label column named {' or '.join(map(repr, LABEL_CANDIDATES))}; set the param label "
            f"(the table has {list(table.columns)})"
        )
    run = _Training(ctx, params, "guest", {params.id_column, label})
    run.model_id = new_model_id()
    arbiter = ctx.roles.get("arbiter") or []
    if params.protocol == "coordinated" and not arbiter:
        raise HeteroLRError("protocol 'coordinated' needs a party in the arbiter role; add one or use 'sshe'")
    ctx.peer("host").send("lr.model_id", {"model_id": run.model_id, "warm_from": run.warm_id})
    classes = _classes(run.table[label], label)
    theirs = run.start(ctx, {"classes": len(classes)})
    if params.protocol == "coordinated":
        coordinated.check_batch_size(params.batch_size, len(run.table), int(theirs["width"]))
        ctx.peer("arbiter").send("lr.setup", {"classes": len(classes), "batches": len(run.batches)})
    y = run.table[label]
    if run.warm is not None and run.warm.get("classes") != classes:
        raise HeteroLRError(
            f"the warm-start model has classes {run.warm.get('classes')}, the label {classes}"
        )
    columns = [classes[1]] if len(classes) == 2 else classes
    targets: list[np.ndarray | None] = [(y == c).to_numpy(dtype=np.float64) for c in columns]
    sample_weight = None
    if params.class_weight == "balanced":
        counts = y.value_counts()
        sample_weight = (len(y) / (len(classes) * y.map(counts))).to_numpy(dtype=np.float64)
    ctx.progress(0.05, f"training {params.protocol} on {len(run.table)} rows")
    coef = _train(ctx, run, run.starting_weights(len(columns)), targets, sample_weight)

    empty = scores_table(
        pd.Series([], dtype=str),
        pd.Series([], dtype=float),
        np.zeros((0, len(columns))),
        classes,
        params.threshold,
    )
    validation = _validation(ctx, run)
    metrics = _metrics(run)
    if params.score_rows:
        ctx.progress(0.92, "scoring the training rows")
        proba = guest_probabilities(ctx, "lr.scores", run.design, coef, run.table)
        scores = scores_table(run.table[params.id_column], y, proba, classes, params.threshold)
        ctx.output("scores", scores)
        _log_auc(ctx, metrics, "train", scores, classes)
    else:
        ctx.output("scores", empty)
    if validation is not None and params.score_rows:
        vproba = guest_probabilities(ctx, "lr.vscores", run.design, coef, validation)
        vy = validation[label] if label in validation.columns else None
        vscores = scores_table(validation[params.id_column], vy, vproba, classes, params.threshold)
        ctx.output("validation_scores", vscores)
        _log_auc(ctx, metrics, "validation", vscores, classes)
    else:
        ctx.output("validation_scores", empty)
    _judge(ctx, run, coef, metrics)
    ctx.peer("host").send("lr.finish", True)
    ctx.output("metrics", metrics)
    ctx.output(
        "model", run.model(coef, {"label": label, "classes": classes, "threshold": params.threshold}, metrics)
    )
    ctx.progress(1.0, f"trained: {len(run.seconds)} epochs")


def _judge(ctx: Context, run: _Training, coef: np.ndarray, metrics: dict[str, Any]) -> None:
    """The guest's verdict on its own figures (loss, weights, AUC): fail on a broken model, else keep warnings."""
    auc_rows = "validation" if "validation_auc" in metrics else "training"
    health = check_training(
        losses=metrics["loss"],
        learning_rate=run.params.learning_rate,
        epochs=run.params.epochs,
        weights=coef,
        auc=metrics.get(f"{auc_rows}_auc"),
        auc_rows=auc_rows,
        refine_from=(
            run.refine_from[0]
            if len(run.refine_from) == 1
            else {str(k): v for k, v in enumerate(run.refine_from)}
        ),
    )
    health.raise_if_broken()
    metrics["warnings"] = health.warnings
    for warning in health.warnings:
        ctx.warn(warning)


def _validation(ctx: Context, run: _Training) -> pd.DataFrame | None:
    """The validation rows aligned with the peer (both parties agree whether there are any)."""
    peer = ctx.peer(run.peer_role)
    has = run.validation is not None
    peer.send("lr.has_validation", has)
    if bool(peer.recv("lr.has_validation")) != has:
        raise HeteroLRError(
            "only one party was given validation rows; give both the same split's validation output"
        )
    if not has:
        return None
    return align_rows(
        ctx.iter(1_000_000), run.peer_role, run.validation, run.params.id_column, None, run.model_id
    )


def _log_auc(
    ctx: Context, metrics: dict[str, Any], part: str, scores: pd.DataFrame, classes: list[Any]
) -> None:
    """A binary model's AUC on `part` (train or validation), in the metrics output and the run's metrics."""
    if len(classes) != 2 or "y" not in scores.columns or scores["y"].nunique() != 2:
        return
    metrics[f"{part}_auc"] = roc_auc((scores["y"] == classes[1]).to_numpy(), scores["score"].to_numpy())
    ctx.metrics.log(f"{part}_auc", metrics[f"{part}_auc"])


def _metrics(run: _Training) -> dict[str, Any]:
    return {
        "loss": run.losses[0] if len(run.losses) == 1 else {str(k): v for k, v in enumerate(run.losses)},
        "epochs": max((len(v) for v in run.losses), default=len(run.seconds)),
        "seconds_per_epoch": float(np.median(run.seconds)) if run.seconds else 0.0,
        "protocol": run.params.protocol,
        "approximation": run.params.approximation,
        "refine_from": run.refine_from[0] if len(run.refine_from) == 1 else run.refine_from,
    }


@hetero_lr.role("host")
def host(ctx: Context, params: HeteroLRParams) -> None:
    """Train with the guest (and the arbiter), send our partial scores for its scores tables, write our part."""
    run = _Training(ctx, params, "host", {params.id_column})
    if params.score_rows:
        for rows in (run.table, run.validation):
            if rows is not None:
                released_rows(ctx, rows, params.id_column, None)
    ids = ctx.peer("guest").recv("lr.model_id")
    if not isinstance(ids, dict) or not isinstance(ids.get("model_id"), str):
        raise HeteroLRError("the guest's model id message is malformed")
    if ids.get("warm_from") != run.warm_id:
        raise HeteroLRError(
            "the guest and we warm-start from different models (or only one of us does); give both parties "
            "the model output of the same hetero_lr step"
        )
    run.model_id = ids["model_id"]
    theirs = run.start(ctx, {})
    classes = int(theirs.get("classes", 2))
    count = 1 if classes == 2 else classes
    targets: list[np.ndarray | None] = [None] * count
    run.losses = []
    coef = _train(ctx, run, run.starting_weights(count), targets, None)
    check_training(
        losses=None, learning_rate=params.learning_rate, epochs=params.epochs, weights=coef
    ).raise_if_broken()
    validation = _validation(ctx, run)
    if params.score_rows:
        host_send_scores(ctx, "lr.scores", run.design, coef, run.table)
        if validation is not None:
            host_send_scores(ctx, "lr.vscores", run.design, coef, validation)
    # The guest judges the model on its labels; it tells us to keep our part only once it found it sound.
    ctx.peer("guest").recv("lr.finish")
    empty = pd.DataFrame({"id": pd.Series([], dtype=str)})
    ctx.output("scores", pd.DataFrame({"id": run.table[params.id_column].to_numpy()}))
    ctx.output(
        "validation_scores",
        empty if validation is None else pd.DataFrame({"id": validation[params.id_column].to_numpy()}),
    )
    metrics = {
        "epochs": len(run.seconds),
        "seconds_per_epoch": float(np.median(run.seconds)) if run.seconds else 0.0,
    }
    ctx.output("metrics", metrics)
    ctx.output("model", run.model(coef, {"classes_count": classes}, metrics))
    ctx.progress(1.0, "trained")


@hetero_lr.role("arbiter")
def arbiter(ctx: Context, params: HeteroLRParams) -> None:
    """Coordinated protocol only: hold the key, decrypt masked gradients and the loss, relay the loss."""
    if params.protocol != "coordinated":
        ctx.progress(1.0, "protocol sshe needs no arbiter")
        return
    setup = ctx.peer("guest").recv("lr.setup")
    classes, count = int(setup["classes"]), int(setup["batches"])
    for k in range(1 if classes == 2 else classes):
        cctx = ctx.iter(k)
        private = coordinated.arbiter_setup(cctx, params.key_bits)
        losses: list[float] = []
        phases = Phases(params.epochs, _refine(params))
        while True:
            epoch = phases.epoch
            ectx = cctx.iter(epoch)
            loss = coordinated.arbiter_epoch(ectx, private, count)
            losses.append(loss)
            ctx.metrics.log("loss" if classes == 2 else f"loss_class{k}", loss, step=epoch)
            # we decrypted this loss ourselves: a diverged training stops here whatever the others say
            check_training(
                losses=losses, learning_rate=params.learning_rate, epochs=params.epochs
            ).raise_if_broken()
            ectx.peer("guest").send("coord.loss", loss)
            if not phases.next(bool(ectx.peer("guest").recv("lr.continue"))):
                break
    ctx.progress(1.0, "done")
