"""The compute backends on a real Dask cluster (scheduler and worker processes, mutual TLS with the party's CA):
the local pool and Dask give the same bytes, a job's state leaves the workers with the job, a worker killed
mid-job is replaced and the job succeeds, a scheduler that dies is a clear error, another CA is refused."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedbench.compute import ComputeError, DaskBackend, LocalBackend, LocalCluster, start_cluster
from fedbench.net.certs import init_ca, issue_party

TESTS = Path(__file__).resolve().parent
"""On the workers' path: they import this module's task functions by name, as they import fedbench's."""


def _scale_setup(state: dict[str, Any]) -> int:
    return int(state["k"])


def _scale(k: int, values: np.ndarray) -> np.ndarray:
    return values * k


def _slow_scale(k: int, values: np.ndarray) -> np.ndarray:
    time.sleep(0.15)
    return values * k


def _party_tls(root: Path, party: str) -> Path:
    init_ca(root / "ca")
    issue_party(root / "ca", root / "tls", party)
    return root / "tls"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _party_tls(tmp_path_factory.mktemp("party"), "guest")


@pytest.fixture(scope="module")
def cluster(tls: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    running = start_cluster(
        tls, tmp_path_factory.mktemp("cluster"), workers=2, dashboard=False, python_path=[TESTS]
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dask(cluster: LocalCluster, tls: Path) -> Iterator[DaskBackend]:
    backend = DaskBackend(cluster.scheduler, tls_dir=tls)
    yield backend
    backend.close()


def test_map_gives_the_same_results_in_order_on_both_backends_and_drops_the_state(dask: DaskBackend):
    chunks = [(np.arange(i, i + 7, dtype=np.int64),) for i in range(12)]
    seen: list[tuple[int, int]] = []
    with LocalBackend(2).job(_scale_setup, {"k": 2**70 // 2**67}) as job:
        local = list(job.map(_scale, chunks))
    with dask.job(_scale_setup, {"k": 8}) as job:
        remote = list(job.map(_scale, chunks, inflight=3, progress=lambda d, s: seen.append((d, s))))
        assert all(job.job_id in held for held in job.held_on_workers().values())
    assert (
        [a.tolist() for a in remote] == [a.tolist() for a in local] == [(c[0] * 8).tolist() for c in chunks]
    )
    assert seen[-1] == (12, 12) and max(s - d for d, s in seen) <= 3
    assert all(held == [] for held in job.held_on_workers().values())


def test_a_worker_killed_mid_job_is_replaced_and_the_job_succeeds(dask: DaskBackend):
    pids = dask.client.run(os.getpid)
    chunks = [(np.full(4, i, dtype=np.int64),) for i in range(24)]
    out = []
    with dask.job(_scale_setup, {"k": 3}) as job:
        for i, result in enumerate(job.map(_slow_scale, chunks, inflight=6)):
            out.append(result.tolist())
            if i == 1:
                os.kill(next(iter(pids.values())), signal.SIGKILL)
    assert out == [[3 * i] * 4 for i in range(24)]
    dask.client.wait_for_workers(2, timeout=60)
    assert set(dask.client.run(os.getpid).values()) != set(pids.values())


@pytest.fixture(scope="module")
def other_party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, LocalCluster]]:
    """A cluster whose certificates come from another CA (its own party's)."""
    root = tmp_path_factory.mktemp("other")
    tls = _party_tls(root, "host")
    running = start_cluster(tls, root / "cluster", workers=1, dashboard=False, python_path=[TESTS])
    yield tls, running
    running.stop()


def test_a_cluster_with_a_certificate_of_another_ca_is_refused(
    tls: Path, other_party: tuple[Path, LocalCluster]
):
    _, foreign = other_party
    backend = DaskBackend(foreign.scheduler, tls_dir=tls, connect_timeout=3)
    with pytest.raises(ComputeError, match="does its certificate come from this party's CA"):
        backend.job(_scale_setup, {"k": 1})
    with pytest.raises(ComputeError, match="must be tls://"):
        DaskBackend(foreign.scheduler.replace("tls://", "tcp://"), tls_dir=tls)


def test_a_scheduler_that_dies_mid_job_is_a_clear_error(other_party: tuple[Path, LocalCluster]):
    tls, running = other_party
    backend = DaskBackend(running.scheduler, tls_dir=tls, connect_timeout=3)
    chunks = [(np.full(2, i, dtype=np.int64),) for i in range(40)]
    try:
        with pytest.raises(ComputeError, match="lost the Dask scheduler"):  # noqa: SIM117
            with backend.job(_scale_setup, {"k": 1}) as job:
                for i, _ in enumerate(job.map(_slow_scale, chunks, inflight=4)):
                    if i == 1:
                        os.kill(running.pids[0], signal.SIGKILL)
    finally:
        backend.close()
