"""The compute backends on a real Dask cluster (scheduler and worker processes, mutual TLS with the party's CA):
the local pool and Dask give the same bytes, a job's state leaves the workers with the job, a worker killed
mid-job is replaced and the job succeeds, a scheduler that dies is a clear error, another CA is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import small_two_party_project
from dask.utils import parse_timedelta

import fedbench
from fedbench import compute, sandbox, sandbox_dask
from fedbench.components import simulate
from fedbench.compute import ComputeError, DaskBackend, LocalBackend, LocalCluster, start_cluster
from fedbench.compute.cluster import MESSAGE_LOG_LENGTH, PROFILE_INTERVAL, TICK_INTERVAL
from fedbench.compute.config import SCHEDULER_ENV, ComputeConfig, backend_for
from fedbench.crypto.paillier import generate_keypair, parallel
from fedbench.datasets import make_credit, vertical_split
from fedbench.net.certs import init_ca, issue_party
from fedbench.net.transport import InMemoryFederation
from fedbench.node.config import NodeHome
from fedbench.psi import PsiRefused, group, run_psi

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

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


def _psi_pair(guest: list[str], host: list[str], messages: list[str]) -> dict[str, Any]:
    federation = InMemoryFederation(["guest", "host"])
    out: dict[str, Any] = {}

    def side(party: str, role: str, peer: str, ids: list[str]) -> None:
        out[party] = run_psi(
            federation.transport(party),
            role=role,
            peer=peer,
            ids=ids,
            domain_key=b"k",
            key_prefix="job/psi",
            release="initiator",
            timeout=60,
            progress=lambda _f, text: messages.append(text),
        )

    threads = [
        threading.Thread(target=side, args=("guest", "initiator", "host", guest)),
        threading.Thread(target=side, args=("host", "partner", "guest", host)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return out


def test_psi_masks_bit_identically_and_finds_the_same_rows_on_the_local_pool_and_dask(dask: DaskBackend):
    ids = [f"cust-{i}-é" for i in range(3000)]
    secret = group.new_secret()
    with group.MaskingPool(secret, b"k", 2) as local, group.MaskingPool(secret, b"k", backend=dask) as remote:
        hashed = local.hash_mask(ids).result()
        assert remote.hash_mask(ids).result() == hashed
        assert remote.mask(hashed[: 32 * 500]).result() == local.mask(hashed[: 32 * 500]).result()
        with pytest.raises(PsiRefused, match="invalid group element"):
            remote.mask(bytes(32)).result()
    guest, host = ids[:2000], ids[1200:]
    on_local = _psi_pair(guest, host, [])
    messages: list[str] = []
    previous = compute.use(dask)
    try:
        on_dask = _psi_pair(guest, host, messages)
    finally:
        compute.use(previous)
    assert on_dask["guest"].indices.tolist() == on_local["guest"].indices.tolist() == list(range(1200, 2000))
    assert any(f"on dask at {dask.scheduler}" in text for text in messages)


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the Paillier engine's tasks sent to a cluster, in order; small vectors go too."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_COST", 200)
    names: list[str] = []
    real = parallel._on_cluster
    monkeypatch.setattr(
        parallel, "_on_cluster", lambda c, s, task, ch: names.append(task.__name__) or real(c, s, task, ch)
    )
    return names


def test_an_lr_epoch_on_paillier_gives_the_same_results_on_the_local_pool_and_dask(
    dask: DaskBackend, ran: list[str]
):
    """Encrypt the residuals, X^T [[r]], decrypt the gradient: the same ciphertexts where the operation is
    deterministic, the same plaintexts where it is randomised, and every operation ran on the cluster."""
    public, private = generate_keypair(1024)
    rng = np.random.default_rng(7)
    residuals, features = rng.normal(size=48), rng.normal(size=(48, 3))
    encrypted = public.encrypt(residuals, workers=2)
    gradient = encrypted.dot(features, workers=2)
    decrypted = private.decrypt(gradient, workers=2)
    previous = compute.use(dask)
    try:
        assert [int(c) for c in encrypted.dot(features)._ct] == [int(c) for c in gradient._ct]
        assert private.decrypt(gradient).tolist() == decrypted.tolist()
        assert private.decrypt(public.encrypt(residuals)).tolist() == private.decrypt(encrypted).tolist()
        assert private.decrypt(private.encrypt(residuals)).tolist() == private.decrypt(encrypted).tolist()
        held = dask.client.run(_held_jobs)
        assert all(len(jobs) >= 2 for jobs in held.values())
    finally:
        compute.use(previous)
        dask.close()
    assert {"_cluster_dot", "_cluster_decrypt", "_cluster_encrypt"} <= set(ran)
    assert all(jobs == [] for jobs in dask.client.run(_held_jobs).values())


def test_secureboost_histogram_work_runs_on_the_cluster_and_gives_the_local_pools_ciphertexts(
    dask: DaskBackend, ran: list[str]
):
    """The host's histogram work (bucket products by rows, their Horner packing) and signed powers give the
    very ciphertexts of this machine's pool on the cluster, and a simulated SecureBoost grows the same trees
    with every party's Paillier work on the cluster."""
    public, _ = generate_keypair(1024)
    rng = np.random.default_rng(11)
    cts = public.encrypt(rng.normal(size=90), workers=1)._ct
    codes = rng.integers(0, 9, size=(90, 5)).astype(np.uint8)
    exponents = [int(k) for k in rng.integers(-(1 << 40), 1 << 40, size=90)]

    def work() -> tuple[list[list[int]], list[int], list[int]]:
        products = parallel.bucket_products(cts, codes, 9, public.nsq, workers=2)
        packed = parallel.pack_products(
            [c for column in products for c in column], 48, 5, public.nsq, workers=2
        )
        powered = parallel.powers_of(cts, exponents, public.nsq, workers=2)
        return (
            [[int(c) for c in column] for column in products],
            [int(c) for c in packed],
            [int(c) for c in powered],
        )

    guest, host = vertical_split(make_credit(160, seed=3), overlap=1.0)
    host = host.set_index("id").loc[guest["id"]].reset_index()
    params = {"trees": 2, "max_depth": 2, "bins": 8, "key_bits": 1024}
    local, local_model = work(), simulate("hetero_secureboost", {"guest": guest, "host": host}, **params)
    assert ran == []
    previous = compute.use(dask)
    try:
        assert work() == local
        assert {"_cluster_buckets", "_cluster_pack", "_cluster_powers"} <= set(ran)
        ran.clear()
        model = simulate("hetero_secureboost", {"guest": guest, "host": host}, **params)
    finally:
        compute.use(previous)
    assert {"_cluster_obfuscators", "_cluster_buckets", "_cluster_pack", "_cluster_decrypt"} <= set(ran)
    assert model["guest"]["model"]["trees"] == local_model["guest"]["model"]["trees"]
    assert model["host"]["model"]["splits"] == local_model["host"]["model"]["splits"]


