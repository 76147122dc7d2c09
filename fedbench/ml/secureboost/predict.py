"""Scoring new rows with a SecureBoost model: a federated walk of every tree, one exchange per level.

The guest holds the trees (structure, leaf values, its own splits as bins of its binner); the host holds only
its split thresholds, each under the id (round, class, node) it recorded in training. Every row starts at the
root of every tree; per level the guest moves the rows at its own splits itself and, in one `walk` request
for all trees and rows, names the host's splits (by id) that rows reach and the positions of those rows; the
host answers which of them go left, from its own stored model part, and never from a description the guest
sends (an id it never recorded, rows out of range, a row twice in one tree and level, or more levels than its
trees can have are refused). The guest then adds each row's leaf values to the base margin.
docs/protocols/secureboost.md ("Scoring") gives every message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedbench.federation import Context
from fedbench.ml.lr_model import ModelError
from fedbench.ml.secureboost.errors import SecureBoostError
from fedbench.ml.trees import Binner, Tree, TreeDataError, TreeModelError
from fedbench.ml.trees.binning import as_matrix
from fedbench.ml.trees.objectives import Objective
from fedbench.ml.trees.split import goes_left

__all__ = ["GuestPart", "HostPart", "guest_margins", "serve_walk"]

WALK = "sb.score"
"""The guest's commands (`walk` per level, then `end`)."""
SIDES = "sb.sides"
"""The host's answers: which of the named rows go left."""
OBJECTIVES = {"binary": 1, "regression": 1, "multiclass": None}
"""The objectives a guest part may have, with their number of trees per round (None: one per class)."""

SplitId = tuple[int, int, int]
"""(round, class, node): how both parties name one of the host's splits."""


def _broken(role: str, what: str) -> ModelError:
    return ModelError(
        f"the {role}'s part of the hetero_secureboost model is malformed: {what}; use the model output of a "
        "hetero_secureboost step (or a file exported from one) as it is"
    )


def _columns(table: pd.DataFrame, names: Sequence[str], role: str) -> np.ndarray:
    """The model's feature columns of the rows to score, in the model's order (NaN: missing)."""
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ModelError(
            f"the {role}'s rows to score lack the model's features {missing[:5]}; give rows with the columns "
            "the model was trained on (prepared the same way, e.g. by the same preprocess)"
        )
    try:
        return as_matrix(table[list(names)], f"the {role}'s features")
    except TreeDataError as exc:
        raise ModelError(str(exc)) from None


@dataclass(frozen=True)
class GuestTree:
    """One tree of the guest's part: its round, its class (0 unless multiclass) and its nodes."""

    round: int
    cls: int
    tree: Tree


@dataclass(frozen=True)
class GuestPart:
    """The guest's part of a SecureBoost model, checked: its binner and features, the trees, the objective."""

    features: list[str]
    binner: Binner
    trees: list[GuestTree]
    base_margin: np.ndarray
    objective: str
    classes: list[Any]

    @classmethod
    def from_model(cls, model: dict[str, Any]) -> GuestPart:
        """The part of `model` (the guest's `model` output of `hetero_secureboost`), or `ModelError`."""
        try:
            binner = Binner.from_dict(model.get("binner"))
        except TreeModelError as exc:
            raise _broken("guest", str(exc)) from None
        names, count = model.get("feature_names"), model.get("guest_features")
        if not isinstance(names, list) or not isinstance(count, int) or not 0 <= count <= len(names):
            raise _broken("guest", "feature_names and guest_features do not fit")
        if count != binner.features:
            raise _broken("guest", f"its binner has {binner.features} features, not its {count}")
        objective = model.get("objective")
        if objective not in OBJECTIVES:
            raise _broken("guest", f"objective {objective!r} is none of {sorted(OBJECTIVES)}")
        base = model.get("base_margin")
        if not isinstance(base, list) or not base or not all(isinstance(v, int | float) for v in base):
            raise _broken("guest", "base_margin must be a list of numbers")
        outputs = OBJECTIVES[objective] or len(base)
        classes = model.get("classes", [0, 1] if objective == "binary" else [])
        if len(base) != outputs or (objective == "multiclass" and len(classes) != outputs):
            raise _broken("guest", f"a {objective} model needs {outputs} base margins (and classes)")
        rounds = model.get("trees")
        if not isinstance(rounds, list) or not all(isinstance(r, list) and len(r) == outputs for r in rounds):
            raise _broken("guest", f"trees must be a list of rounds of {outputs} trees each")
        try:
            trees = [
                GuestTree(r, k, Tree.from_dict(t, len(names), binner.missing_bin))
                for r, round_trees in enumerate(rounds)
                for k, t in enumerate(round_trees)
            ]
        except TreeModelError as exc:
            raise _broken("guest", str(exc)) from None
        return cls(
            [str(n) for n in names[:count]],
            binner,
            trees,
            np.asarray(base, dtype=np.float64),
            str(objective),
            list(classes),
        )

    def matrix(self, table: pd.DataFrame) -> np.ndarray:
        """Our features of the rows to score, in the model's order."""
        return _columns(table, self.features, "guest")

    def transform(self, margin: np.ndarray) -> np.ndarray:
        """Predictions from margins (rows x outputs): P(1), P(class) per class, or the value."""
        return Objective(self.objective, margin.shape[1]).transform(margin)


