"""Encrypted histogram sums: products of ciphertexts by bucket, column by column, and their Horner packing.

For one ciphertext per row and a matrix of small integer codes (rows x columns: the row's bucket in each
column), `bucket_products` gives, for every column and bucket, the product modulo n^2 of the ciphertexts of
the rows in that bucket: the encrypted sum of the bucket (1, an encryption of 0, where it is empty).

Column by column this costs one multiplication per row and column. Taken k columns at a time it costs less
when the rows are many and the buckets few: the rows are multiplied into the cells of the k columns' joint
buckets (one multiplication per row, less one per cell), and each column's buckets are then products of
those cells (one multiplication per cell and column). A group of k columns so costs about rows + (k - 1)
cells instead of k rows: at 100,000 rows and 33 buckets, pairs of columns take about half the
multiplications. `plan_groups` picks k (1 to `MAX_GROUP`) for each run of columns from the real cell counts,
never doing more multiplications than the column-by-column sums. The products are exact (multiplication
modulo n^2 is commutative), so the result is the same whatever the grouping.

`pack_products` packs values `per` to a ciphertext, lowest first, by Horner's rule:
c_0 (c_1 (...)^(2^w))^(2^w), about n_bits squarings per packed ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gmpy2 import mpz

__all__ = ["MAX_GROUP", "bucket_products", "group_cost", "pack_products", "plan_groups"]

MAX_GROUP = 4
"""The most columns whose joint buckets are formed at once."""
_BINCOUNT_CELLS = 1 << 22


def _cells(codes: np.ndarray, columns: Sequence[int], buckets: int) -> np.ndarray:
    """Each row's joint bucket of `columns` (the first column most significant)."""
    key = np.zeros(len(codes), dtype=np.int64)
    for j in columns:
        key = key * buckets + codes[:, j].astype(np.int64)
    return key


def _distinct(key: np.ndarray, space: int) -> int:
    if space <= _BINCOUNT_CELLS:
        return int(np.count_nonzero(np.bincount(key, minlength=1)))
    return len(np.unique(key))


def group_cost(codes: np.ndarray, columns: Sequence[int], buckets: int) -> int:
    """Multiplications `bucket_products` makes for these columns taken together: rows less cells to fill the
    cells, then (with two or more columns) one per cell and column less one per nonempty bucket."""
    rows = len(codes)
    if not rows:
        return 0
    cells = _distinct(_cells(codes, columns, buckets), buckets ** len(columns))
    if len(columns) == 1:
        return rows - cells
    filled = sum(_distinct(codes[:, j].astype(np.int64), buckets) for j in columns)
    return rows - cells + len(columns) * cells - filled


def plan_groups(codes: np.ndarray, buckets: int, max_group: int = MAX_GROUP) -> list[tuple[int, ...]]:
    """Runs of consecutive columns to take together: at each column, the k (1 to `max_group`) that saves the
    most multiplications per column against taking those columns one by one (so never more than that)."""
    columns = codes.shape[1]
    single = [group_cost(codes, [j], buckets) for j in range(columns)]
    groups: list[tuple[int, ...]] = []
    start = 0
    while start < columns:
        best_saving, best_k = 0.0, 1
        for k in range(2, min(max_group, columns - start) + 1):
            if buckets**k > 1 << 62:
                break
            saving = sum(single[start : start + k]) - group_cost(codes, range(start, start + k), buckets)
            if saving / k > best_saving:
                best_saving, best_k = saving / k, k
        groups.append(tuple(range(start, start + best_k)))
        start += best_k
    return groups


def _check(ciphertexts: Sequence[mpz], codes: np.ndarray, buckets: int) -> None:
    if codes.ndim != 2 or codes.dtype.kind not in "iu" or len(codes) != len(ciphertexts):
        raise ValueError("codes must be an integer matrix with one row per ciphertext")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= buckets):
        raise ValueError(f"every code must be a bucket in [0, {buckets})")


def bucket_products(
    ciphertexts: Sequence[mpz],
    codes: np.ndarray,
    buckets: int,
    nsq: mpz,
    groups: Sequence[Sequence[int]] | None = None,
) -> list[list[mpz]]:
    """Per column of `codes`, the `buckets` products of the ciphertexts of the rows in each bucket (1 where
    none), with the columns taken as `groups` (default `plan_groups`)."""
    _check(ciphertexts, codes, buckets)
    columns = codes.shape[1]
    out: list[list[mpz]] = [[mpz(1)] * buckets for _ in range(columns)]
    if not len(ciphertexts):
        return out
    for group in plan_groups(codes, buckets) if groups is None else groups:
        key = _cells(codes, group, buckets)
        order = np.argsort(key, kind="stable")
        ordered_keys = key[order]
        starts = np.flatnonzero(np.r_[True, ordered_keys[1:] != ordered_keys[:-1]])
        ends = np.r_[starts[1:], len(key)]
        rows = order.tolist()
        cells: list[mpz] = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            acc = ciphertexts[rows[a]]
            for i in rows[a + 1 : b]:
                acc = acc * ciphertexts[i] % nsq
            cells.append(acc)
        cell_keys = ordered_keys[starts]
        for position, j in enumerate(group):
            bucket_of = (cell_keys // buckets ** (len(group) - 1 - position)) % buckets
            if len(group) == 1:
                for b, product in zip(bucket_of.tolist(), cells, strict=True):
                    out[j][b] = product
                continue
            held: list[mpz | None] = [None] * buckets
            for b, product in zip(bucket_of.tolist(), cells, strict=True):
                current = held[b]
                held[b] = product if current is None else current * product % nsq
            out[j] = [mpz(1) if v is None else v for v in held]
    return out


def pack_products(values: Sequence[mpz], width: int, per: int, nsq: mpz) -> list[mpz]:
    """The ciphertexts `values` packed `per` to one, lowest first: the ciphertext of v_0 + 2^w v_1 + ... is
    c_0 (c_1 (...)^(2^w))^(2^w). Not rerandomized."""
    if per < 1 or width < 1:
        raise ValueError("pack_products needs per >= 1 and width >= 1")
    factor = mpz(1) << width
    out = []
    for start in range(0, len(values), per):
        group = values[start : start + per]
        acc = group[-1]
        for c in reversed(group[:-1]):
            acc = pow(acc, factor, nsq) * c % nsq
        out.append(acc)
    return out
