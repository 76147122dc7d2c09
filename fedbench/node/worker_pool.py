"""Warm workers: a node's pool of pre-started worker processes, the heavy imports already done.

Every step runs in a process of its own and that process runs nothing else (one task per process: a step never
sees another's memory, a crash or a cancel ends only its own process). Workers are forked from the node's fork
server, which has imported the package, numpy, pandas, the Paillier engine and the PSI group once: a worker
then costs a fork, not a second of imports, and shares those pages with its siblings. `fedbench node start`
forks that server from the node before the node starts any thread (`fork_server.start_early`; never a fork
of a process running gRPC threads); elsewhere multiprocessing starts it by exec on the first step. The pool
keeps `size` idle workers that have also started the fork server their own PSI and Paillier process pools fork
from. `take(task)` hands the task to the oldest
idle worker (with none idle, to a worker forked there and then); the worker runs it and exits. The pool starts
a replacement when a taken worker has exited, one at a time, so warming up never takes more than one core
from the steps that run. An idle worker waits on a pipe from its node and exits when the node closes the pool,
or dies.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from fedbench.node.fork_server import POOL_NAME, WORKER_NAME, name_this_process, start_early
from fedbench.node.task_spec import TaskSpec

__all__ = ["WARM_MODULES", "Worker", "WorkerPool"]

log = logging.getLogger("fedbench.workers")

_SPAWN = multiprocessing.get_context("spawn")
_FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()
_WORKERS: ForkServerContext | SpawnContext = (
    multiprocessing.get_context("forkserver") if _FORKSERVER else multiprocessing.get_context("spawn")
)
"""How worker processes start: forked from the node's fork server (spawned where there is none)."""

WARM_MODULES = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "grpc",
    "gmpy2",
    "fedbench.node.worker",
    "fedbench.components.builtin",
    "fedbench.crypto.paillier",
    "fedbench.psi",
)
"""What a warm worker imports before it waits for its task (a step's own imports are then nearly free)."""

_FORKSERVER_PRELOAD = ["fedbench.psi.group", "fedbench.crypto.paillier.parallel"]
"""What the fork server of a worker imports once, for the PSI and Paillier process pools forked from it."""

_READY = "ready"
_RETRY = 10.0
"""Seconds before another try when a worker died while warming up."""


@dataclass
class Worker:
    """One worker process, with the queue it reports events on and the event that asks it to stop."""

    process: BaseProcess
    events: Queue[dict[str, Any]]
    cancel: Event
    conn: Connection
    """The node's end of the pipe the task goes down (the worker says it is warm on it)."""


