"""Gradient-boosted trees in plaintext: the exact algorithm the federated SecureBoost reproduces.

`binning` (quantile bins, missing values apart), `objectives` (gradients, hessians, base margin, metric),
`histogram` (per-node sums; a sibling as parent minus child), `split` (best split, default direction, leaf
value), `sampling` (subsample, GOSS, colsample), `tree` (level-wise growth) and `booster` (rounds, early
stopping, prediction, importance, dict form). The federated version swaps only the histogram sums of the
host's features for encrypted ones.
"""

from fedbench.ml.trees.binning import Binner
from fedbench.ml.trees.booster import Booster
from fedbench.ml.trees.errors import TreeDataError, TreeModelError, TreeParamsError
from fedbench.ml.trees.params import GossParams, TreeParams, tree_params
from fedbench.ml.trees.tree import Tree

__all__ = [
    "Binner",
    "Booster",
    "GossParams",
    "Tree",
    "TreeDataError",
    "TreeModelError",
    "TreeParams",
    "TreeParamsError",
    "tree_params",
]