@dataclass(frozen=True)
class _Asked:
    """One host split a level's walk names: the tree's index, its split id and the rows' places in `inner`."""

    tree: int
    split: SplitId
    places: np.ndarray


def guest_margins(ctx: Context, part: GuestPart, x: np.ndarray) -> np.ndarray:
    """The margin of every row of `x` (our features, rows aligned with the host's), rows x outputs: the base
    margin plus each tree's leaf value, the rows walking every tree at once, one `walk` per level that reaches
    a host split."""
    codes = part.binner.transform(x)
    rows, ours, missing = len(codes), part.binner.features, part.binner.missing_bin
    host = ctx.peer("host")
    commands, answers = host.channel(WALK), host.channel(SIDES)
    nodes = np.zeros((len(part.trees), rows), dtype=np.int64)
    while True:
        moving: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        asked: list[_Asked] = []
        for t, each in enumerate(part.trees):
            tree, node = each.tree, nodes[t]
            inner = np.flatnonzero(tree.feature[node] >= 0)
            if not len(inner):
                continue
            at = node[inner]
            feature = tree.feature[at]
            left = np.zeros(len(inner), dtype=bool)
            mine = feature < ours
            left[mine] = goes_left(
                codes[inner[mine], feature[mine]], tree.bin[at[mine]], tree.default_left[at[mine]], missing
            )
            theirs = np.flatnonzero(~mine)
            if len(theirs):
                order = theirs[np.argsort(at[theirs], kind="stable")]
                ids, starts = np.unique(at[order], return_index=True)
                for n, group in zip(ids.tolist(), np.split(order, starts[1:]), strict=True):
                    asked.append(_Asked(t, (each.round, each.cls, int(n)), group))
            moving.append((t, inner, at, left))
        if not moving:
            break
        if asked:
            _ask(commands, answers, asked, moving, rows)
        for t, inner, at, left in moving:
            tree = part.trees[t].tree
            nodes[t, inner] = np.where(left, tree.left[at], tree.right[at])
    commands.send({"op": "end"})
    margin = np.tile(part.base_margin, (rows, 1))
    for t, each in enumerate(part.trees):
        margin[:, each.cls] += each.tree.value[nodes[t]]
    return margin


def _ask(
    commands: Any,
    answers: Any,
    asked: list[_Asked],
    moving: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    rows: int,
) -> None:
    """One level's `walk` for every host split the rows reach; the host's answers written into `moving`."""
    inner_of = {t: (inner, left) for t, inner, _, left in moving}
    position = np.int32 if rows < 2**31 else np.int64
    command = {
        "op": "walk",
        "splits": np.asarray([a.split for a in asked], dtype=np.int64).reshape(-1, 3),
        "counts": np.asarray([len(a.places) for a in asked], dtype=np.int64),
        "rows": np.concatenate([inner_of[a.tree][0][a.places] for a in asked]).astype(position),
    }
    commands.send(command)
    total = len(command["rows"])
    answer = answers.recv(np.ndarray, what="its answer of which rows go left")
    if answer.dtype != bool or answer.shape != (total,):
        raise SecureBoostError(
            f"the host's answer of which rows go left must be {total} true/false values, got "
            f"{answer.dtype} of shape {answer.shape}"
        )
    at = 0
    for a in asked:
        inner_of[a.tree][1][a.places] = answer[at : at + len(a.places)]
        at += len(a.places)


