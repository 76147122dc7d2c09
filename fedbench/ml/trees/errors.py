"""The errors of the boosted-tree core: bad params, data that does not fit, a malformed model dict."""

from __future__ import annotations

from fedbench.errors import FedbenchError

__all__ = ["TreeDataError", "TreeModelError", "TreeParamsError"]


class TreeParamsError(FedbenchError):
    """Boosted-tree params out of range or contradicting each other; the message names the param to change."""

    code = "tree_params"


class TreeDataError(FedbenchError):
    """Training or scoring data that does not fit the model: shapes, labels, a missing validation set."""

    code = "tree_data"


class TreeModelError(FedbenchError):
    """A boosted-tree model dict that is malformed or of another format."""

    code = "tree_model"
