"""Gradient-boosted trees in plaintext: the rounds, sampling, early stopping, prediction, importance, dict form.

Each round computes every row's gradients and hessians from the current margins, draws its rows (subsample or
GOSS) and features (colsample), and grows one tree per output on the bin indices. With `complete_secure` the
first round may split only on the features the caller marks as the guest's. With a validation set, the
objective's metric is recorded after each round and, with `early_stopping_rounds`, training stops once it has
not improved for that many rounds, keeping the rounds up to the best. The federated SecureBoost runs the same
steps with the histogram sums of the host's features computed over ciphertexts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedbench.ml.trees.binning import Binner, as_matrix
from fedbench.ml.trees.errors import TreeDataError, TreeModelError, TreeParamsError
from fedbench.ml.trees.objectives import Objective, objective_for
from fedbench.ml.trees.params import TreeParams, tree_params
from fedbench.ml.trees.sampling import feature_sample, round_rng, round_rows
from fedbench.ml.trees.tree import Tree, grow_tree

__all__ = ["FORMAT", "Booster", "importance"]

FORMAT = "fedbench.trees/1"
"""The `format` of a booster's dict form."""


class Booster:
    """A boosted-tree model: its params, binner, base margin and trees (one list of `outputs` trees per round)."""

    def __init__(self, params: TreeParams | Mapping[str, Any], *, row_seed: int | None = None) -> None:
        self.params: TreeParams = tree_params(params)
        self.row_seed = self.params.seed if row_seed is None else row_seed
        """The seed of the rounds' row draws (the params' seed unless given: see `GuestTrainer`)."""
        self.objective: Objective = objective_for(self.params)
        self.binner: Binner | None = None
        self.base_margin: np.ndarray = np.zeros(self.params.outputs)
        self.trees: list[list[Tree]] = []
        self.history: list[float] = []
        self.best_round: int | None = None
        self.feature_names: list[str] = []

    def fit(
        self,
        x: Any,
        y: Any,
        *,
        validation: tuple[Any, Any] | None = None,
        guest_features: Sequence[int] | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> Booster:
        """Train on rows `x` (NaN: missing) and labels `y`; `validation` (x, y) is scored after each round."""
        params = self.params
        matrix = as_matrix(x)
        labels = self.objective.check_labels(y, len(matrix))
        if not len(matrix):
            raise TreeDataError("there are no training rows; pass at least one row")
        self.feature_names = _names(feature_names, x, matrix.shape[1])
        pools = _feature_pools(params, matrix.shape[1], guest_features)
        if params.early_stopping_rounds and validation is None:
            raise TreeDataError(
                "early_stopping_rounds needs a validation set: pass validation=(x, y), or set it to 0"
            )
        self.binner = Binner.fit(matrix, params.bins)
        codes = self.binner.transform(matrix)
        bin_counts = self.binner.bin_counts
        self.base_margin = self.objective.base_margin(labels)
        margin = np.tile(self.base_margin, (len(matrix), 1))
        watch = None
        if validation is not None:
            vx = self.binner.transform(validation[0])
            watch = (
                vx,
                self.objective.check_labels(validation[1], len(vx)),
                np.tile(self.base_margin, (len(vx), 1)),
            )
        self.trees, self.history, self.best_round = [], [], None
        for round in range(params.trees):
            grad, hess = self.objective.gradients(labels, margin)
            rows, weights = round_rows(params, round, grad, self.row_seed)
            pool = pools[1] if round == 0 else pools[0]
            allowed = np.zeros(matrix.shape[1], dtype=bool)
            allowed[feature_sample(pool, params.colsample, round_rng(params.seed, round, 1))] = True
            trees = []
            for k in range(params.outputs):
                g, h = np.zeros(len(matrix)), np.zeros(len(matrix))
                g[rows], h[rows] = grad[rows, k] * weights, hess[rows, k] * weights
                tree = grow_tree(codes, params.bins, bin_counts, g, h, rows, allowed, params)
                margin[:, k] += tree.predict(codes, params.bins)
                trees.append(tree)
            self.trees.append(trees)
            if watch is not None and self._stop(round, watch, trees):
                break
        if params.early_stopping_rounds and self.best_round is not None:
            del self.trees[self.best_round + 1 :]
        return self

    def _stop(self, round: int, watch: tuple[np.ndarray, np.ndarray, np.ndarray], trees: list[Tree]) -> bool:
        """Score the validation rows after `round`; whether early stopping ends training here."""
        codes, labels, margin = watch
        for k, tree in enumerate(trees):
            margin[:, k] += tree.predict(codes, self.params.bins)
        value = self.objective.metric(labels, margin)
        self.history.append(value)
        if self.best_round is None or value < self.history[self.best_round]:
            self.best_round = round
        patience = self.params.early_stopping_rounds
        return bool(patience) and round - self.best_round >= patience

    def _fitted(self) -> Binner:
        if self.binner is None:
            raise TreeDataError("the model is not trained yet; call fit first")
        return self.binner

    def predict_margin(self, x: Any, rounds: int | None = None) -> np.ndarray:
        """Raw scores of rows `x` after the first `rounds` rounds (all if None): one per row, or per row and
        class for multiclass."""
        binner = self._fitted()
        codes = binner.transform(x)
        margin = np.tile(self.base_margin, (len(codes), 1))
        for trees in self.trees[:rounds]:
            for k, tree in enumerate(trees):
                margin[:, k] += tree.predict(codes, binner.missing_bin)
        return margin[:, 0] if self.params.outputs == 1 else margin

    def predict(self, x: Any, rounds: int | None = None) -> np.ndarray:
        """P(1) per row (binary), P(class) per row and class (multiclass), or the predicted value."""
        margin = self.predict_margin(x, rounds)
        return self.objective.transform(margin.reshape(len(margin), -1))

    def feature_importance(self) -> dict[str, np.ndarray]:
        """Per feature: how many splits use it ("split") and the sum of their gains ("gain")."""
        return importance(self.trees, self._fitted().features)

    def to_dict(self) -> dict[str, Any]:
        """The whole model as plain JSON-ready data (no pickle)."""
        return {
            "format": FORMAT,
            "params": self.params.model_dump(mode="json"),
            "feature_names": list(self.feature_names),
            "binner": self._fitted().to_dict(),
            "base_margin": [float(v) for v in self.base_margin],
            "trees": [[tree.to_dict() for tree in trees] for trees in self.trees],
            "history": [float(v) for v in self.history],
            "best_round": self.best_round,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Booster:
        """The model of `to_dict`, every part checked; `TreeModelError` names the part that is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise TreeModelError(
                f"the model's format is {found!r}, not {FORMAT!r}; pass a Booster's to_dict()"
            )
        try:
            booster = cls(data.get("params") or {})
        except TreeParamsError as exc:
            raise TreeModelError(f"the model's params are invalid: {exc}") from None
        booster.binner = binner = Binner.from_dict(data.get("binner"))
        outputs = booster.params.outputs
        base = data.get("base_margin")
        if (
            not isinstance(base, list)
            or len(base) != outputs
            or not all(isinstance(v, int | float) for v in base)
        ):
            raise TreeModelError(f"the model's base_margin must be a list of {outputs} numbers")
        booster.base_margin = np.asarray(base, dtype=np.float64)
        rounds = data.get("trees")
        if not isinstance(rounds, list) or not all(isinstance(r, list) and len(r) == outputs for r in rounds):
            raise TreeModelError(f"the model's trees must be a list of rounds of {outputs} trees each")
        booster.trees = [[Tree.from_dict(t, binner.features, binner.missing_bin) for t in r] for r in rounds]
        names = data.get("feature_names")
        if not isinstance(names, list) or len(names) != binner.features:
            raise TreeModelError(f"the model's feature_names must list its {binner.features} features")
        booster.feature_names = [str(n) for n in names]
        history, best = data.get("history", []), data.get("best_round")
        if not isinstance(history, list) or not (best is None or isinstance(best, int)):
            raise TreeModelError("the model's history must be a list and its best_round an int or null")
        booster.history, booster.best_round = [float(v) for v in history], best
        return booster


def _names(given: Sequence[str] | None, x: Any, features: int) -> list[str]:
    """Feature names: those given, else a data frame's columns, else f0, f1, ..."""
    names = list(given) if given is not None else [str(c) for c in getattr(x, "columns", [])]
    if not names:
        names = [f"f{i}" for i in range(features)]
    if len(names) != features:
        raise TreeDataError(
            f"{len(names)} feature names were given for {features} features; give one per column"
        )
    return [str(n) for n in names]


def _feature_pools(
    params: TreeParams, features: int, guest: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The features rounds may draw from: (every round's, the first round's), the latter the guest's only
    under `complete_secure`."""
    every = np.arange(features)
    if not params.complete_secure:
        return every, every
    if guest is None:
        raise TreeDataError(
            "complete_secure needs to know which features are the guest's: pass guest_features, "
            "or set complete_secure to False"
        )
    ours = np.unique(np.asarray(list(guest), dtype=np.int64))
    if not len(ours) or ours.min() < 0 or ours.max() >= features:
        raise TreeDataError(f"guest_features must be column positions 0 to {features - 1}, got {list(guest)}")
    return every, ours


def importance(rounds: Sequence[Sequence[Tree]], features: int) -> dict[str, np.ndarray]:
    """Per feature of `features`: how many splits of the trees use it ("split") and their summed gain ("gain")."""
    splits, gains = np.zeros(features, dtype=np.int64), np.zeros(features)
    for trees in rounds:
        for tree in trees:
            inner = tree.feature >= 0
            splits += np.bincount(tree.feature[inner], minlength=features)
            gains += np.bincount(tree.feature[inner], weights=tree.gain[inner], minlength=features)
    return {"split": splits, "gain": gains}
