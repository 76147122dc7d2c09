"""Warm workers: a node runs each step in a worker process it started (and warmed up) before the job came.

Which process ran a step is read from the step itself (the `whoami` test component writes its pid); which
processes a node holds is read from /proc (its children, and their fork servers). One task per process stays
the rule: a worker that ran a step has exited, and the next step gets another. A pool of 0 starts every worker
cold; stopping a sandbox leaves no worker behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATABASE_URL, PLUGINS, child_pids

import fedbench
from fedbench import sandbox
from fedbench.node.config import NodeConfig, NodeHome
from fedbench.node.fork_server import is_fork_server

PARTIES = ("guest", "host")
DEFAULT_POOL = NodeConfig.model_fields["warm_workers"].default
"""node.json's pool size, asked for explicitly: the suite's sandboxes keep none (tests/conftest.py)."""
pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads processes from /proc")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A demo sandbox whose nodes know the `whoami` component; pools at the default size."""
    root = tmp_path_factory.mktemp("warm")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = PLUGINS + (os.pathsep + old if old else "")
    try:
        sandbox.up(
            root, component_modules=["fb_worker_probe"], database_url=DATABASE_URL, warm_workers=DEFAULT_POOL
        )
        yield root
    finally:
        sandbox.down(root)
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _node_pid(root: Path, party: str) -> int:
    return int(NodeHome(root / party).pid_file.read_text().strip())


def _workers(root: Path, party: str, *, warm: bool = False) -> set[int]:
    """The node's worker processes: the children of the fork server the node forks them from (a child of the
    node whose command line runs `multiprocessing.forkserver`); `warm`: those with a fork server of their own
    started, i.e. done warming up."""
    found = set()
    for server in child_pids(_node_pid(root, party)):
        if not is_fork_server(server):
            continue
        for pid in child_pids(server):
            if _alive(pid) and (not warm or child_pids(pid)):
                found.add(pid)
    return found


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in child_pids(todo.pop()):
            found.add(child)
            todo.append(child)
    return found


def _until(check, what: str, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.1)


def _whoami(root: Path) -> tuple[str, dict[str, int]]:
    """Run `whoami` (forced, never reused); its job id and the pid of the worker of each party."""
    run = (
        fedbench.connect(home=root / "guest").project("demo").run("whoami", data="breast_cancer", force=True)
    )
    run.wait(timeout=300, show_progress=False)
    pids = {}
    for party in PARTIES:
        side = fedbench.connect(home=root / party).project("demo").run_by_id(run.job_id)
        pids[party] = int(side.output("metrics").value()["pid"])
    return run.job_id, pids


def _set_pool(root: Path, size: int) -> None:
    """Give every node a pool of `size` and restart it."""
    sandbox.down(root)
    for party in PARTIES:
        home = NodeHome(root / party)
        home.save_config(home.load_config().model_copy(update={"warm_workers": size}))
    sandbox.up(root)


def test_a_step_runs_in_a_worker_started_before_the_job_and_one_task_per_process(root: Path) -> None:
    for party in PARTIES:
        _until(lambda p=party: len(_workers(root, p, warm=True)) == 2, f"{party} keeps 2 warm workers")
    before = {party: _workers(root, party) for party in PARTIES}

    _, first = _whoami(root)

    for party in PARTIES:
        assert first[party] in before[party], f"{party}'s step ran in a worker started for it, not a warm one"
        _until(lambda p=first[party]: not _alive(p), "the worker exits after its one task")
    _until(lambda: all(len(_workers(root, p, warm=True)) == 2 for p in PARTIES), "the pools refill")
    _, second = _whoami(root)
    assert all(second[p] != first[p] for p in PARTIES)


def test_stopping_the_sandbox_leaves_no_worker_process_behind(root: Path) -> None:
    sandbox.up(root)
    for party in PARTIES:
        _until(lambda p=party: len(_workers(root, p, warm=True)) == 2, f"{party} keeps 2 warm workers")
    spawned = set().union(*(_descendants(_node_pid(root, party)) for party in PARTIES))
    assert len(spawned) >= 4  # two workers per node, their fork servers, multiprocessing's resource tracker

    sandbox.down(root)

    _until(lambda: not [pid for pid in spawned if _alive(pid)], "every worker process has exited", 30.0)


def test_a_pool_of_zero_starts_each_worker_with_its_step(root: Path) -> None:
    _set_pool(root, 0)
    assert not _workers(root, "guest") and not _workers(root, "host")

    job_id, pids = _whoami(root)

    assert job_id and all(pid > 0 for pid in pids.values())
    assert not _workers(root, "guest") and not _workers(root, "host")
