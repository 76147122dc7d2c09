"""The exchanges of the row-aligned components (`split`, `sample`, `statistics`, `binning`): one call each.

Every party of an aligned step first swaps its row count with its peer (`exchange_row_counts`); the guest then
sends a plan over the rows (which part each row goes to, which rows are kept) that the host applies as it is
(`send_row_plan` / `recv_row_plan`). Each function is one named exchange with its message types, over the
typed calls of the federation context.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedbench.federation import PeerHandle

__all__ = ["exchange_row_counts", "recv_row_plan", "send_row_plan"]


def exchange_row_counts(peer: PeerHandle, rows: int) -> int:
    """The `rows` exchange: tell the peer how many rows we hold (an int) and learn how many it holds."""
    peer.send("rows", int(rows))
    return peer.recv("rows", int)


def send_row_plan(peer: PeerHandle, tag: str, plan: np.ndarray[Any, Any]) -> None:
    """Send the guest's plan over the rows (an array with one entry per row, or row positions) under `tag`."""
    peer.send(tag, plan)


def recv_row_plan(peer: PeerHandle, tag: str) -> np.ndarray[Any, Any]:
    """The guest's plan over the rows under `tag`: an array (its fit to our rows is the caller's check)."""
    return peer.recv(tag, np.ndarray)
