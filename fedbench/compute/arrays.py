"""Chunks as numpy arrays: texts as (offsets, UTF-8 bytes), big ints as fixed-width big-endian rows.

What crosses to a worker is plain arrays, whatever the backend: never a pickled list of Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ints_from_rows", "ints_to_rows", "pack_texts", "unpack_texts"]


def pack_texts(texts: Sequence[str]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(int64 offsets of n + 1 entries, uint8 UTF-8 bytes of all texts); UnicodeEncodeError names nothing, so
    callers say which text could not be encoded."""
    encoded = [text.encode("utf-8") for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8)


def unpack_texts(offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]) -> list[bytes]:
    """The UTF-8 bytes of each packed text."""
    raw = data.tobytes()
    edges = offsets.tolist()
    return [raw[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


def ints_to_rows(values: Sequence[Any], width: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Non-negative ints (int or mpz) as a (n, width) uint8 array, big-endian."""
    raw = b"".join([int(v).to_bytes(width, "big") for v in values])
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(values), width)


def ints_from_rows(rows: np.ndarray[Any, Any]) -> list[int]:
    """The ints of a (n, width) uint8 array made by `ints_to_rows`."""
    width = rows.shape[1] if rows.ndim == 2 else 0
    raw = np.ascontiguousarray(rows).tobytes()
    return [int.from_bytes(raw[i : i + width], "big") for i in range(0, len(raw), width)] if width else []