class WorkerPool:
    """Pre-started workers for one node's steps; `size` 0 starts every worker cold, when its step starts."""

    def __init__(self, size: int, *, preload: Sequence[str] = ()) -> None:
        self.size = max(0, size)
        self._preload = (*WARM_MODULES, *preload)
        if _FORKSERVER:
            # the node's fork server imports the common modules once; a node's own component modules are
            # imported after the fork, where an error in one is left for its step to report
            _WORKERS.set_forkserver_preload(list(WARM_MODULES))
        self._idle: deque[Worker] = deque()
        self._busy: list[Worker] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = _SPAWN.Pipe(duplex=False)
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Start keeping `size` workers warm, in a background thread (nothing to do for a pool of 0)."""
        if self.size and self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._keep_warm, name="worker-pool", daemon=True)
            self._thread.start()

    def take(self, task: TaskSpec) -> Worker:
        """A worker running `task`: the oldest idle one, or a cold one when none is idle."""
        with self._lock:
            worker = None
            while self._idle and worker is None:
                candidate = self._idle.popleft()
                if candidate.process.is_alive():
                    worker = candidate
                else:
                    _close(candidate)
            if worker is None:
                worker = _launch(())
            if self._thread is not None:
                self._busy.append(worker)
        worker.conn.send(task)
        self._wake()
        return worker

    def close(self, timeout: float = 5.0) -> None:
        """End the idle workers now (they hold nothing yet) and stop refilling.

        Workers running a task are left to their step's own ending; they exit with their task, or with the node.
        """
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
        self._wake()
        for worker in idle:
            worker.process.terminate()
        for worker in idle:
            worker.process.join(timeout)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout)
            _close(worker)
        if self._thread is not None:
            self._thread.join(timeout)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"")

    def _keep_warm(self) -> None:
        """Refill to `size` idle workers, one warming at a time; reap taken workers once they exit."""
        warming: Worker | None = None
        retry_at = 0.0
        while True:
            with self._lock:
                if self._closed:
                    return
                for worker in [w for w in self._idle if not w.process.is_alive()]:
                    self._idle.remove(worker)
                    _close(worker)
                    warming = None if worker is warming else warming
                if warming is None and len(self._idle) < self.size and time.monotonic() >= retry_at:
                    warming = self._start_one()
                watched: list[Any] = [self._wake_r, *(w.process.sentinel for w in [*self._busy, *self._idle])]
                if warming is not None:
                    watched.append(warming.conn)
            ready = wait(watched, timeout=max(0.1, min(60.0, retry_at - time.monotonic())))
            if self._wake_r in ready:
                with contextlib.suppress(EOFError, OSError):
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
            if warming is not None and warming.conn in ready:
                try:
                    warming.conn.recv()
                except (EOFError, OSError):
                    with self._lock:
                        if warming in self._idle:
                            # it died warming up (a broken environment?): retry later, not in a loop
                            log.warning("a warm worker exited while starting; next try in %g s", _RETRY)
                            retry_at = time.monotonic() + _RETRY
                warming = None
            with self._lock:
                ended = [w for w in self._busy if not w.process.is_alive()]
                self._busy = [w for w in self._busy if w not in ended]
            for worker in ended:
                worker.process.join(0)
                _close(worker)
                warming = None if worker is warming else warming

    def _start_one(self) -> Worker | None:
        """Start one warm worker and add it to the idle ones (under the lock); None if the system refused."""
        try:
            worker = _launch(self._preload)
        except OSError:
            log.exception("could not start a warm worker; steps start cold meanwhile")
            return None
        self._idle.append(worker)
        return worker


def _launch(preload: Sequence[str]) -> Worker:
    """Start a worker process that imports `preload`, says so, then waits for its one task."""
    events: Queue[dict[str, Any]] = _WORKERS.Queue()
    cancel = _WORKERS.Event()
    ours, theirs = _WORKERS.Pipe()
    # Not daemonic: a step may start a process pool of its own (PSI, Paillier); the worker exits with its node.
    process = _WORKERS.Process(
        target=_serve, args=(theirs, events, cancel, tuple(preload)), name="fedbench-worker", daemon=False
    )
    process.start()
    theirs.close()
    return Worker(process, events, cancel, ours)


def _close(worker: Worker) -> None:
    """Release the node's end of a finished worker's pipe."""
    worker.conn.close()


def _serve(conn: Connection, events: Queue[dict[str, Any]], cancel: Event, preload: tuple[str, ...]) -> None:
    """A worker process: warm up, wait for one task, run it, exit."""
    name_this_process(WORKER_NAME)
    if preload:
        _warm(preload)
        with contextlib.suppress(OSError):
            conn.send(_READY)
    else:
        start_early(_FORKSERVER_PRELOAD, POOL_NAME)
    try:
        task = conn.recv()
    except (EOFError, OSError):
        return
    conn.close()
    from fedbench.node.worker import run_task

    run_task(task, events, cancel)
    # Leave at once: the events are flushed, the step's process pools are gone; tearing down the interpreter
    # (pandas, gRPC) would only keep the node waiting for a process whose work is done.
    events.close()
    events.join_thread()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _warm(preload: Sequence[str]) -> None:
    """Import what steps need and start the fork server; a failure is left for the step to report."""
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112  (the step imports it again and reports what is wrong)
            continue
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        with contextlib.suppress(Exception):
            if not start_early(_FORKSERVER_PRELOAD, POOL_NAME):
                forkserver.set_forkserver_preload(_FORKSERVER_PRELOAD)
            # one trivial child: it forks only once the fork server has imported its preload, so "ready" means ready
            probe = multiprocessing.get_context("forkserver").Process(target=int, name="fedbench-warmup")
            probe.start()
            probe.join()
