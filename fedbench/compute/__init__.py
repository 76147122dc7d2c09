"""Where a party's heavy work runs: the compute backend interface, below the protocols that use it.

`current()` is the process's backend: the local process pool (default, `LocalBackend`) or the party's Dask
cluster (`DaskBackend`, from node.json's `compute.scheduler`). A protocol opens a job with its state
(`backend.job(setup, state)`) and maps a task function over chunks of numpy arrays (`job.map`), with
back-pressure and progress. The names load on first use (a node's configuration reads `config` alone), so a
machine without the `dask` extra works.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedbench.compute.errors import ComputeError

if TYPE_CHECKING:
    from fedbench.compute.backend import Chunk, ComputeBackend, ComputeJob, ProgressFn, TaskFn, current, use
    from fedbench.compute.cluster import LocalCluster, start_cluster
    from fedbench.compute.config import ComputeConfig, backend_for
    from fedbench.compute.dask_backend import DaskBackend
    from fedbench.compute.local import LocalBackend

_LAZY = {
    "Chunk": "fedbench.compute.backend",
    "ComputeBackend": "fedbench.compute.backend",
    "ComputeJob": "fedbench.compute.backend",
    "ProgressFn": "fedbench.compute.backend",
    "TaskFn": "fedbench.compute.backend",
    "current": "fedbench.compute.backend",
    "use": "fedbench.compute.backend",
    "LocalBackend": "fedbench.compute.local",
    "ComputeConfig": "fedbench.compute.config",
    "DaskBackend": "fedbench.compute.dask_backend",
    "LocalCluster": "fedbench.compute.cluster",
    "backend_for": "fedbench.compute.config",
    "start_cluster": "fedbench.compute.cluster",
}

__all__ = [
    "Chunk",
    "ComputeBackend",
    "ComputeConfig",
    "ComputeError",
    "ComputeJob",
    "DaskBackend",
    "LocalBackend",
    "LocalCluster",
    "ProgressFn",
    "TaskFn",
    "backend_for",
    "current",
    "start_cluster",
    "use",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fedbench.compute' has no attribute {name!r}")