def _settings(dask_worker: Any = None, dask_scheduler: Any = None) -> tuple[int, float, float]:
    """A Dask process's message-log length, its profiler's interval and its running event-loop check's (s)."""
    import dask

    server = dask_worker or dask_scheduler
    return (
        int(dask.config.get("distributed.admin.low-level-log-length")),
        parse_timedelta(dask.config.get("distributed.worker.profile.interval")),
        server.periodic_callbacks["tick"].callback_time / 1000,
    )


def test_the_cluster_and_our_client_keep_a_short_message_log_and_quiet_monitors(dask: DaskBackend):
    """Dask keeps each connection's recent messages under 1 MB (1,000 by default) and ours carry 512 KiB
    chunks: the scheduler, every worker and our client keep 16, or each connection holds half a gigabyte.
    The profiler and the event-loop check wake 10 and 20 times less often than by default (they take the
    GIL and the cores from our tasks)."""
    client = dask.client
    expected = (MESSAGE_LOG_LENGTH, parse_timedelta(PROFILE_INTERVAL), parse_timedelta(TICK_INTERVAL))
    assert expected == (16, 0.1, 0.5)
    assert client.run_on_scheduler(_settings) == expected
    assert set(client.run(_settings).values()) == {expected}
    assert client.scheduler_comm.recent_message_log.maxlen == MESSAGE_LOG_LENGTH


def _held_jobs() -> list[str]:
    from fedbench.compute import job_state

    return job_state.held()


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


def test_sandbox_up_dask_runs_the_guests_psi_on_its_own_cluster_and_down_stops_it(tmp_path: Path):
    root = tmp_path / "sb"
    sandbox.up(root, demo_data=False, dask=True)
    try:
        nodes = {node.party: node for node in sandbox.status(root)}
        guest = nodes["guest"]
        assert guest.dask_scheduler and guest.dask_scheduler.startswith("tls://")
        assert guest.dask_dashboard and guest.dask_dashboard.startswith("http://127.0.0.1:")
        assert nodes["host"].dask_scheduler is None
        shown = subprocess.run(
            [sys.executable, "-m", "fedbench", "sandbox", "status", "--home", str(root)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"dashboard {guest.dask_dashboard}" in shown
        with urllib.request.urlopen(guest.dask_dashboard, timeout=30) as page:
            body = page.read()
        assert b"Bokeh" in body and b"needs bokeh" not in body, (
            "the dashboard itself, not a page asking for bokeh"
        )
        small_two_party_project(root, "dask_psi")
        run = fedbench.connect(home=root / "guest").project("dask_psi").run("psi", data="t")
        run.wait(show_progress=False)
        messages = [event.message or "" for event in run.events() if event.type == "progress"]
        assert any(f"on dask at {guest.dask_scheduler}" in text for text in messages), messages
        pids = sandbox_dask.info(root, "guest")["pids"]
    finally:
        sandbox.down(root)
    assert NodeHome(root / "guest").load_config().compute is None
    assert not [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_node_start_dask_scheduler_must_be_tls_and_reaches_the_steps_backend(
    tls: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedbench",
            "node",
            "start",
            "--home",
            str(tmp_path),
            "--dask-scheduler",
            "tcp://h:1",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "--dask-scheduler must be tls://host:port" in refused.stderr
    assert backend_for(ComputeConfig(), tls) is None, "no scheduler: the local pool"
    monkeypatch.setenv(SCHEDULER_ENV, "tls://10.0.0.5:8786")
    backend = backend_for(ComputeConfig(scheduler="tls://elsewhere:1"), tls)
    assert isinstance(backend, DaskBackend) and backend.scheduler == "tls://10.0.0.5:8786"
    assert not backend.connected, "a step connects only when it has work for the cluster"
    with pytest.raises(ComputeError, match="no party.key in"):
        backend_for(None, tmp_path / "no-tls")
