"""Dask distributed as a compute backend: a party's own cluster, reached over TLS with the party's CA.

The client, the scheduler and every worker present certificates of the party's CA (`fedbench certs`) and
accept only such certificates (`Security(require_encryption=True)`), so a job's state, which may hold the
party's private key, goes only to workers inside the party's trust boundary. A job's state travels as codec
bytes in a `WorkerPlugin` (installed on every worker, also one that joins later, e.g. a restarted one) and is
dropped by the plugin's teardown when the job closes. Tasks get chunks of numpy arrays; a worker lost mid-job
is handled by Dask (its tasks run again elsewhere), a lost scheduler is a `ComputeError`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask
import numpy as np
from distributed import Client, KilledWorker, WorkerPlugin
from distributed.security import Security

from fedbench.compute import job_state
from fedbench.compute.backend import Chunk, ComputeBackend, ComputeJob, TaskFn, new_job_id
from fedbench.compute.cluster import MESSAGE_LOG_LENGTH
from fedbench.compute.errors import ComputeError
from fedbench.compute.job_state import Setup

__all__ = ["DaskBackend", "DaskJob", "JobStatePlugin", "party_security"]

CORES_TTL = 1.0
"""Seconds the cluster's core count is kept before the scheduler is asked again."""


def party_security(tls_dir: str | Path) -> Security:
    """TLS with the party's own key, certificate and CA (`<tls_dir>/party.key`, `party.pem`, `ca.pem`), for the
    client, scheduler and workers alike; unencrypted connections are refused."""
    tls = Path(tls_dir)
    files = {name: tls / name for name in ("party.key", "party.pem", "ca.pem")}
    for name, path in files.items():
        if not path.is_file():
            raise ComputeError(
                f"no {name} in {tls}: the Dask cluster uses the party's TLS files; issue them with "
                f"`fedbench certs issue --ca CA_DIR --party NAME --dir {tls}`"
            )
    ca, cert, key = (str(files[name]) for name in ("ca.pem", "party.pem", "party.key"))
    return Security(
        require_encryption=True,
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
    )


class JobStatePlugin(WorkerPlugin):
    """Holds one job's state on each worker from `setup` to `teardown` (the job's end)."""

    def __init__(self, job_id: str, setup: Setup | None, payload: bytes) -> None:
        self.name = f"fedbench-{job_id}"
        self.job_id = job_id
        self.setup_fn = setup
        self.payload = payload

    def setup(self, worker: Any) -> None:
        job_state.install(self.job_id, self.setup_fn, self.payload)

    def teardown(self, worker: Any) -> None:
        job_state.drop(self.job_id)


