"""The node's fork server, forked from the node itself at start-up instead of started by exec on its first step.

Step workers are forked from a fork server (`worker_pool`). Started the usual way, on the node's first step,
that server is a fresh interpreter that imports numpy, pandas, gRPC, the components... again: about 1.3
CPU-seconds per node, which the node has mostly paid already. `start_early()` forks the node into that server
while the node still runs one Python thread and no gRPC server, channel or database connection (a fork of a
process running gRPC threads is unsafe): the server starts with the node's imports in place and imports only
the rest of `WARM_MODULES`, beside the node's own start-up. It then serves exactly as one started by `multiprocessing`
(its own `forkserver.main`); the node's multiprocessing finds it running and never starts another. A step
worker does the same for the fork server of its PSI and Paillier pools, before it takes its task (about 0.3
CPU-seconds less per step that uses a pool).

This leans on the internals of CPython's `multiprocessing.forkserver` (3.11 to 3.13): where they differ, or a
Python thread already runs, `start_early()` does nothing and the server starts the usual way on the first step.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import threading
from collections.abc import Sequence
from multiprocessing import connection, forkserver, resource_tracker, util
from pathlib import Path
from typing import Any

__all__ = [
    "POOL_NAME",
    "SERVER_NAME",
    "WORKER_NAME",
    "child_pids",
    "is_fork_server",
    "name_this_process",
    "start_early",
]

log = logging.getLogger("fedbench.workers")

SERVER_NAME = "fb-forkserver"
WORKER_NAME = "fb-worker"
POOL_NAME = "fb-pool"
"""Process names (Linux `/proc/<pid>/comm`, what `ps -o comm` and `top` show; a forked process's command line
is its parent's): the node's fork server, each step worker, and a worker's own fork server with the PSI and
Paillier pool processes forked from it."""

_MAIN_PARAMETERS = ["listener_fd", "alive_r", "preload", "main_path", "sys_path"]
_STATE = ("_lock", "_forkserver_address", "_forkserver_alive_fd", "_forkserver_pid")


def _supported() -> bool:
    """Whether this Python's fork server has the entry point and state `start_early` sets up."""
    server = getattr(forkserver, "_forkserver", None)
    return (
        hasattr(os, "fork")
        and server is not None
        and all(hasattr(server, name) for name in _STATE)
        and list(inspect.signature(forkserver.main).parameters) == _MAIN_PARAMETERS
    )


def start_early(preload: Sequence[str], name: str = SERVER_NAME) -> bool:
    """Fork this process into the fork server its child processes will be forked from; whether it did.

    Call it before the process starts any thread or opens any connection: the node before it serves (its step
    workers' server), a step worker before it takes its task (its PSI and Paillier pools' server, `POOL_NAME`).
    The server, named `name`, imports `preload` (what this process has not imported yet) and serves until
    this process and every process forked from it exit.
    """
    if not _supported() or threading.active_count() > 1:
        return False
    server: Any = getattr(forkserver, "_forkserver")  # noqa: B009  (private: typeshed leaves it out)
    if server._forkserver_pid is not None:
        return False
    # One Python thread (the native helper threads of numpy's BLAS and pyarrow's allocator have fork handlers of
    # their own), so no lock is needed; none is held across the fork either (the server and every worker forked
    # from it would inherit it held, and multiprocessing takes it when a worker starts a pool of its own).
    resource_tracker.ensure_running()
    address = connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(address)
        if not util.is_abstract_socket_namespace(address):
            os.chmod(address, 0o600)
        listener.listen()
        # every client (this node and its workers) holds the write end of the "alive" pipe; once all of them
        # have exited, the server reads end-of-file and exits too
        alive_r, alive_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(alive_w)
                name_this_process(name)
                forkserver.main(listener.fileno(), alive_r, list(preload))
                code = 0
            except SystemExit as exit_:
                code = 0 if exit_.code in (None, 0) else 1
            except BaseException:
                log.exception(
                    "the fork server forked from pid %d failed; steps start a new one", os.getppid()
                )
            finally:
                os._exit(code)
        os.close(alive_r)
    with server._lock:
        server._forkserver_address = address
        server._forkserver_alive_fd = alive_w
        server._forkserver_pid = pid
    log.debug("fork server %d forked from the node", pid)
    return True


def name_this_process(name: str) -> None:
    """Set this process's name as `ps` and `top` show it (Linux; elsewhere nothing happens)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name[:15])


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`, as each of its threads lists them (Linux /proc; none once it ended):
    with `is_fork_server`, how tests and benchmarks find a node's fork servers and their workers."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def is_fork_server(pid: int) -> bool:
    """Whether process `pid` is a node's fork server: forked from the node (named `SERVER_NAME`) or started the
    usual way by `multiprocessing` (its command line runs `multiprocessing.forkserver`). Linux /proc."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() == SERVER_NAME:
            return True
        return b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
