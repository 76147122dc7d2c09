"""`compare`: what does the partner add? A federated model beside the same model on the guest's features alone.

The guest trains the guest-only model on its own node, in plaintext, from its own training rows: the same
family with the same params as the federated model (for logistic regression the protocols' plaintext
`approximation.replica` with no host columns, so the same approximation and steps; the plaintext `Booster`
for boosted trees). The federated model's scores of the validation rows are those its
training stored (`validation_scores`); without them the validation rows are scored through the federated
scoring path, the host taking part as in `score`. Both models are then compared on the same validation rows
(`fedbench.ml.uplift`): AUC, KS, lift by bucket and log loss of each, ΔAUC with DeLong's interval, ΔKS and
Δlift with bootstrap intervals from the guest's own keyed random draws, curves and buckets of at least
`min_bucket` rows, the partner's share of the model, and a one-sentence verdict, which is a warning when the
partner's data adds no measurable lift. The host learns nothing beyond what training and scoring show
(docs/protocols/compare.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.hetero_lr import HeteroLRParams
from fedbench.components.builtin.hetero_secureboost import HeteroSecureBoostParams, row_seed
from fedbench.components.builtin.released import released_rows
from fedbench.components.spec import Component, Port, register
from fedbench.errors import FedbenchError
from fedbench.federation import Context
from fedbench.ml.approximation import replica
from fedbench.ml.design import Design, batches, sigmoid
from fedbench.ml.lr_model import align_rows, guest_probabilities, host_send_scores, table_fingerprint
from fedbench.ml.optim import learning_rate
from fedbench.ml.secureboost.predict import GuestPart, HostPart, guest_margins, serve_walk
from fedbench.ml.trees import Booster, TreeParams
from fedbench.ml.trees.binning import as_matrix
from fedbench.ml.uplift import compare_scores

__all__ = ["FAMILIES", "CompareError", "CompareParams", "compare", "host_share_lr", "host_share_trees"]

FAMILIES = {"hetero_lr": "logistic regression", "hetero_secureboost": "boosted trees"}
"""The training components whose models `compare` takes, with what the model is in words."""
BOOTSTRAP = "compare.bootstrap"
"""The purpose our node keys the bootstrap's draws with."""


class CompareParams(BaseModel):
    """Parameters of `compare`."""

    model_config = {"extra": "forbid"}

    bins: int = Field(
        default=10, ge=2, le=100, description="buckets of the lift and gain table (10: deciles)"
    )
    min_bucket: int = Field(
        default=50,
        ge=10,
        le=1_000_000,
        description="least rows in each bucket and between two points of a curve, so no small group shows",
    )
    resamples: int = Field(
        default=1000, ge=100, le=100_000, description="bootstrap resamples of the KS and lift intervals"
    )
    level: float = Field(default=0.95, ge=0.5, le=0.999, description="confidence level of the intervals")
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1, description="seed of the bootstrap draws (keyed with our own key)"
    )


compare = register(
    Component(
        name="compare",
        version="1",
        params=CompareParams,
        roles=("guest", "host"),
        use="train",
        inputs=(
            Port("model", "model", "each party's part of a binary hetero_lr or hetero_secureboost model"),
            Port(
                "train",
                "table",
                "the rows the model was trained on (the guest-only model trains on the guest's)",
            ),
            Port("validation", "table", "aligned validation rows both models are compared on"),
            Port(
                "validation_scores",
                "table",
                "the training step's scores of the validation rows (without them: scored with the host)",
                optional=True,
            ),
        ),
        outputs=(
            Port(
                "report",
                "metrics",
                "guest: both models' metrics, the differences with intervals, curves, the verdict",
            ),
            Port(
                "guest_only_scores",
                "table",
                "guest: id, y and the guest-only model's score of each validation row",
            ),
        ),
        description="What does the partner add? The federated model against the same model on your features "
        "alone: ΔAUC with its interval, KS, lift, curves and a verdict.",
    )
)


class CompareError(FedbenchError):
    """The models or rows given to `compare` do not go together, or the model is not one it compares."""

    code = "compare"


