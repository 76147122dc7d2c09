"""`hetero_secureboost`: vertical gradient-boosted trees, the guest holding the label and some features, the
host the rest (SecureBoost; docs/protocols/secureboost.md says what each party sees).

The trees are those of the plaintext booster (`fedbench.ml.trees`) on the joined rows: the guest computes
gradients, encrypts them once per round under its own key, and finds every split from its own histograms and
the host's decrypted encrypted ones; the host keeps the thresholds of its splits. Objectives: binary (a 0/1
label), regression, and multiclass: the label's K distinct values (numbers or text) are the classes in sorted
order, each round grows one tree per class from one encryption of every class's (g, h) per row, and a label of
two values trains one binary tree per round. Each round's training loss (and validation metric) streams to the
run; the guest's `scores` and `validation_scores` feed `evaluate`; `model` is each party's own part with a
model card.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, model_validator

from fedbench.components.builtin.columns import LABEL_CANDIDATES, find_label
from fedbench.components.builtin.hetero_lr import scores_table
from fedbench.components.builtin.key_size import KeyBits, key_bits_field
from fedbench.components.builtin.metrics import roc_auc
from fedbench.components.builtin.released import released_rows
from fedbench.components.spec import Component, Port, register
from fedbench.federation import Context
from fedbench.ml.health import check_trees
from fedbench.ml.lr_model import align_rows, model_card, new_model_id, table_fingerprint
from fedbench.ml.secureboost import GuestResult, GuestTrainer, HostTrainer, SecureBoostError
from fedbench.ml.trees import TreeParams
from fedbench.ml.trees.binning import as_matrix
from fedbench.ml.trees.booster import importance
from fedbench.ml.trees.objectives import sigmoid, softmax

__all__ = ["MAX_CLASSES", "ROW_DRAWS", "HeteroSecureBoostParams", "hetero_secureboost", "row_seed"]

ROW_DRAWS = "hetero_secureboost.rows"
"""The purpose our node keys the row draws' seed with (`row_seed`)."""

MAX_CLASSES = 50
"""The most classes a label may have when num_class is unset: more is likelier an ID or amount than a class."""


class HeteroSecureBoostParams(TreeParams):
    """Parameters of `hetero_secureboost`: the boosted-tree params plus the key size, label and ID column."""

    model_config = {"extra": "forbid", "frozen": True}

    num_class: int | None = Field(
        default=None,
        ge=2,
        le=1000,
        description=(
            f"multiclass: the number of classes the label must have; none: counted from the label (at most "
            f"{MAX_CLASSES}); unset for the other objectives"
        ),
    )
    label: str | None = Field(
        default=None, description="the guest's label column; none: 'default' if present, else 'y'"
    )
    id_column: str = Field(default="id", description="the ID column, left out of the features")
    key_bits: KeyBits = key_bits_field("the encrypted gradients")

    @model_validator(mode="after")
    def _consistent(self) -> HeteroSecureBoostParams:
        """The boosted-tree params' own checks, except that multiclass may leave num_class to the label."""
        _tree_params(self, self.num_class or (2 if self.objective == "multiclass" else None))
        return self


hetero_secureboost = register(
    Component(
        name="hetero_secureboost",
        version="1",
        params=HeteroSecureBoostParams,
        roles=("guest", "host"),
        use="train",
        inputs=(
            Port("train", "table", "each party's training rows, aligned; the guest's with the label"),
            Port("validation", "table", "aligned validation rows, scored after each tree", optional=True),
        ),
        outputs=(
            Port(
                "model",
                "model",
                "our part: guest, the trees with leaf values and its own thresholds; host, its thresholds",
            ),
            Port(
                "scores",
                "table",
                "guest: id, true label y, score and pred (multiclass: score_<class> per class and pred) of the "
                "training rows",
            ),
            Port(
                "validation_scores", "table", "guest: the same for the validation rows (empty without them)"
            ),
            Port(
                "metrics",
                "metrics",
                "loss per round, validation metric per round, AUC (multiclass: accuracy), rounds kept",
            ),
        ),
        description="Train gradient-boosted trees across guest and host features (SecureBoost).",
    )
)


def _features(table: pd.DataFrame, exclude: set[str], role: str) -> tuple[list[str], np.ndarray]:
    """A party's feature names and values (NaN: missing): every column but the ID (and the label)."""
    names = [str(c) for c in table.columns if c not in exclude]
    if not names:
        raise SecureBoostError(
            f"the {role}'s table has no feature columns besides {sorted(exclude)}; give it at least one feature"
        )
    return names, as_matrix(table[names], f"the {role}'s features")


