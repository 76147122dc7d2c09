"""Per-job state on a worker process (keys, fixed-base tables, a PSI secret), held by job id, dropped at job end.

A job's state crosses to a worker as codec bytes (never a pickled big int) with the name of a module-level
`setup` function that builds the worker-side object from it once; tasks of the job then find that object here.
An object with a `close()` method is closed when it is dropped (e.g. to free fixed-base tables).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fedbench.compute.errors import ComputeError
from fedbench.net import codec

__all__ = ["Setup", "drop", "get", "held", "install"]

Setup = Callable[[dict[str, Any]], Any]
"""Builds the worker-side object of a job from its decoded state (a module-level function, named by reference)."""

_STATES: dict[str, Any] = {}
_LOCK = threading.Lock()


def install(job_id: str, setup: Setup | None, payload: bytes) -> None:
    """Build and hold the job's object (None without a `setup`)."""
    state = codec.decode(payload) if payload else {}
    value = setup(state) if setup is not None else None
    with _LOCK:
        _STATES[job_id] = value


def get(job_id: str) -> Any:
    """The job's object on this process; a clear error when the job's state is not here (job already ended)."""
    with _LOCK:
        if job_id not in _STATES:
            raise ComputeError(
                f"compute job {job_id} has no state on this worker (the job ended, or its plugin was not "
                "installed): the task cannot run here"
            )
        return _STATES[job_id]


def drop(job_id: str) -> None:
    """Forget the job's object, closing it if it can be closed."""
    with _LOCK:
        value = _STATES.pop(job_id, None)
    close = getattr(value, "close", None)
    if callable(close):
        close()


def held() -> list[str]:
    """The ids of the jobs whose state this process holds (tests check that a job's end drops it)."""
    with _LOCK:
        return sorted(_STATES)
