"""The compute layer's error: a backend that cannot run a chunk (a worker pool gone, a cluster unreachable)."""

from __future__ import annotations

from fedbench.errors import FedbenchError

__all__ = ["ComputeError"]


class ComputeError(FedbenchError):
    """The party's compute backend failed: its worker processes died, or its Dask cluster is unreachable, lost
    or not the party's own (a certificate from another CA). The message names the backend and the fix."""

    code = "compute"
