"""Which of our rows a PSI of the project released to a peer, decided from our own records only.

A host sends per-row values derived from its features (partial scores) only for rows the guest already
learned through a PSI of the project; `score` and `hetero_lr` (its training and validation scores) both ask
here first, so neither becomes a membership oracle beyond the PSI policy. See docs/protocols/hetero_lr.md.
"""

from __future__ import annotations

import pandas as pd

from fedbench.errors import Refused
from fedbench.federation import Context
from fedbench.ml.lr_model import ModelError

__all__ = ["released_ids", "released_rows"]


def released_ids(ctx: Context, party: str, id_column: str) -> tuple[set[str], bool]:
    """The IDs (in `id_column`) of our rows that PSIs of this project released to `party`, from our own records.

    Also whether some PSI released rows to `party` that we cannot name (the policy gave us none, e.g.
    `initiator` with the peer as initiator): those never count as released here.
    """
    released: set[str] = set()
    unknown = False
    for release in ctx.psi_releases():
        if party not in release.released_to or party not in release.parties:
            continue
        if release.our_rows is None:
            unknown = True
            continue
        rows = release.our_rows()
        if id_column in rows.columns:
            released.update(rows[id_column].astype(str))
    return released, unknown


def released_rows(ctx: Context, table: pd.DataFrame, id_column: str, ids: list[str] | None) -> pd.DataFrame:
    """Our rows to score: those of `ids` (in that order) or the table, refused unless a PSI released them all.

    The refusal depends only on the IDs and on what the PSIs released to the guest, which the guest knows, never
    on which other IDs we hold: an ID we do not hold and one we hold but never released get the same answer.
    """
    if id_column not in table.columns:
        raise ModelError(f"the table has no ID column {id_column!r}; set the param id_column")
    guest = ctx.peer("guest").party
    released, unknown = released_ids(ctx, guest, id_column)
    fix = (
        "score the rows of a PSI output of this project whose release gives them to "
        f"{guest!r} (policy 'both'), or rows derived from one (e.g. a split), or IDs among them"
    )
    if unknown:
        fix += (
            "; under this project's policy the host is not told which rows were released, so it cannot check"
        )
    if ids is not None:
        unreleased = sum(1 for i in ids if i not in released)
        if unreleased:
            raise Refused(
                f"{unreleased} of the {len(ids)} given IDs were not released to {guest!r} by a PSI of this "
                f"project, so {ctx.party} does not score them; {fix}"
            )
        index = pd.Index(table[id_column].astype(str))
        if not index.is_unique:
            raise ModelError(f"the ID column {id_column!r} has duplicates; deduplicate or run PSI first")
        absent = sum(1 for i in ids if i not in index)
        if absent:
            raise ModelError(
                f"{absent} of the given IDs, all released by a PSI, are not among {ctx.party}'s rows to score; "
                "give both parties the same rows (e.g. the PSI output) as data"
            )
        return table.set_index(index).loc[list(ids)].reset_index(drop=True)
    if not table[id_column].astype(str).isin(released).all():
        raise Refused(
            f"the rows to score include rows not released to {guest!r} by a PSI of this project, so "
            f"{ctx.party} does not score them; {fix}"
        )
    return table
