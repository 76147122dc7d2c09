"""`DatasetInfo`: what a node's registry knows about a dataset, as the node sends it and the client reads it.

Apart from the store (pydantic only), so a kernel reads dataset answers without importing the database layer
(sqlalchemy, sqlmodel): a dashboard's kernel starts lighter. `fedbench.store.datasets` re-exports it.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from fedbench.store.models import Dataset

__all__ = ["DatasetInfo"]


class DatasetInfo(BaseModel):
    """What the registry knows about a dataset; `model_dump(mode="json")` is plain JSON."""

    model_config = ConfigDict(frozen=True)

    name: str
    owner: str
    shared_with: list[str] = []
    id_column: str
    label_column: str | None
    features: list[str]
    dtypes: dict[str, str]
    n_rows: int
    fingerprint: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Dataset) -> DatasetInfo:
        """Build the info of a `Dataset` database row."""
        return cls(
            name=row.name,
            owner=row.owner,
            shared_with=list(row.shared_with or []),
            id_column=row.id_column,
            label_column=row.label_column,
            features=list(row.features),
            dtypes=dict(row.dtypes),
            n_rows=row.n_rows,
            fingerprint=row.fingerprint,
            created_at=row.created_at,
        )

    def _repr_html_(self) -> str:
        esc = html.escape
        shown = ", ".join(esc(f) for f in self.features[:8])
        more = f", … (+{len(self.features) - 8})" if len(self.features) > 8 else ""
        label = f"<code>{esc(self.label_column)}</code>" if self.label_column else "<i>none</i>"
        return (
            '<div class="fedbench-dataset" style="display:inline-block;border:1px solid #d0d7de;'
            'border-radius:6px;padding:6px 10px;font-family:sans-serif;font-size:13px;line-height:1.5">'
            f"<b>{esc(self.name)}</b> <span style='color:#57606a'>({esc(self.owner)})</span><br>"
            f"{self.n_rows:,} rows &middot; id <code>{esc(self.id_column)}</code> &middot; label {label}<br>"
            f"{len(self.features)} features: {shown}{more}<br>"
            f"<span style='color:#57606a'>fingerprint <code>{esc(self.fingerprint[:12])}</code></span>"
            "</div>"
        )