def _checked(model: Any, role: str, ctx: Context) -> dict[str, Any]:
    """Our part of the model: a binary model of a `FAMILIES` component, of our role, made in this project."""
    if not isinstance(model, dict) or model.get("component") not in FAMILIES:
        raise CompareError(
            "the model input is not a model compare takes; pass the model output of a hetero_lr or "
            "hetero_secureboost step"
        )
    if model.get("role") != role:
        raise CompareError(f"the model part is the {model.get('role')}'s, but we play {role}")
    if model.get("project") != ctx.project.get("id"):
        raise CompareError(
            f"the model was trained in another project; compare a model of project {ctx.project.get('name')!r}"
        )
    if role == "guest":
        classes = model.get("classes") or []
        objective = model.get("objective", "binary")
        if objective != "binary" or len(classes) != 2:
            what = f"{len(classes)} classes" if len(classes) > 2 else f"objective {objective!r}"
            raise CompareError(
                f"compare measures AUC, KS and lift of a yes-or-no model; this model has {what}: compare a "
                "binary model"
            )
    return model


def _stored_scores(stored: Any, validation: pd.DataFrame, id_column: str) -> np.ndarray | None:
    """The federated model's stored score of each validation row (in their order), or None without them."""
    if not isinstance(stored, pd.DataFrame) or not len(stored) or "score" not in stored.columns:
        return None
    ids = validation[id_column].astype(str)
    index = pd.Index(stored["id"].astype(str))
    if len(stored) != len(validation) or not index.is_unique or not ids.isin(index).all():
        raise CompareError(
            f"the stored validation scores ({len(stored):,} rows) are not those of the {len(validation):,} "
            "validation rows given; give the validation_scores and the validation rows of the same training run"
        )
    return stored.set_index(index).loc[ids, "score"].to_numpy(dtype=np.float64)


def _federated_scores(ctx: Context, model: dict[str, Any], validation: pd.DataFrame) -> np.ndarray:
    """Score the validation rows with the host through the federated scoring path (as `score` does)."""
    rows = align_rows(ctx, "host", validation, model["id_column"], None, model["model_id"])
    if model["component"] == "hetero_lr":
        design = Design.from_dict(model["design"])
        proba = guest_probabilities(ctx, "compare.partial", design, np.asarray(model["coef"]), rows)
        return proba[:, 0]
    part = GuestPart.from_model(model)
    margin = guest_margins(ctx, part, part.matrix(rows))
    return np.asarray(part.transform(margin), dtype=np.float64).reshape(len(rows), -1)[:, -1]


