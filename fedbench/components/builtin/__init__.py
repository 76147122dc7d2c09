"""The components shipped with fedbench; importing this package registers them."""

from fedbench.components.builtin import evaluate, head, psi, row_count, split

__all__ = ["evaluate", "head", "psi", "row_count", "split"]