def _same_features(table: pd.DataFrame, names: list[str], role: str) -> np.ndarray:
    """The validation rows' values of the training features, in the training order."""
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise SecureBoostError(
            f"the {role}'s validation rows lack the training features {missing[:5]}; give rows of the same split"
        )
    return as_matrix(table[names], f"the {role}'s validation features")


def _labels(values: pd.Series, label: str, objective: str) -> np.ndarray:
    """The label column as numbers the objective accepts, or `SecureBoostError` naming the fix."""
    numbers = pd.to_numeric(values, errors="coerce")
    found = sorted(map(str, pd.unique(values)))[:5]
    if objective == "binary" and (numbers.isna().any() or not numbers.isin([0, 1]).all()):
        raise SecureBoostError(
            f"the label {label!r} must hold 0 and 1 for the binary objective, found {found}; map the classes "
            "to 0 and 1 first (e.g. with preprocess), use objective 'multiclass' for classes of any values, "
            "or objective 'regression' for a numeric target"
        )
    if numbers.isna().any() or not np.isfinite(numbers.to_numpy(dtype=np.float64)).all():
        raise SecureBoostError(
            f"the label {label!r} has missing or non-numeric values; drop those rows first"
        )
    return numbers.to_numpy(dtype=np.float64)


def _classes(values: pd.Series, label: str, num_class: int | None) -> list[Any]:
    """The label's distinct values in sorted order (numbers before text), which are the classes 0..K-1."""
    if values.isna().any():
        raise SecureBoostError(f"the label {label!r} has missing values; drop those rows first")
    classes = sorted(pd.unique(values).tolist(), key=lambda v: (isinstance(v, str), v))
    shown = classes[:5] + (["..."] if len(classes) > 5 else [])
    if len(classes) < 2:
        raise SecureBoostError(
            f"the label {label!r} has a single class {shown}; a classifier needs two or more: check the label "
            "column and the rows given"
        )
    if num_class is not None and len(classes) != num_class:
        raise SecureBoostError(
            f"the label {label!r} has {len(classes)} classes {shown}, but num_class is {num_class}; set num_class "
            f"to {len(classes)} or leave it unset"
        )
    if num_class is None and len(classes) > MAX_CLASSES:
        raise SecureBoostError(
            f"the label {label!r} has {len(classes)} classes {shown}, more than {MAX_CLASSES}: is it the label? "
            f"Choose the label column with the param label, or set num_class to {len(classes)} to train one tree "
            "per class each round"
        )
    return classes


def _class_positions(values: pd.Series, classes: list[Any], label: str, rows: str) -> np.ndarray:
    """Each row's class as its position in `classes`; a value of no training class is refused."""
    positions = pd.Index(classes).get_indexer(values)
    if (positions < 0).any():
        unknown = sorted(map(str, pd.unique(values[positions < 0])))[:5]
        raise SecureBoostError(
            f"the {rows} rows' label {label!r} has classes {unknown} that the training rows do not have; give "
            "rows of the same split"
        )
    return positions.astype(np.float64)


def _targets(
    values: pd.Series, label: str, params: HeteroSecureBoostParams, classes: list[Any] | None
) -> tuple[np.ndarray, list[Any] | None]:
    """The labels as the objective takes them and the classes (none for regression): binary 0 and 1; multiclass
    any values, as positions in the classes (those of the training rows when `classes` is given)."""
    if params.objective == "regression":
        return _labels(values, label, "regression"), None
    if params.objective == "binary":
        return _labels(values, label, "binary"), [0, 1]
    rows = "training" if classes is None else "validation"
    if classes is None:
        classes = _classes(values, label, params.num_class)
    return _class_positions(values, classes, label, rows), classes


def _validation(
    ctx: Context, peer_role: str, table: pd.DataFrame | None, id_column: str, model_id: str
) -> pd.DataFrame | None:
    """The validation rows aligned with the peer (both parties agree whether there are any)."""
    peer = ctx.peer(peer_role)
    has = table is not None
    peer.send("sb.has_validation", has)
    if bool(peer.recv("sb.has_validation")) != has:
        raise SecureBoostError(
            "only one party was given validation rows; give both the same split's validation output"
        )
    if table is None:
        return None
    return align_rows(ctx.iter(1_000_000), peer_role, table, id_column, None, model_id)


def _tree_params(params: TreeParams, num_class: int | None) -> TreeParams:
    """The boosted-tree params alone (what the plaintext booster would be given), with the classes found in
    the label: `num_class` of 3 or more is multiclass, 2 trains one binary tree per round."""
    values = params.model_dump(exclude={"label", "id_column", "key_bits"})
    if params.objective == "multiclass":
        binary = num_class == 2
        values.update(objective="binary" if binary else "multiclass", num_class=None if binary else num_class)
    try:
        return TreeParams.model_validate(values)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        ) from None