def _guest_only_lr(
    model: dict[str, Any], train: pd.DataFrame, validation: pd.DataFrame, label: str, positive: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """Train logistic regression on our own columns with the federated model's params and approximation (the
    protocols' plaintext `replica` with no host columns); score the rows."""
    card = model["card"]["params"]
    params = HeteroLRParams.model_validate(card)
    # A model card from before the `fourier` approximation names none: those models trained on Taylor's.
    approximation = str(card.get("approximation", "taylor"))
    design = Design.fit(train, {params.id_column, label}, params.fit_intercept, params.missing)
    x = design.matrix(train)
    y = (train[label] == positive).to_numpy(dtype=np.float64)
    weights = None
    if params.class_weight == "balanced":
        counts = train[label].value_counts()
        weights = (len(y) / (counts.size * train[label].map(counts))).to_numpy(dtype=np.float64)
    fit = replica(
        x,
        np.zeros((len(x), 0)),
        y,
        batches(len(train), params.batch_size, params.seed),
        approximation=approximation,
        epochs=params.epochs,
        refine_epochs=params.refine_epochs,
        learning_rate_of=lambda epoch: learning_rate(
            params.learning_rate, params.lr_schedule, params.lr_decay, epoch
        ),
        alpha=params.alpha,
        intercept=design.intercept,
        optimizer=params.optimizer,
        penalty=params.penalty,
        early_stopping=params.early_stopping,
        tol=params.tol,
        sample_weight=weights,
        start=(_starting_weights(params, x.shape[1]), np.zeros(0)),
    )
    scores = sigmoid(design.matrix(validation) @ fit.guest)
    return scores, {"features": design.features, "coef": fit.guest.tolist(), "loss": fit.losses}


def _starting_weights(params: HeteroLRParams, width: int) -> np.ndarray:
    """The starting weights `hetero_lr` takes for one binary model of `width` columns (`init`)."""
    if params.init == "random":
        return np.random.default_rng(params.seed).normal(0.0, 0.01, width)
    if params.init == "constant":
        return np.full(width, params.init_value)
    return np.zeros(width)


def _guest_only_trees(
    ctx: Context, model: dict[str, Any], train: pd.DataFrame, validation: pd.DataFrame, label: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Grow boosted trees on our own columns with the federated model's params; score the rows."""
    params = HeteroSecureBoostParams.model_validate(model["card"]["params"])
    values = {k: v for k, v in params.model_dump().items() if k in TreeParams.model_fields}
    values.update(objective="binary", num_class=None)
    names = [str(n) for n in model["feature_names"][: int(model["guest_features"])]]
    classes = list(model["classes"])
    y = pd.Index(classes).get_indexer(train[label]).astype(np.float64)
    vy = pd.Index(classes).get_indexer(validation[label]).astype(np.float64)
    x = as_matrix(train[names], "the guest's features")
    vx = as_matrix(validation[names], "the guest's validation features")
    booster = Booster(TreeParams.model_validate(values), row_seed=row_seed(ctx, params.seed))
    booster.fit(
        x,
        y,
        validation=(vx, vy) if params.early_stopping_rounds else None,
        guest_features=range(len(names)) if params.complete_secure else None,
        feature_names=names,
    )
    gain = booster.feature_importance()["gain"]
    info = {"features": names, "trees": len(booster.trees), "gain": [float(g) for g in gain]}
    return np.asarray(booster.predict(vx), dtype=np.float64).ravel(), info


def host_share_trees(model: dict[str, Any]) -> float | None:
    """The host's features' share of the trees' summed split gain (the guest knows them by anonymous id)."""
    names = [str(n) for n in model.get("feature_names") or []]
    gains = [float(g) for g in (model.get("importance") or {}).get("gain") or []]
    total = sum(gains)
    if not gains or total <= 0:
        return None
    return sum(g for n, g in zip(names, gains, strict=False) if n.startswith("host:")) / total


def host_share_lr(model: dict[str, Any], validation: pd.DataFrame, scores: np.ndarray) -> float | None:
    """The host's share of the spread of the model's log-odds on the validation rows: sd(u_h) / (sd(u_g) +
    sd(u_h)), u_g our partial scores, u_h = logit(score) - u_g the host's (which the guest holding each row's
    score and its own weights can work out, as scoring already lets it)."""
    design = Design.from_dict(model["design"])
    ours = design.matrix(validation) @ np.asarray(model["coef"], dtype=np.float64)[0]
    p = np.clip(scores, 1e-12, 1.0 - 1e-12)
    theirs = np.log(p / (1.0 - p)) - ours
    spread = float(np.std(ours) + np.std(theirs))
    return float(np.std(theirs)) / spread if spread > 0 else None


def _host_features(answer: Any) -> int:
    if not isinstance(answer, dict) or not isinstance(answer.get("features"), int) or answer["features"] < 0:
        raise CompareError("the host's answer to the comparison plan is malformed")
    return int(answer["features"])


@compare.role("guest")
def guest(ctx: Context, params: CompareParams) -> None:
    """Train the guest-only model, get the federated scores, compare both on the validation rows."""
    model = _checked(ctx.input("model"), "guest", ctx)
    train, validation = ctx.input("train"), ctx.input("validation")
    label, id_column = str(model.get("label")), str(model["id_column"])
    card = model.get("card") or {}
    if table_fingerprint(train) != card.get("data_fingerprint"):
        raise CompareError(
            "the training rows given are not those the model was trained on; give the train output the model's "
            "training step read (the same split)"
        )
    for name in (label, id_column):
        if name not in validation.columns:
            raise CompareError(
                f"the validation rows have no column {name!r}; give the same split's validation rows"
            )
    federated = _stored_scores(ctx.optional_input("validation_scores"), validation, id_column)
    host = ctx.peer("host")
    host.send("compare.plan", {"model_id": model["model_id"], "score": federated is None})
    host_features = _host_features(host.recv("compare.host"))
    scores_from = "stored by the training"
    if federated is None:
        ctx.progress(0.1, f"scoring {len(validation):,} validation rows with the host")
        federated = _federated_scores(ctx, model, validation)
        scores_from = "scored with the host"
    family = model["component"]
    ctx.progress(0.4, f"training {FAMILIES[family]} on your {len(train):,} rows and features alone")
    positive = model["classes"][1]
    if family == "hetero_lr":
        own, guest_model = _guest_only_lr(model, train, validation, label, positive)
        share = host_share_lr(model, validation, federated)
        share_words = "the partner's share of the spread of the model's log-odds on the validation rows"
    else:
        own, guest_model = _guest_only_trees(ctx, model, train, validation, label)
        share = host_share_trees(model)
        share_words = "the partner's features' share of the trees' split gain"
    ctx.progress(0.7, "comparing both models on the validation rows")
    y = (validation[label] == positive).to_numpy(dtype=np.float64)
    report = compare_scores(
        y,
        federated,
        own,
        rng=ctx.private_rng(BOOTSTRAP, params.seed),
        host_features=host_features,
        bins=params.bins,
        min_bucket=params.min_bucket,
        resamples=params.resamples,
        level=params.level,
    )
    report.update(
        family=family,
        kind=FAMILIES[family],
        model_id=model["model_id"],
        label=label,
        train_rows=len(train),
        guest_features=len(guest_model["features"]),
        host_features=host_features,
        host_share={"value": share, "means": share_words},
        scores_from=scores_from,
        guest_only_model=guest_model,
        params=card.get("params") or {},
    )
    verdict = report["verdict"]
    if not verdict["measurable"]:
        ctx.warn(verdict["text"])
    for name in ("auc", "ks"):
        ctx.metrics.log(f"federated_{name}", report["federated"][name])
        ctx.metrics.log(f"guest_only_{name}", report["guest_only"][name])
    ctx.metrics.log("delta_auc", report["delta"]["auc"]["value"])
    ctx.output("report", report)
    ctx.output(
        "guest_only_scores",
        pd.DataFrame(
            {"id": validation[id_column].to_numpy(), "y": validation[label].to_numpy(), "score": own}
        ),
    )
    ctx.progress(1.0, verdict["text"])


@compare.role("host")
def host(ctx: Context, params: CompareParams) -> None:
    """Say how many features our part has; score the validation rows with the guest if it has no scores."""
    guest_peer = ctx.peer("guest")
    plan = guest_peer.recv("compare.plan")
    if (
        not isinstance(plan, dict)
        or not isinstance(plan.get("model_id"), str)
        or not isinstance(plan.get("score"), bool)
    ):
        raise CompareError("the guest's comparison plan is malformed")
    model = _checked(ctx.input("model"), "host", ctx)
    if plan["model_id"] != model["model_id"]:
        raise CompareError(
            "the guest compares another model than the one we were given; give both parties the model output "
            "of the same training step"
        )
    lr = model["component"] == "hetero_lr"
    features = (model.get("design") or {}).get("features") if lr else model.get("features")
    guest_peer.send("compare.host", {"features": len(features or [])})
    if not plan["score"]:
        ctx.progress(1.0, "the guest compares with the scores its training stored")
        return
    id_column = str(model["id_column"])
    # The guest learns each row's score: only rows a PSI released to it, as in `score`.
    rows = released_rows(ctx, ctx.input("validation"), id_column, None)
    rows = align_rows(ctx, "guest", rows, id_column, None, model["model_id"])
    if lr:
        host_send_scores(
            ctx, "compare.partial", Design.from_dict(model["design"]), np.asarray(model["coef"]), rows
        )
    else:
        part = HostPart.from_model(model)
        serve_walk(ctx, part, part.matrix(rows))
    ctx.progress(1.0, f"{len(rows):,} validation rows scored")
