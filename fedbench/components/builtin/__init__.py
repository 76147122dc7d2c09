"""The components shipped with fedbench; importing this package registers them."""

from fedbench.components.builtin import head, row_count

__all__ = ["head", "row_count"]
