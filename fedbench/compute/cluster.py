"""A local Dask cluster for one party (scheduler and worker processes, TLS with the party's CA files).

Used by `fedbench sandbox up --dask`, the tests and the benchmarks, so the Dask path runs on one machine
exactly as on a real cluster: the `dask scheduler` and `dask worker` programs, each a process of its own,
with the party's certificate on every connection. Workers have one thread each (gmpy2 and OpenSSL hold the
GIL) and a nanny that restarts a worker process that dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedbench.compute.errors import ComputeError

__all__ = [
    "DASK_ENV",
    "MESSAGE_LOG_LENGTH",
    "PROFILE_INTERVAL",
    "TICK_INTERVAL",
    "LocalCluster",
    "start_cluster",
]

MESSAGE_LOG_LENGTH = 16
"""Recent messages Dask keeps per connection, for debugging (its `distributed.admin.low-level-log-length`,
1,000 by default). Dask keeps every message under 1 MB, and ours carry chunks of up to 512 KiB: with the
default, the scheduler held up to half a gigabyte per worker connection and the client as much (measured: a
10M x 10M PSI's scheduler grew to 655 MB, 1,500 tasks took it from 63 to 803 MB). With 16 it stays flat."""

PROFILE_INTERVAL = "100ms"
"""How often a worker's statistical profiler samples its threads (Dask's `distributed.worker.profile.interval`,
10 ms by default). Each sample takes the GIL from the task computing, and our tasks are a core's worth of
gmpy2 work: with 2 workers on 2 cores, a dot of 5,000 x 13 at 2048 bits took 1.10x the local pool's time by
default and 1.05x with 100 ms and the tick below (4 interleaved runs). The dashboard's profile still fills."""

TICK_INTERVAL = "500ms"
"""How often each Dask process checks that its event loop is not blocked (`distributed.admin.tick.interval`,
20 ms by default): 50 wake-ups a second per process on cores the workers' tasks need."""

DASK_ENV = {
    "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": str(MESSAGE_LOG_LENGTH),
    "DASK_DISTRIBUTED__WORKER__PROFILE__INTERVAL": PROFILE_INTERVAL,
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": TICK_INTERVAL,
}
"""The environment of the scheduler and worker processes we start (the compose profile sets the same)."""


@dataclass
class LocalCluster:
    """A running local cluster: its scheduler address, dashboard link, and the processes to stop."""

    scheduler: str
    dashboard: str | None
    pids: list[int] = field(default_factory=list)
    scheduler_file: str = ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the workers, then the scheduler; SIGKILL to any still there after `timeout` s."""
        for pid in reversed(self.pids):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in self.pids:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
                _reap(pid)

    def as_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "dashboard": self.dashboard, "pids": self.pids}


def start_cluster(
    tls_dir: str | Path,
    run_dir: str | Path,
    *,
    workers: int = 1,
    host: str = "127.0.0.1",
    memory_limit: str = "auto",
    dashboard: bool = True,
    timeout: float = 60.0,
    python_path: Sequence[str | Path] = (),
) -> LocalCluster:
    """Start a scheduler and `workers` single-threaded worker processes (one `dask worker` with `--nworkers`)
    on `host`, TLS with the files in `tls_dir`; logs and the scheduler file go to `run_dir`. `python_path`: more
    directories the workers import task modules from (ahead of the inherited `$PYTHONPATH`)."""
    tls = Path(tls_dir)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    tls_args = [
        "--tls-ca-file",
        str(tls / "ca.pem"),
        "--tls-cert",
        str(tls / "party.pem"),
        "--tls-key",
        str(tls / "party.key"),
    ]
    scheduler_file = run / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    scheduler_cmd = [
        sys.executable,
        "-m",
        "distributed.cli.dask_scheduler",
        "--protocol",
        "tls",
        "--host",
        host,
        "--port",
        "0",
        "--scheduler-file",
        str(scheduler_file),
        "--dashboard-address",
        f"{host}:0" if dashboard else "",
        *([] if dashboard else ["--no-dashboard"]),
        *tls_args,
    ]
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False", **DASK_ENV}
    paths = [str(p) for p in python_path] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    pids = [_spawn(scheduler_cmd, run / "scheduler.log", env)]
    cluster = LocalCluster(scheduler="", dashboard=None, pids=pids, scheduler_file=str(scheduler_file))
    try:
        info = _wait_for_file(scheduler_file, pids[0], run / "scheduler.log", timeout)
        cluster.scheduler = info["address"]
        port = info.get("services", {}).get("dashboard")
        cluster.dashboard = f"http://{host}:{port}/status" if port else None
        worker_cmd = [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            cluster.scheduler,
            "--nworkers",
            str(workers),
            "--nthreads",
            "1",
            "--host",
            host,
            "--memory-limit",
            memory_limit,
            "--no-dashboard",
            "--local-directory",
            str(run / "workers"),
            *tls_args,
        ]
        cluster.pids.append(_spawn(worker_cmd, run / "workers.log", env))
        _wait_for_workers(cluster, tls, workers, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> int:
    with open(log, "ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return process.pid


def _wait_for_file(path: Path, pid: int, log: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                info = json.loads(path.read_text())
            except ValueError:
                info = None
            if isinstance(info, dict) and info.get("address"):
                return info
        if not _alive(pid):
            raise ComputeError(f"the Dask scheduler exited at start; see {log}")
        time.sleep(0.1)
    raise ComputeError(f"the Dask scheduler did not start within {timeout:g} s; see {log}")


def _wait_for_workers(cluster: LocalCluster, tls: Path, count: int, timeout: float) -> None:
    from fedbench.compute.dask_backend import DaskBackend

    backend = DaskBackend(cluster.scheduler, tls_dir=tls, connect_timeout=timeout)
    try:
        backend.client.wait_for_workers(count, timeout=timeout)
    except TimeoutError:
        raise ComputeError(f"{count} Dask workers did not join within {timeout:g} s") from None
    finally:
        backend.close()


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
