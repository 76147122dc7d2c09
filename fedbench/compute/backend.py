"""The compute backend interface: where a party's heavy work runs (its own machine's processes or its cluster).

A protocol opens a `ComputeJob` with the job's state (keys, a PSI secret: built once per worker by a `setup`
function) and maps a module-level task function over chunks. Chunks and results are tuples of numpy arrays
of fixed-width values (never pickled big-int objects). `map` keeps at most `inflight` chunks submitted and not
yet taken (back-pressure: memory stays bounded whatever the size), yields results in chunk order and reports
progress as (chunks done, chunks submitted). The process-wide backend is `current()` (the local pool unless a
node's configuration names a Dask scheduler, `use`).
"""

from __future__ import annotations

import abc
import hashlib
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from fedbench.compute.job_state import Setup
from fedbench.net import codec

__all__ = ["Chunk", "ComputeBackend", "ComputeJob", "ProgressFn", "TaskFn", "current", "use"]

Chunk = tuple[np.ndarray[Any, Any], ...]
TaskFn = Callable[..., np.ndarray[Any, Any]]
"""``fn(state, *arrays) -> array``: `state` is the worker-side object of the job (None for a stateless map)."""
ProgressFn = Callable[[int, int], None]
"""``progress(done, submitted)`` in chunks, after each result is taken."""


def new_job_id(kind: str) -> str:
    """A random job id: names the job's state on workers that several processes (and machines) may share."""
    return f"{kind}-{uuid.uuid4().hex}"


class ComputeJob(abc.ABC):
    """One job's use of a backend: its state on the workers and the tasks it runs; `close` drops the state."""

    def __init__(self, backend: ComputeBackend, job_id: str) -> None:
        self.backend = backend
        self.job_id = job_id
        self.closed = False

    @abc.abstractmethod
    def submit(self, fn: TaskFn, chunk: Chunk) -> Any:
        """Start one task; returns a handle that `result` takes."""

    @abc.abstractmethod
    def result(self, handle: Any) -> np.ndarray[Any, Any]:
        """Wait for a task's result (its errors raised as they are, a lost worker or cluster as ComputeError)."""

    def cancel(self, handles: Iterable[Any]) -> None:
        """Drop tasks not taken (after an error, or when the caller stops early)."""
        for handle in handles:
            cancel = getattr(handle, "cancel", None)
            if callable(cancel):
                cancel()

    def map(
        self,
        fn: TaskFn,
        chunks: Iterable[Chunk],
        *,
        inflight: int | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray[Any, Any]]:
        """`fn(state, *chunk)` for each chunk, results in chunk order, at most `inflight` (default twice the
        backend's cores, plus one) submitted and not yet taken."""
        limit = inflight or 2 * self.backend.cores + 1
        pending: deque[Any] = deque()
        done = submitted = 0
        try:
            for chunk in chunks:
                pending.append(self.submit(fn, chunk))
                submitted += 1
                if len(pending) >= limit:
                    yield self.result(pending.popleft())
                    done += 1
                    if progress is not None:
                        progress(done, submitted)
            while pending:
                yield self.result(pending.popleft())
                done += 1
                if progress is not None:
                    progress(done, submitted)
        finally:
            if pending:
                self.cancel(pending)

    @abc.abstractmethod
    def close(self) -> None:
        """Drop the job's state on every worker (and stop workers started for it alone)."""

    def __enter__(self) -> ComputeJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ComputeBackend(abc.ABC):
    """Where heavy work runs: `job(setup, state)` opens a job; `map` runs a stateless one."""

    kind = "abstract"
    distributed = False
    """Whether work leaves this machine's process pool (the Paillier engine then ships fixed-width chunks)."""
    dashboard_link: str | None = None

    @property
    @abc.abstractmethod
    def cores(self) -> int:
        """Task slots available (worker processes times threads)."""

    @abc.abstractmethod
    def job(
        self,
        setup: Setup | None = None,
        state: Mapping[str, Any] | None = None,
        *,
        workers: int | None = None,
    ) -> ComputeJob:
        """Open a job: `setup(state)` runs once on each worker that runs its tasks. `state` is plain data
        (codec types: ints of any size travel as bytes); `workers` caps the local pool's processes."""

    def describe(self) -> str:
        """A short name for progress messages and status ("local pool (2 processes)", "dask at tls://...")."""
        return f"{self.kind} ({self.cores} workers)"

    def map(
        self,
        fn: TaskFn,
        chunks: Iterable[Chunk],
        *,
        inflight: int | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray[Any, Any]]:
        """A stateless job's `map`, closed when the results are all taken."""
        with self.job() as job:
            yield from job.map(fn, chunks, inflight=inflight, progress=progress)

    def cached_job(self, setup: Setup, state: Mapping[str, Any]) -> ComputeJob:
        """The open job of this `setup` and `state`, opened on first use and kept until `close`: many short
        operations of one key (a step's encryptions) share its state on the workers, built once."""
        payload = self.encode_state(state)
        key = hashlib.sha256(
            f"{setup.__module__}.{setup.__qualname__}".encode() + b"\0" + payload
        ).hexdigest()
        with _lock:
            jobs = self.__dict__.setdefault("_cached_jobs", {})
            job = jobs.get(key)
        if job is None or job.closed:
            job = self.job(setup, state)
            with _lock:
                jobs[key] = job
        return job

    def close(self) -> None:
        """Close the cached jobs (dropping their state on the workers) and release the backend's resources."""
        with _lock:
            jobs = list(self.__dict__.pop("_cached_jobs", {}).values())
        for job in jobs:
            job.close()

    @staticmethod
    def encode_state(state: Mapping[str, Any] | None) -> bytes:
        """The job state as codec bytes (what crosses to the workers)."""
        return codec.encode(dict(state)) if state else b""


_current: ComputeBackend | None = None
_lock = threading.Lock()


def current() -> ComputeBackend:
    """The process's backend: the one `use` set, else the local process pool."""
    global _current
    with _lock:
        if _current is None:
            from fedbench.compute.local import LocalBackend

            _current = LocalBackend()
        return _current


def use(backend: ComputeBackend | None) -> ComputeBackend | None:
    """Make `backend` the process's backend (None: back to the local pool); returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, backend
        return previous