def _scores(
    ids: pd.Series, y: pd.Series | None, margin: np.ndarray, objective: str, classes: list[Any] | None
) -> pd.DataFrame:
    """The guest's scores: id, y, then P(classes[1]) and the prediction at 0.5 (binary), score_<class> per class
    and the most likely class (multiclass), or the value (regression)."""
    if objective == "binary":
        assert classes is not None
        return scores_table(ids, y, sigmoid(margin[:, 0])[:, None], classes, 0.5)
    if objective == "multiclass":
        assert classes is not None
        return scores_table(ids, y, softmax(margin) if len(margin) else margin, classes, 0.5)
    out = pd.DataFrame({"id": ids.to_numpy()})
    if y is not None:
        out["y"] = y.to_numpy()
    out["score"] = margin[:, 0]
    return out


def _classification_metrics(
    ctx: Context, metrics: dict[str, Any], part: str, frame: pd.DataFrame, classes: list[Any]
) -> None:
    """AUC of the second class (binary) or the accuracy (multiclass) of a scores table, logged and kept."""
    if not len(frame):
        return
    if len(classes) == 2:
        if frame["y"].nunique() == 2:
            metrics[f"{part}_auc"] = roc_auc(frame["y"].to_numpy() == classes[1], frame["score"].to_numpy())
            ctx.metrics.log(f"{part}_auc", metrics[f"{part}_auc"])
        return
    metrics[f"{part}_accuracy"] = float(np.mean(frame["pred"].to_numpy() == frame["y"].to_numpy()))
    ctx.metrics.log(f"{part}_accuracy", metrics[f"{part}_accuracy"])


def _judge(ctx: Context, result: GuestResult, metrics: dict[str, Any]) -> None:
    """Our verdict on our own figures (loss per tree, splits kept, AUC): fail on a useless model, else keep
    the warnings, which the run and the dashboards show."""
    auc_rows = "validation" if "validation_auc" in metrics else "training"
    splits = sum(int((tree.feature >= 0).sum()) for trees in result.trees for tree in trees)
    health = check_trees(
        losses=result.train_loss, splits=splits, auc=metrics.get(f"{auc_rows}_auc"), auc_rows=auc_rows
    )
    health.raise_if_broken()
    metrics["warnings"] = health.warnings
    for warning in health.warnings:
        ctx.warn(warning)


def _importance(result: GuestResult, features: int) -> dict[str, list[float]]:
    """Per joined feature (host features by anonymous id): how many splits use it and their summed gain."""
    found = importance(result.trees, features)
    return {"split": [int(v) for v in found["split"]], "gain": [float(v) for v in found["gain"]]}


def row_seed(ctx: Context, seed: int) -> int:
    """The seed of the rounds' row draws (subsample, GOSS): `seed` keyed with our node's own key."""
    return int(ctx.private_rng(ROW_DRAWS, seed).integers(1 << 62))


