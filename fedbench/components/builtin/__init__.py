"""The components shipped with fedbench; importing this package registers them."""

from fedbench.components.builtin import head, psi, row_count

__all__ = ["head", "psi", "row_count"]
