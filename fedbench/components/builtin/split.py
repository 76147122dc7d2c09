"""`split`: train / validation / test split with the same rows on every side, random or stratified.

After a PSI both parties hold their rows in the same order, so a split by row position is the same split of IDs
on every side. The parties exchange their row counts (the step fails on both if they differ); the guest then
draws the assignment of each row (stratified on its label when one is named) and sends it to the host as an
int8 vector (0 train, 1 validation, 2 test). The host learns only that vector (see docs/protocols/split.md).
The guest draws over its rows sorted by ID, so a seed gives the same split of the same IDs whatever order a PSI
run left them in, with its own private generator (the seed keyed with a key only the guest's node holds): from
the public seed alone the host could replay a stratified draw and test guesses of the guest's labels.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from fedbench.components.builtin.alignment_protocol import exchange_row_counts, recv_row_plan, send_row_plan
from fedbench.components.spec import Component, Port, register
from fedbench.errors import FedbenchError
from fedbench.federation import Context

__all__ = ["SPLITS", "SplitError", "SplitParams", "assign", "assign_by_id", "split"]

SPLITS = ("train", "validation", "test")
"""The outputs, in the order of their codes in the assignment vector."""

_MAX_CLASSES = 50


class SplitParams(BaseModel):
    """Parameters of `split`."""

    model_config = {"extra": "forbid"}

    validation: float = Field(default=0.2, ge=0.0, le=0.9, description="share of rows for validation")
    test: float = Field(default=0.0, ge=0.0, le=0.5, description="share of rows for test")
    stratify: bool = Field(
        default=True, description="keep the label's class shares in every split (when a label is named)"
    )
    seed: int = Field(default=0, ge=0, description="random seed of the assignment")
    id_column: str = Field(
        default="id",
        description="the guest's ID column: the same seed splits the same IDs alike (absent: by row position)",
    )
    label: str | None = Field(
        default=None, description="the guest's label column to stratify on; none: a plain random split"
    )

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> Self:
        if self.validation + self.test >= 1.0:
            raise ValueError(
                f"validation ({self.validation}) + test ({self.test}) must leave rows to train on (sum < 1)"
            )
        return self


split = register(
    Component(
        name="split",
        version="1",
        params=SplitParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table", "each party's rows, aligned (e.g. by PSI)"),),
        outputs=(
            Port("train", "table", "our rows assigned to training"),
            Port("validation", "table", "our rows assigned to validation (may be empty)"),
            Port("test", "table", "our rows assigned to test (may be empty)"),
        ),
        description="Split aligned rows into train, validation and test, the same rows on every party.",
    )
)


class SplitError(FedbenchError):
    """The parties' tables do not align, or the label cannot be stratified on."""

    code = "split"


def _take(n: int, share: float) -> int:
    return int(np.floor(n * share + 0.5))


def assign(
    n: int, params: SplitParams, labels: Any = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The split code (0 train, 1 validation, 2 test) of each of `n` row positions, stratified on `labels`;
    drawn with `rng` (the guest's private generator in a run; the public `seed` alone when none is given)."""
    rng = np.random.default_rng(params.seed) if rng is None else rng
    if labels is None:
        groups = np.zeros(n, dtype=np.int64)
    else:
        groups, classes = pd.factorize(pd.Series(labels), use_na_sentinel=False)
        if len(classes) > _MAX_CLASSES:
            raise SplitError(
                f"the label has {len(classes)} distinct values; stratify on a label with at most "
                f"{_MAX_CLASSES} classes, or set stratify=False"
            )
    codes = np.zeros(n, dtype=np.int8)
    for group in np.unique(groups):
        rows = rng.permutation(np.flatnonzero(groups == group))
        n_validation, n_test = _take(len(rows), params.validation), _take(len(rows), params.test)
        codes[rows[:n_validation]] = 1
        codes[rows[n_validation : n_validation + n_test]] = 2
    return codes


def assign_by_id(
    table: pd.DataFrame, params: SplitParams, labels: Any = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The split code of each row of `table`, drawn over its rows sorted by `params.id_column` (when present),
    so that re-running a PSI, which orders the matched rows afresh, does not change which ID lands where."""
    n = len(table)
    if params.id_column not in table.columns:
        return assign(n, params, labels, rng)
    order = np.argsort(table[params.id_column].astype(str).to_numpy(), kind="stable")
    codes = np.empty(n, dtype=np.int8)
    codes[order] = assign(n, params, None if labels is None else np.asarray(labels)[order], rng)
    return codes


def _check_rows(own: int, peer: int, peer_role: str) -> None:
    if own != peer:
        raise SplitError(
            f"the parties' tables are not aligned: we hold {own} rows, the {peer_role} {peer}; "
            "split the outputs of the same PSI"
        )


def _write(ctx: Context, table: pd.DataFrame, codes: np.ndarray) -> None:
    counts = {}
    for code, name in enumerate(SPLITS):
        part = table.iloc[np.flatnonzero(codes == code)].reset_index(drop=True)
        ctx.output(name, part)
        counts[name] = len(part)
        ctx.metrics.log(f"{name}_rows", float(len(part)))
    ctx.progress(1.0, ", ".join(f"{k}: {v}" for k, v in counts.items()))


@split.role("guest")
def guest(ctx: Context, params: SplitParams) -> None:
    """Check the row counts match, draw the assignment, send it to the host, write our three tables."""
    table = ctx.input("data")
    host = ctx.peer("host")
    _check_rows(len(table), exchange_row_counts(host, len(table)), "host")
    labels = None
    if params.stratify and params.label is not None:
        if params.label not in table.columns:
            raise SplitError(
                f"no label column {params.label!r} to stratify on; the table has {list(table.columns)}"
            )
        labels = table[params.label].to_numpy()
    # keyed with our private key: from the public seed alone, the host could test guesses of our labels
    codes = assign_by_id(table, params, labels, ctx.private_rng("split", params.seed))
    send_row_plan(host, "assignment", codes)
    _write(ctx, table, codes)


@split.role("host")
def host(ctx: Context, params: SplitParams) -> None:
    """Check the row counts match, receive the guest's assignment, write our three tables."""
    table = ctx.input("data")
    guest = ctx.peer("guest")
    _check_rows(len(table), exchange_row_counts(guest, len(table)), "guest")
    codes = recv_row_plan(guest, "assignment").astype(np.int8, copy=False)
    if codes.shape != (len(table),) or not np.isin(codes, (0, 1, 2)).all():
        raise SplitError(f"the guest's assignment does not fit our {len(table)} rows")
    _write(ctx, table, codes)