@hetero_secureboost.role("guest")
def guest(ctx: Context, params: HeteroSecureBoostParams) -> None:
    """Train with the host, score the training and validation rows, write our part of the model."""
    table = ctx.input("train")
    label = find_label(table, params.label, SecureBoostError)
    if label is None:
        raise SecureBoostError(
            f"no label column named {' or '.join(map(repr, LABEL_CANDIDATES))}; set the param label "
            f"(the table has {list(table.columns)})"
        )
    labels, classes = _targets(table[label], label, params, None)
    if params.early_stopping_rounds and ctx.optional_input("validation") is None:
        raise SecureBoostError(
            "early_stopping_rounds needs validation rows: give the validation input, or set it to 0"
        )
    model_id = new_model_id()
    ctx.peer("host").send("sb.model_id", model_id)
    table = align_rows(ctx, "host", table, params.id_column, None, model_id)
    validation = _validation(ctx, "host", ctx.optional_input("validation"), params.id_column, model_id)
    names, x = _features(table, {params.id_column, label}, "guest")
    tree_params = _tree_params(params, None if classes is None else len(classes))
    objective = tree_params.objective
    vlabels = None
    if validation is not None:
        if label not in validation.columns:
            raise SecureBoostError(f"the validation rows have no label column {label!r}")
        vlabels, _ = _targets(validation[label], label, params, classes)
    rounds = f"{params.trees} trees"
    if tree_params.outputs > 1:
        rounds = f"{params.trees} rounds of {tree_params.outputs} trees"
    ctx.progress(0.05, f"training {rounds} on {len(table)} rows")
    # The host sees each round's rows: drawn from the public seed, it could replay a GOSS draw and tell the
    # rows of largest gradient (those the model gets most wrong) from the random ones.
    trainer = GuestTrainer(tree_params, params.key_bits, row_seed=row_seed(ctx, params.seed))
    pair = (
        None
        if validation is None or vlabels is None
        else (_same_features(validation, names, "guest"), vlabels)
    )
    result = trainer.fit(ctx, x, labels, pair)
    feature_names = [*names, *(f"host:{i}" for i in range(trainer.host_features))]
    metrics: dict[str, Any] = {
        "train_loss": result.train_loss,
        "trees": len(result.trees),
        "best_round": result.best_round,
        "seconds_per_tree": float(np.median(result.seconds)) if result.seconds else 0.0,
    }
    if result.history:
        metrics[f"validation_{trainer.objective.metric_name}"] = result.history
    scores = _scores(table[params.id_column], table[label], result.margin, objective, classes)
    ctx.output("scores", scores)
    if validation is not None and result.validation_margin is not None:
        vscores = _scores(
            validation[params.id_column], validation[label], result.validation_margin, objective, classes
        )
    else:
        empty = np.zeros((0, tree_params.outputs))
        vscores = _scores(pd.Series([], dtype=str), pd.Series([], dtype=float), empty, objective, classes)
    ctx.output("validation_scores", vscores)
    if classes is not None:
        for part, frame in (("train", scores), ("validation", vscores)):
            _classification_metrics(ctx, metrics, part, frame, classes)
    _judge(ctx, result, metrics)
    ctx.peer("host").send("sb.finish", True)
    ctx.output("metrics", metrics)
    ctx.output(
        "model",
        {
            "component": "hetero_secureboost",
            "version": "1",
            "role": "guest",
            "party": ctx.party,
            "project": ctx.project.get("id"),
            "model_id": model_id,
            "id_column": params.id_column,
            "label": label,
            "objective": objective,
            **({} if classes is None else {"classes": classes}),
            "feature_names": feature_names,
            "guest_features": len(names),
            "binner": result.binner.to_dict(),
            "base_margin": [float(v) for v in result.base_margin],
            "trees": [[tree.to_dict() for tree in trees] for trees in result.trees],
            "history": [float(v) for v in result.history],
            "best_round": result.best_round,
            "importance": _importance(result, len(feature_names)),
            "card": model_card(
                ctx, params.model_dump(), "secureboost", table_fingerprint(table), len(table), metrics
            ),
        },
    )
    ctx.progress(1.0, f"trained: {len(result.trees)} {'rounds' if tree_params.outputs > 1 else 'trees'}")


@hetero_secureboost.role("host")
def host(ctx: Context, params: HeteroSecureBoostParams) -> None:
    """Serve the guest's histogram and split requests on our features; keep our split thresholds."""
    table = ctx.input("train")
    given = ctx.optional_input("validation")
    # The guest learns which of these rows go left at our splits: only rows a PSI released to it.
    for rows in (table, given):
        if rows is not None:
            released_rows(ctx, rows, params.id_column, None)
    model_id = ctx.peer("guest").recv("sb.model_id", str)
    table = align_rows(ctx, "guest", table, params.id_column, None, model_id)
    validation = _validation(ctx, "guest", given, params.id_column, model_id)
    names, x = _features(table, {params.id_column}, "host")
    vx = None if validation is None else _same_features(validation, names, "host")
    trainer = HostTrainer(x, vx, params.bins)
    trainer.setup(ctx)
    kept = trainer.serve(ctx)
    # The guest judges the model on its labels; it tells us to keep our part only once it found it sound.
    ctx.peer("guest").recv("sb.finish")
    splits = trainer.model_splits(names)
    metrics = {"trees": kept, "splits": len(splits)}
    ctx.output("scores", pd.DataFrame({"id": table[params.id_column].to_numpy()}))
    ctx.output(
        "validation_scores",
        pd.DataFrame(
            {
                "id": (
                    validation[params.id_column] if validation is not None else pd.Series([], dtype=str)
                ).to_numpy()
            }
        ),
    )
    ctx.output("metrics", metrics)
    ctx.output(
        "model",
        {
            "component": "hetero_secureboost",
            "version": "1",
            "role": "host",
            "party": ctx.party,
            "project": ctx.project.get("id"),
            "model_id": model_id,
            "id_column": params.id_column,
            "features": names,
            "splits": splits,
            "card": model_card(
                ctx, params.model_dump(), "secureboost", table_fingerprint(table), len(table), metrics
            ),
        },
    )
    ctx.progress(1.0, f"trained: {kept} trees, {len(splits)} splits on our features")
