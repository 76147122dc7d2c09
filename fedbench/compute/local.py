"""The local process pool: today's behaviour and the default backend, one machine's cores.

A job gets its own `ProcessPoolExecutor` whose initializer builds the job's state once in each worker process
(as the PSI's masking pool always did), so `close` drops the state by ending those processes. Workers start
from a fork server (never by forking a process that runs gRPC threads; spawn where there is none) that
preloads the setup's module; a worker whose job's process is gone (killed with its step) exits by itself.
With one worker the tasks run in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from fedbench.compute import job_state
from fedbench.compute.backend import Chunk, ComputeBackend, ComputeJob, TaskFn, new_job_id
from fedbench.compute.errors import ComputeError
from fedbench.compute.job_state import Setup
from fedbench.compute.owner_watch import watch_owner
from fedbench.net import codec

__all__ = ["BROKEN_POOL", "LocalBackend", "LocalJob"]

BROKEN_POOL = (
    "a local worker process exited unexpectedly: out of memory, killed, or, when the caller is a script, a "
    "missing `if __name__ == '__main__':` guard (worker processes import the main module, as in any "
    "multiprocessing program)"
)


def _context(preload: list[str]) -> Any:
    """Worker processes start from a fork server, never by forking a process that runs gRPC threads."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        if preload:
            context.set_forkserver_preload(preload)
        return context
    return multiprocessing.get_context("spawn")


def _init_worker(job_id: str, setup: Setup | None, payload: bytes, owner: int) -> None:
    job_state.install(job_id, setup, payload)
    watch_owner(owner)


def _call(job_id: str, fn: TaskFn, chunk: Chunk) -> np.ndarray[Any, Any]:
    return fn(job_state.get(job_id), *chunk)


class LocalJob(ComputeJob):
    """A job on this machine: its own worker processes (or this process when there is one worker)."""

    def __init__(
        self, backend: LocalBackend, setup: Setup | None, payload: bytes, workers: int, preload: list[str]
    ) -> None:
        super().__init__(backend, new_job_id("local"))
        self.workers = workers
        self._inline: Any = None
        self._executor: ProcessPoolExecutor | None = None
        if workers == 1:
            state = codec.decode(payload) if payload else {}
            self._inline = setup(state) if setup is not None else None
        else:
            self._executor = ProcessPoolExecutor(
                workers,
                mp_context=_context(preload),
                initializer=_init_worker,
                initargs=(self.job_id, setup, payload, os.getpid()),
            )

    def submit(self, fn: TaskFn, chunk: Chunk) -> Future[np.ndarray[Any, Any]]:
        if self._executor is None:
            future: Future[np.ndarray[Any, Any]] = Future()
            try:
                future.set_result(fn(self._inline, *chunk))
            except Exception as exc:
                future.set_exception(exc)
            return future
        try:
            return self._executor.submit(_call, self.job_id, fn, chunk)
        except BrokenProcessPool:
            raise ComputeError(BROKEN_POOL) from None

    def result(self, handle: Any) -> np.ndarray[Any, Any]:
        try:
            return handle.result()
        except BrokenProcessPool:
            raise ComputeError(BROKEN_POOL) from None

    def close(self) -> None:
        self.closed = True
        close = getattr(self._inline, "close", None)
        self._inline = None
        if callable(close):
            close()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


class LocalBackend(ComputeBackend):
    """This machine's cores (`workers` processes, default `os.cpu_count()`)."""

    kind = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and (type(workers) is not int or workers < 1):
            raise ComputeError(f"workers must be a positive int or None, got {workers!r}")
        self.workers = workers

    @property
    def cores(self) -> int:
        return self.workers or os.cpu_count() or 1

    def describe(self) -> str:
        return f"local pool ({self.cores} processes)"

    def job(
        self,
        setup: Setup | None = None,
        state: Mapping[str, Any] | None = None,
        *,
        workers: int | None = None,
    ) -> LocalJob:
        count = workers or self.cores
        if self.workers:
            count = min(count, self.workers)
        preload = [setup.__module__] if setup is not None else []
        return LocalJob(self, setup, self.encode_state(state), count, preload)