def _call(job_id: str, fn: TaskFn, *chunk: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return fn(job_state.get(job_id), *chunk)


def _held(dask_worker: Any = None) -> list[str]:
    return job_state.held()


class DaskJob(ComputeJob):
    """A job on the party's Dask cluster: its state in a worker plugin, its tasks Dask futures."""

    def __init__(self, backend: DaskBackend, setup: Setup | None, payload: bytes) -> None:
        super().__init__(backend, new_job_id("dask"))
        self._backend = backend
        self.plugin = JobStatePlugin(self.job_id, setup, payload)
        backend.guard(lambda: backend.client.register_plugin(self.plugin), "installing the job's state")

    def submit(self, fn: TaskFn, chunk: Chunk) -> Any:
        client = self._backend.client
        key = f"{getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex}"
        return self._backend.guard(
            lambda: client.submit(_call, self.job_id, fn, *chunk, key=key, pure=False), "submitting a task"
        )

    def result(self, handle: Any) -> np.ndarray[Any, Any]:
        backend = self._backend
        try:
            return handle.result()
        except KilledWorker as exc:
            raise ComputeError(
                f"the Dask cluster at {backend.scheduler} lost every worker that ran a task of this job "
                f"(Dask's allowed failures exhausted: {exc}); check the workers' memory and logs"
            ) from None
        except (concurrent.futures.CancelledError, OSError) as exc:
            raise ComputeError(
                f"lost the Dask scheduler at {backend.scheduler} mid-job ({type(exc).__name__}: {exc}); the "
                "job's results are incomplete: restart the scheduler and run the step again"
            ) from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        backend = self._backend
        # a cluster that is gone took its workers, and the job's state with them
        if backend.connected:
            with contextlib.suppress(Exception):
                backend.client.unregister_worker_plugin(self.plugin.name)

    def held_on_workers(self) -> dict[str, list[str]]:
        """Per worker address, the job ids whose state it holds (tests check the state is dropped)."""
        return dict(self._backend.client.run(_held))


class DaskBackend(ComputeBackend):
    """The party's Dask cluster at `scheduler` (``tls://host:8786``), reached with the TLS files in `tls_dir`
    (or an explicit `security`); connects on first use."""

    kind = "dask"
    distributed = True

    def __init__(
        self,
        scheduler: str,
        *,
        tls_dir: str | Path | None = None,
        security: Security | None = None,
        connect_timeout: float = 10.0,
        dashboard_link: str | None = None,
    ) -> None:
        if not isinstance(scheduler, str) or not scheduler.startswith("tls://"):
            raise ComputeError(
                f"the Dask scheduler address must be tls://host:port (the party's keys travel only over TLS "
                f"with its CA), got {scheduler!r}"
            )
        if security is None:
            if tls_dir is None:
                raise ComputeError(
                    "a Dask backend needs the party's TLS files: pass tls_dir (the node's tls/)"
                )
            security = party_security(tls_dir)
        self.scheduler = scheduler
        self.security = security
        self.connect_timeout = connect_timeout
        self.dashboard_link = dashboard_link
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._cores, self._cores_at = 1, -math.inf

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> Client:
        """The connected client (connects on first use; a refused or unreachable scheduler is a ComputeError)."""
        with self._lock:
            if self._client is None:
                try:
                    # our connection's message log kept short, as the clusters we start keep theirs
                    with dask.config.set({"distributed.admin.low-level-log-length": MESSAGE_LOG_LENGTH}):
                        self._client = Client(
                            self.scheduler,
                            security=self.security,
                            timeout=self.connect_timeout,
                            set_as_default=False,
                        )
                except (OSError, TimeoutError) as exc:
                    raise ComputeError(
                        f"could not connect to the Dask scheduler at {self.scheduler} within "
                        f"{self.connect_timeout:g} s ({exc}): is it running, and does its certificate come "
                        "from this party's CA? (a cluster of another CA is refused by TLS)"
                    ) from None
                if self.dashboard_link is None:
                    self.dashboard_link = self._client.dashboard_link
            return self._client

    def guard(self, call: Any, doing: str) -> Any:
        """Run a client call; a lost connection becomes a ComputeError naming what we were doing."""
        try:
            return call()
        except (OSError, TimeoutError, concurrent.futures.CancelledError) as exc:
            raise ComputeError(
                f"the Dask scheduler at {self.scheduler} did not answer while {doing} ({type(exc).__name__}: "
                f"{exc}): restart it, or remove `compute.scheduler` from node.json to run on this machine"
            ) from None

    @property
    def cores(self) -> int:
        """The cluster's task slots, asked of the scheduler at most once a second (every vector operation
        reads it to cut its chunks; a worker that joins or leaves is seen within the second)."""
        now = time.monotonic()
        if now - self._cores_at > CORES_TTL:
            self._cores = max(1, sum(self.guard(self.client.nthreads, "counting workers").values()))
            self._cores_at = now
        return self._cores

    def describe(self) -> str:
        return f"dask at {self.scheduler} ({self.cores} workers)"

    def job(
        self,
        setup: Setup | None = None,
        state: Mapping[str, Any] | None = None,
        *,
        workers: int | None = None,
    ) -> DaskJob:
        return DaskJob(self, setup, self.encode_state(state))

    def close(self) -> None:
        super().close()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
