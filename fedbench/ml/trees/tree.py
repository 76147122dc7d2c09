"""One regression tree over bin indices: level-wise growth from histograms, prediction, its dict form.

Growth is level by level to `max_depth`: every node of a level finds its best split from its histogram; of
each pair of children only the smaller is built from its rows and the other is the parent minus it. The
histograms and the partition at each split come from a `TreeData` (`LocalData` here; the federated
SecureBoost's guest passes one whose host features are answered by the host, one exchange per level, through
`grow_tree_on`). A node that does not split becomes a leaf of value
-G/(H+lambda) times the learning rate. A tree stores splits as (feature, bin, default direction), never
thresholds: those stay with the binner (in the federated version, with the party that owns the feature).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fedbench.ml.trees.errors import TreeModelError
from fedbench.ml.trees.histogram import Histogram, build_histograms
from fedbench.ml.trees.params import TreeParams
from fedbench.ml.trees.split import Split, best_split, goes_left, leaf_value

__all__ = ["LocalData", "Tree", "TreeData", "grow_tree", "grow_tree_on"]

_INT_FIELDS = ("feature", "bin", "left", "right", "count")
_FLOAT_FIELDS = ("value", "gain", "hess")


@dataclass(frozen=True)
class Tree:
    """Nodes in level order (0 is the root) as parallel arrays; a leaf has feature -1 and children -1."""

    feature: np.ndarray
    bin: np.ndarray
    default_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    gain: np.ndarray
    hess: np.ndarray
    count: np.ndarray

    def leaves(self, codes: np.ndarray, missing_bin: int) -> np.ndarray:
        """The leaf each row (bin indices, rows x features) ends in, walking all rows one level at a time."""
        node = np.zeros(len(codes), dtype=np.int64)
        while True:
            inner = np.nonzero(self.feature[node] >= 0)[0]
            if not len(inner):
                return node
            at = node[inner]
            left = goes_left(codes[inner, self.feature[at]], self.bin[at], self.default_left[at], missing_bin)
            node[inner] = np.where(left, self.left[at], self.right[at])

    def predict(self, codes: np.ndarray, missing_bin: int) -> np.ndarray:
        """The leaf value of each row."""
        return self.value[self.leaves(codes, missing_bin)]

    def split_features(self) -> set[int]:
        """The features this tree splits on."""
        return {int(f) for f in self.feature if f >= 0}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: one list per node field."""
        data: dict[str, Any] = {name: [int(v) for v in getattr(self, name)] for name in _INT_FIELDS}
        data.update({name: [float(v) for v in getattr(self, name)] for name in _FLOAT_FIELDS})
        data["default_left"] = [bool(v) for v in self.default_left]
        return data

    @classmethod
    def from_dict(cls, data: Any, features: int, missing_bin: int) -> Tree:
        """The tree of `to_dict`, checked: fields of one length, splits on known features and bins, children
        after their parent (so walking always ends)."""
        names = (*_INT_FIELDS, *_FLOAT_FIELDS, "default_left")
        if not isinstance(data, dict) or set(data) != set(names):
            raise TreeModelError(
                f"a tree in the model's trees must be a dict of the node fields {sorted(names)}"
            )
        try:
            arrays = {n: np.asarray(data[n], dtype=np.int64) for n in _INT_FIELDS}
            arrays.update({n: np.asarray(data[n], dtype=np.float64) for n in _FLOAT_FIELDS})
            arrays["default_left"] = np.asarray(data["default_left"], dtype=bool)
        except (TypeError, ValueError):
            raise TreeModelError("a tree in the model's trees has node fields that are not numbers") from None
        size = len(arrays["feature"])
        if size == 0 or any(a.ndim != 1 or len(a) != size for a in arrays.values()):
            raise TreeModelError("a tree in the model's trees has node fields of different lengths or none")
        inner = arrays["feature"] >= 0
        ids = np.arange(size)
        ok = (
            np.all(arrays["feature"] < features)
            and np.all((arrays["bin"][inner] >= 0) & (arrays["bin"][inner] < missing_bin))
            and np.all((arrays["left"][inner] > ids[inner]) & (arrays["left"][inner] < size))
            and np.all((arrays["right"][inner] > ids[inner]) & (arrays["right"][inner] < size))
            and np.isfinite(arrays["value"]).all()
        )
        if not ok:
            raise TreeModelError(
                "a tree in the model's trees splits on an unknown feature or bin, or links a node to itself "
                "or an earlier one"
            )
        return cls(**arrays)


@dataclass
class _Builder:
    """The growing tree's node fields, as lists."""

    fields: dict[str, list[Any]] = field(
        default_factory=lambda: {n: [] for n in (*_INT_FIELDS, *_FLOAT_FIELDS, "default_left")}
    )

    def add(self, totals: tuple[float, float, int]) -> int:
        """A new node (a leaf of value 0 until set) with its hessian sum and row count; its id."""
        node = len(self.fields["feature"])
        for name, value in (
            ("feature", -1), ("bin", -1), ("left", -1), ("right", -1), ("count", totals[2]),
            ("value", 0.0), ("gain", 0.0), ("hess", totals[1]), ("default_left", False),
        ):  # fmt: skip
            self.fields[name].append(value)
        return node

    def set_leaf(self, node: int, totals: tuple[float, float, int], params: TreeParams) -> None:
        """Make `node` a leaf of value -G/(H+lambda) times the learning rate."""
        self.fields["value"][node] = leaf_value(totals[0], totals[1], params)

    def set_split(self, node: int, split: Split, left: int, right: int) -> None:
        """Make `node` split by `split` into children `left` and `right`."""
        for name, value in (
            ("feature", split.feature), ("bin", split.bin), ("default_left", split.default_left),
            ("gain", split.gain), ("left", left), ("right", right),
        ):  # fmt: skip
            self.fields[name][node] = value

    def tree(self) -> Tree:
        f = self.fields
        return Tree(
            **{n: np.asarray(f[n], dtype=np.int64) for n in _INT_FIELDS},
            **{n: np.asarray(f[n], dtype=np.float64) for n in _FLOAT_FIELDS},
            default_left=np.asarray(f["default_left"], dtype=bool),
        )


