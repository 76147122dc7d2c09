"""The `compute` section of node.json: where the party's heavy work runs, and how a worker gets its backend.

``"compute": {"scheduler": "tls://host:8786"}`` sends PSI masking and the Paillier engine's vector operations
to the party's Dask cluster (TLS with the files of the node's `tls/`, or of `tls_dir`); without a scheduler
they run on the machine's own process pool. `fedbench node start --dask-scheduler ADDR` sets the scheduler
for one run of the node (`$FEDBENCH_DASK_SCHEDULER`, which its step workers inherit; `$FEDBENCH_DASK_TLS_DIR`
likewise names the TLS files, as the compose profile `dask` does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

if TYPE_CHECKING:
    from fedbench.compute.backend import ComputeBackend

__all__ = ["SCHEDULER_ENV", "TLS_DIR_ENV", "ComputeConfig", "backend_for"]

SCHEDULER_ENV = "FEDBENCH_DASK_SCHEDULER"
TLS_DIR_ENV = "FEDBENCH_DASK_TLS_DIR"
"""The party's TLS files for its cluster, when set (a container's mount of its compute CA's certificate)."""


class ComputeConfig(BaseModel):
    """Where a party's heavy work runs: its Dask scheduler (None: the local process pool)."""

    model_config = {"extra": "forbid"}

    scheduler: str | None = Field(default=None, description="tls://host:port of the party's Dask scheduler")
    tls_dir: str | None = Field(
        default=None,
        description="the party's key, certificate and CA for the cluster (default the node's tls/)",
    )
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds to wait for the scheduler")
    dashboard: str | None = Field(default=None, description="the Dask dashboard's link, shown in status")

    @field_validator("scheduler")
    @classmethod
    def _tls_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("tls://"):
            raise ValueError(
                f"compute.scheduler must be tls://host:port (the party's keys travel only over TLS), got {value!r}"
            )
        return value


def backend_for(config: ComputeConfig | None, tls_dir: str | Path) -> ComputeBackend | None:
    """The Dask backend a node's step should use (None: the local pool), with `$FEDBENCH_DASK_SCHEDULER` and
    `$FEDBENCH_DASK_TLS_DIR` overriding the configured scheduler and TLS directory."""
    settings = config or ComputeConfig()
    scheduler = os.environ.get(SCHEDULER_ENV) or settings.scheduler
    if not scheduler:
        return None
    from fedbench.compute.dask_backend import DaskBackend

    return DaskBackend(
        scheduler,
        tls_dir=os.environ.get(TLS_DIR_ENV) or settings.tls_dir or tls_dir,
        connect_timeout=settings.connect_timeout,
        dashboard_link=settings.dashboard,
    )