@dataclass(frozen=True)
class HostPart:
    """The host's part of a SecureBoost model, checked: its splits by id, and how deep the trees can be."""

    features: list[str]
    """The feature columns our splits use."""
    ids: dict[SplitId, int]
    """Each recorded split's id and its index in the arrays below."""
    column: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    trees: np.ndarray
    """Per split, the index of its tree (round, class) among ours: a walk names a row once per tree."""
    max_depth: int

    @classmethod
    def from_model(cls, model: dict[str, Any]) -> HostPart:
        """The part of `model` (the host's `model` output of `hetero_secureboost`), or `ModelError`."""
        splits = model.get("splits")
        params = (model.get("card") or {}).get("params") or {}
        depth = params.get("max_depth")
        if not isinstance(splits, list) or not isinstance(depth, int) or depth < 1:
            raise _broken("host", "it needs its list of splits and the max_depth of its card's params")
        features: dict[str, int] = {}
        ids: dict[SplitId, int] = {}
        trees: dict[tuple[int, int], int] = {}
        column, threshold, default_left, tree_of = [], [], [], []
        for s in splits:
            if not isinstance(s, dict):
                raise _broken("host", "a split is not a dict")
            key = [
                v
                for v in (s.get("tree"), s.get("class", 0), s.get("node"))
                if isinstance(v, int) and not isinstance(v, bool) and v >= 0
            ]
            feature, value, left = s.get("feature"), s.get("threshold"), s.get("default_left")
            if (
                len(key) != 3
                or not isinstance(feature, str)
                or not isinstance(value, int | float)
                or np.isnan(value)
                or not isinstance(left, bool)
            ):
                raise _broken("host", f"split {s!r} lacks a tree, node, feature, threshold or default_left")
            split: SplitId = (key[0], key[1], key[2])
            if split in ids:
                raise _broken("host", f"split {split} is recorded twice")
            ids[split] = len(ids)
            column.append(features.setdefault(feature, len(features)))
            threshold.append(float(value))
            default_left.append(left)
            tree_of.append(trees.setdefault(split[:2], len(trees)))
        return cls(
            list(features),
            ids,
            np.asarray(column, dtype=np.int64),
            np.asarray(threshold, dtype=np.float64),
            np.asarray(default_left, dtype=bool),
            np.asarray(tree_of, dtype=np.int64),
            depth,
        )

    def matrix(self, table: pd.DataFrame) -> np.ndarray:
        """Our split features of the rows to score (the columns of `features`)."""
        return _columns(table, self.features, "host")

    def sides(self, x: np.ndarray, split: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Which rows go left at the splits (indices) given per row: value < threshold, missing by the split's
        default direction; a threshold of +inf (a split after the last bin) sends every present value left, as
        the bins do."""
        values, limit = x[rows, self.column[split]], self.threshold[split]
        below = (values < limit) | (limit == np.inf)
        return np.where(np.isnan(values), self.default_left[split], below)


def _request(command: dict[str, Any], part: HostPart, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A level's walk, checked against our own records: the split index of each named row, and the rows."""
    if set(command) != {"op", "splits", "counts", "rows"}:
        raise SecureBoostError("the guest's scoring walk must name splits, counts and rows")
    splits, counts, named = command["splits"], command["counts"], command["rows"]
    if (
        not isinstance(splits, np.ndarray)
        or splits.dtype.kind not in "iu"
        or splits.ndim != 2
        or splits.shape[1] != 3
        or not isinstance(counts, np.ndarray)
        or counts.dtype.kind not in "iu"
        or counts.shape != (len(splits),)
        or not isinstance(named, np.ndarray)
        or named.dtype.kind not in "iu"
        or named.ndim != 1
    ):
        raise SecureBoostError(
            "the guest's scoring walk must give (round, class, node) per split, a row count per split and "
            "the row positions as integer arrays"
        )
    if len(counts) and (int(counts.min()) < 0 or int(counts.sum()) != len(named)):
        raise SecureBoostError("the guest's scoring walk's row counts do not add up to its rows")
    index = []
    for split in map(tuple, splits.tolist()):
        found = part.ids.get(split)
        if found is None:
            raise SecureBoostError(
                f"the guest asked where rows go at split (round, class, node) {split}, which is not one of "
                "the splits of our part of this model; both parties must score with the parts of one model"
            )
        index.append(found)
    if len(set(index)) != len(index):
        raise SecureBoostError("the guest's scoring walk names one of our splits twice")
    if len(named) and (int(named.min()) < 0 or int(named.max()) >= rows):
        raise SecureBoostError(f"the guest's scoring walk names rows outside the {rows} rows being scored")
    at = np.repeat(np.asarray(index, dtype=np.int64), counts.astype(np.int64))
    named = named.astype(np.int64)
    # A row sits at one node of a tree per level: naming it twice in a tree asks more than a walk needs.
    if len(np.unique(part.trees[at] * rows + named)) != len(named):
        raise SecureBoostError("the guest's scoring walk names a row twice in one tree")
    return at, named


def serve_walk(ctx: Context, part: HostPart, x: np.ndarray) -> int:
    """Answer the guest's walks over the aligned rows `x` (our split features) until it ends; the levels
    served. At most `max_depth` walks: a row passes at most that many splits of a tree."""
    guest = ctx.peer("guest")
    commands, answers = guest.channel(WALK), guest.channel(SIDES)
    served = 0
    while True:
        command = commands.recv(dict, what="its scoring walk")
        op = command.get("op")
        if op == "end" and set(command) == {"op"}:
            return served
        if op != "walk":
            raise SecureBoostError(f"the guest sent {op!r} where a scoring walk or its end should be")
        if served >= part.max_depth:
            raise SecureBoostError(
                f"the guest asked for a walk of level {served + 1}, but our trees are at most "
                f"{part.max_depth} levels deep"
            )
        ctx.check_cancelled()
        split, rows = _request(command, part, len(x))
        answers.send(part.sides(x, split, rows))
        served += 1