@dataclass
class _Node:
    """A node being grown: its id, row positions, totals (G, H, rows) and histogram (once built)."""

    id: int
    rows: np.ndarray
    totals: tuple[float, float, int]
    hist: Histogram | None = None


def _totals(grad: np.ndarray, hess: np.ndarray, rows: np.ndarray) -> tuple[float, float, int]:
    return float(grad[rows].sum()), float(hess[rows].sum()), len(rows)


class TreeData(Protocol):
    """Where a growing tree gets its histograms and its partitions from: the rows' own bins in plaintext
    (`LocalData`), or, in the federated SecureBoost, the guest's bins plus the host's answers."""

    def histograms(self, node_rows: Sequence[np.ndarray]) -> list[Histogram]:
        """The histogram of each node whose row positions are in `node_rows` (all features)."""
        ...

    def partition(self, splits: Sequence[tuple[int, np.ndarray, Split]]) -> list[np.ndarray]:
        """For each (node id, row positions, split) of one level: which of those rows go left."""
        ...


@dataclass(frozen=True)
class LocalData:
    """Every feature's bin indices at hand: histograms and partitions computed here."""

    codes: np.ndarray
    missing_bin: int
    grad: np.ndarray
    hess: np.ndarray

    def histograms(self, node_rows: Sequence[np.ndarray]) -> list[Histogram]:
        """Built with one bincount (see `histogram`)."""
        return build_histograms(self.codes, self.missing_bin, self.grad, self.hess, node_rows)

    def partition(self, splits: Sequence[tuple[int, np.ndarray, Split]]) -> list[np.ndarray]:
        """From the split feature's bin of each row."""
        return [
            goes_left(self.codes[rows, split.feature], split.bin, split.default_left, self.missing_bin)
            for _, rows, split in splits
        ]


def grow_tree(
    codes: np.ndarray,
    missing_bin: int,
    bin_counts: np.ndarray,
    grad: np.ndarray,
    hess: np.ndarray,
    rows: np.ndarray,
    allowed: np.ndarray,
    params: TreeParams,
) -> Tree:
    """Grow one tree on the row positions `rows` (per-row `grad`, `hess`, weighted by any sampling) over the
    features where `allowed` is true."""
    data = LocalData(codes, missing_bin, grad, hess)
    return grow_tree_on(data, bin_counts, grad, hess, rows, allowed, params)


def grow_tree_on(
    data: TreeData,
    bin_counts: np.ndarray,
    grad: np.ndarray,
    hess: np.ndarray,
    rows: np.ndarray,
    allowed: np.ndarray,
    params: TreeParams,
) -> Tree:
    """`grow_tree` with histograms and partitions from `data`: one call of each per level, so a federated
    `data` makes one exchange per level. Node totals (and so leaf values) come from `grad` and `hess`."""
    builder = _Builder()
    root_totals = _totals(grad, hess, rows)
    root = builder.add(root_totals)
    (root_hist,) = data.histograms([rows])
    level = [_Node(root, rows, root_totals, root_hist)]
    for depth in range(params.max_depth):
        chosen: list[tuple[_Node, Split]] = []
        for node in level:
            assert node.hist is not None, "every node of a level has its histogram"
            split = best_split(node.hist, node.totals, bin_counts, allowed, params)
            if split is None:
                builder.set_leaf(node.id, node.totals, params)
            else:
                chosen.append((node, split))
        sides = data.partition([(node.id, node.rows, split) for node, split in chosen]) if chosen else []
        pending: list[tuple[_Node, _Node, _Node]] = []
        for (node, split), go in zip(chosen, sides, strict=True):
            children = []
            for part in (node.rows[go], node.rows[~go]):
                totals = _totals(grad, hess, part)
                children.append(_Node(builder.add(totals), part, totals))
            builder.set_split(node.id, split, children[0].id, children[1].id)
            pending.append((node, children[0], children[1]))
        if depth == params.max_depth - 1:
            for _, left, right in pending:
                builder.set_leaf(left.id, left.totals, params)
                builder.set_leaf(right.id, right.totals, params)
            break
        smaller = [left if len(left.rows) <= len(right.rows) else right for _, left, right in pending]
        built = data.histograms([child.rows for child in smaller]) if smaller else []
        level = []
        for (parent, left, right), child, hist in zip(pending, smaller, built, strict=True):
            assert parent.hist is not None
            sibling = right if child is left else left
            child.hist, sibling.hist = hist, parent.hist - hist
            level.extend((left, right))
    return builder.tree()
