"""A PSI cancelled mid-run on two real nodes: the run ends cancelled and nothing of it stays behind on a node.

The host's worker (and its masking processes) is frozen with SIGSTOP once the guest's masking processes run,
so the guest's side waits for the host's masked IDs with its own processes started: where a cancel used to
find it blocked in one 1800 s receive, to be terminated by its node and leave those processes orphaned.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import DATABASE_URL, job_states

import fedbench
from fedbench import sandbox
from fedbench.client.control import NodeClient
from fedbench.node.config import NodeHome
from fedbench.node.fork_server import is_fork_server

_names = itertools.count()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("psi_cancel")
    sandbox.up(root, demo_data=False, database_url=DATABASE_URL)
    yield root
    sandbox.down(root)


def _project(fed: Path, guest_rows: int, host_rows: int) -> tuple[Any, dict[str, str]]:
    """A fresh project of guest and host whose datasets share the guest's IDs."""
    n = next(_names)
    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    ids = [f"id{i:06d}" for i in range(max(guest_rows, host_rows))]
    guest.datasets.upload(
        pd.DataFrame({"id": ids[:guest_rows], "y": [i % 2 for i in range(guest_rows)]}),
        name=f"g{n}",
        id_column="id",
    )
    host.datasets.upload(
        pd.DataFrame({"id": ids[:host_rows], "x": [float(i) for i in range(host_rows)]}),
        name=f"h{n}",
        id_column="id",
    )
    guest.projects.propose(f"cancel{n}", partners="host", datasets=[f"g{n}"], psi_runs=10, release="both")
    host.projects.accept(f"cancel{n}", datasets=[f"h{n}"], max_psi_rows=max(guest_rows, host_rows))
    return guest.project(f"cancel{n}"), {"guest": f"g{n}", "host": f"h{n}"}


def _processes() -> dict[int, tuple[int, bytes]]:
    """Every live process: its parent's pid and command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            found[int(entry.name)] = (int(ppid), cmdline)
    return found


def _worker_trees(node_pid: int) -> list[set[int]]:
    """Each of a node's worker processes with every process it started (its fork server, masking processes).

    Workers are the children of the node's fork server (the node's child running `multiprocessing.forkserver`).
    Idle warm workers are among them (a worker and its fork server); the one running a PSI has more.
    """
    processes = _processes()
    servers = {pid for pid, (parent, _) in processes.items() if parent == node_pid and is_fork_server(pid)}
    trees = []
    for worker, (parent, _) in processes.items():
        if parent not in servers:
            continue
        tree = {worker}
        while more := {pid for pid, (up, _) in processes.items() if up in tree} - tree:
            tree |= more
        trees.append(tree)
    return trees


def _busy(node_pid: int) -> list[set[int]]:
    """The trees of the node's workers that run masking processes (more than a worker and its fork server)."""
    return [tree for tree in _worker_trees(node_pid) if len(tree) > 2]


def _busy_tree(node_pid: int) -> set[int]:
    """The processes of the node's worker that runs the PSI on worker processes (more than a fork server)."""
    busy = _busy(node_pid)
    procs = _processes()
    seen = [
        (pid, procs.get(pid, (0, b""))[0], procs.get(pid, (0, b""))[1][:90])
        for pid in set().union(*_worker_trees(node_pid))
    ]
    assert len(busy) == 1, (
        f"expected one worker running a PSI with its masking processes, found {busy}: {seen}"
    )
    return busy[0]


def _node_pid(fed: Path, party: str) -> int:
    return int(NodeHome(fed / party).pid_file.read_text().strip())


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _usage(fed: Path, party: str) -> dict:
    client = NodeClient.for_home(NodeHome(fed / party))
    try:
        return client.call("mailbox.status")
    finally:
        client.close()


def _wait_until(condition, what: str, timeout: float = 60.0, details=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} {details()}"
        time.sleep(0.05)


def test_cancelled_psi_ends_cancelled_and_frees_both_nodes(fed: Path) -> None:
    project, data = _project(fed, 12_000, 60_000)
    guest_node, host_node = _node_pid(fed, "guest"), _node_pid(fed, "host")
    run = project.run("psi", data=data, id_column="id", workers=2)
    frozen: set[int] = set()
    host_psi: set[int] = set()
    guest_processes: set[int] = set()
    try:
        # The host masks five times the guest's IDs: freezing it once the guest's masking processes run
        # catches it before it sent its masked IDs, so the guest waits for them with its processes started.
        _wait_until(
            lambda: _busy(guest_node), "the guest's PSI never started its masking processes", timeout=120
        )
        host_psi = set().union(*_busy(host_node))
        frozen = set().union(*_worker_trees(host_node))
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        _wait_until(
            lambda: _usage(fed, "guest")["readers"].get(run.job_id, 0) >= 1,
            "the guest's PSI never waited for the host's masked IDs",
            timeout=120,
        )
        guest_processes = _busy_tree(guest_node)
        run.cancel()
        for party in ("guest", "host"):
            state, steps = job_states(fed, party, run.job_id)
            assert (state, steps) == ("cancelled", {"psi": "cancelled"}), party
        _wait_until(
            lambda: not any(_alive(pid) for pid in guest_processes),
            "the guest's PSI processes outlived the cancelled run",
            details=lambda: {pid: _processes().get(pid) for pid in guest_processes if _alive(pid)},
        )
        for party in ("guest", "host"):
            _wait_until(
                lambda party=party: run.job_id not in _usage(fed, party)["readers"],
                f"a reader of the cancelled job still waits in {party}'s mailbox",
            )
            assert run.job_id not in _usage(fed, party)["messages"], party
    finally:
        _kill_ours(guest_processes | host_psi, fed)
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _kill_ours(pids: set[int], fed: Path) -> None:
    """Stop the processes of this test's sandbox still alive (leftovers of a failure)."""
    for pid, (_, cmdline) in _processes().items():
        if pid in pids and str(fed).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
