"""End-to-end latency of small jobs on a sandbox: warm workers (the nodes' pools) against cold starts (pool 0).

In one run, on one fresh sandbox (guest and host nodes on this machine), each job is timed from
`project.run(...)` to `run.wait()` returning, as an analyst's notebook sees it: a one-step `row_count` on 569
rows (the demo's breast_cancer), a PSI of 10,000 x 10,000 IDs and a PSI of 100,000 x 100,000 IDs (50% overlap,
release "both", `force=True` so nothing is reused). First with the nodes' default pool of warm workers, then
with `warm_workers: 0` in both node.json (nodes restarted): every step's worker is forked with its step.
Each timed job starts once the nodes' processes are idle, with a pool once both pools are full again (a user's
next click rarely comes sooner than a refill, itself one process warming up at a time). In the same run, the
group-operation floor of the 100k PSI: the same X25519 operations (per ID and side one hash-and-mask and one
mask) on as many processes as a party's PSI uses, no network, no bookkeeping (`psi.py`'s floor).
Goals (issue #16): row_count <= 0.5 s, PSI 10k <= 1.5 s, PSI 100k within 1.3x the floor.
Run: `python benchmarks/latency.py` (`--quiet-load 1.0` first waits, up to 10 minutes, for a quiet machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record  # noqa: E402
from psi import run_floor  # noqa: E402

import fedbench  # noqa: E402
from fedbench import sandbox  # noqa: E402
from fedbench.client.projects import Project  # noqa: E402
from fedbench.node.config import NodeHome  # noqa: E402
from fedbench.node.fork_server import child_pids, is_fork_server  # noqa: E402

PARTIES = ("guest", "host")
SIZES = {"ids10k": 10_000, "ids100k": 100_000}


def warm_workers(root: Path, party: str) -> int:
    """How many of the node's worker processes are warm: children of the node's fork server (the child of the
    node running `multiprocessing.forkserver`) whose own fork server, started last, runs."""
    pid = int(NodeHome(root / party).pid_file.read_text().strip())
    count = 0
    for server in child_pids(pid):
        if is_fork_server(server):
            count += sum(bool(child_pids(worker)) for worker in child_pids(server))
    return count


def tree_cpu(root: Path) -> float:
    """CPU seconds used so far by every node of the sandbox and every process below it (Linux /proc)."""
    ticks = 0
    todo = [int(NodeHome(root / party).pid_file.read_text().strip()) for party in PARTIES]
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
        todo += child_pids(pid)
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for_pools(root: Path, size: int, timeout: float = 120.0) -> float:
    """Wait until every node holds `size` warm workers and the nodes' processes have gone quiet (a warm-up
    or the end of the previous job no longer uses the CPU); the seconds waited."""
    began = time.perf_counter()
    while True:
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"the nodes did not hold {size} warm workers and settle within {timeout:g} s")
        if size and not all(warm_workers(root, party) >= size for party in PARTIES):
            time.sleep(0.05)
            continue
        used = tree_cpu(root)
        time.sleep(0.3)
        if tree_cpu(root) - used < 0.05:
            return time.perf_counter() - began


def setup(root: Path) -> Project:
    """The sandbox with demo data, and a project `latency` over breast_cancer and the two ID tables."""
    sandbox.up(root)
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    rng = np.random.default_rng(0)
    for name, n in SIZES.items():
        ids = np.array([f"user-{i:09d}@example.com" for i in range(n + n // 2)])
        guest.datasets.upload(
            pd.DataFrame({"id": ids[:n], "y": rng.integers(0, 2, n)}),
            name=name,
            id_column="id",
            label_column="y",
        )
        host.datasets.upload(
            pd.DataFrame({"id": ids[n // 2 :], "x": rng.normal(size=n)}), name=name, id_column="id"
        )
    names = ["breast_cancer", *SIZES]
    guest.projects.propose(
        "latency",
        partners="host",
        datasets=names,
        jobs_per_day=100_000,
        psi_runs=100_000,
        min_intersection=1,
        release="both",
    )
    host.projects.accept("latency", datasets=names)
    return guest.project("latency")


def timed(project: Project, component: str, data: str) -> float:
    """Seconds from submitting a one-step job to `wait()` returning (it must succeed)."""
    began = time.perf_counter()
    project.run(component, data=data, force=True).wait(timeout=1800, show_progress=False)
    return time.perf_counter() - began


def restart_with_pool(root: Path, size: int) -> None:
    """Set `warm_workers` in every node.json and restart the nodes."""
    sandbox.down(root)
    for party in PARTIES:
        home = NodeHome(root / party)
        home.save_config(home.load_config().model_copy(update={"warm_workers": size}))
    sandbox.up(root)


def measure(
    project: Project, root: Path, pool: int, repeats: int, big: int, floor: Callable[[], None]
) -> dict[str, list[float]]:
    """Every job of the table `repeats` times (the 100k PSI `big` times, a floor run after each)."""
    jobs = [("row_count", "breast_cancer", repeats), ("psi", "ids10k", repeats), ("psi", "ids100k", big)]
    seconds: dict[str, list[float]] = {}
    timed(project, "row_count", "breast_cancer")  # the first job of a node loads its caches: not counted
    for component, data, count in jobs:
        for _ in range(count):
            wait_for_pools(root, pool)
            seconds.setdefault(data, []).append(timed(project, component, data))
            if data == "ids100k":
                floor()
        print(f"pool {pool}: {data}: {[round(s, 2) for s in seconds[data]]}", flush=True)
    return seconds


def wait_quiet(limit: float | None, patience: float = 600.0) -> None:
    """Wait (up to `patience` s) for the 1-minute load average to fall below `limit`."""
    give_up = time.monotonic() + patience
    while limit is not None and os.getloadavg()[0] > limit and time.monotonic() < give_up:
        time.sleep(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of row_count and the 10k PSI")
    parser.add_argument("--big-repeats", type=int, default=3, help="runs of the 100k PSI and of its floor")
    parser.add_argument("--quiet-load", type=float, default=None, help="first wait for this load average")
    parser.add_argument("--no-record", action="store_true", help="print the table, do not append it")
    args = parser.parse_args()
    wait_quiet(args.quiet_load)
    workers = os.cpu_count() or 1
    floors: list[float] = []
    loads = [os.getloadavg()[0]]
    root = Path(tempfile.mkdtemp(prefix="fedbench-latency-"))
    began = time.perf_counter()
    try:
        project = setup(root)
        pool = NodeHome(root / "guest").load_config().warm_workers
        warm = measure(
            project,
            root,
            pool,
            args.repeats,
            args.big_repeats,
            lambda: floors.append(run_floor(100_000, workers)["wall"]),
        )
        loads.append(os.getloadavg()[0])
        restart_with_pool(root, 0)
        cold = measure(project, root, 0, args.repeats, args.big_repeats, lambda: None)
        loads.append(os.getloadavg()[0])
    finally:
        sandbox.down(root)
        shutil.rmtree(root, ignore_errors=True)
    floor = median(floors)
    goals = {"breast_cancer": 0.5, "ids10k": 1.5, "ids100k": 1.3 * floor}
    labels = {
        "breast_cancer": "one-step row_count, 569 rows",
        "ids10k": "PSI 10,000 x 10,000 IDs",
        "ids100k": f"PSI 100,000 x 100,000 IDs (floor {floor:.2f} s)",
    }
    rows = []
    for data, label in labels.items():
        ours, before = median(warm[data]), median(cold[data])
        goal = "<= 1.3x floor" if data == "ids100k" else f"<= {goals[data]:g} s"
        vs_floor = data == "ids100k"
        rows.append(
            [
                label,
                goal,
                f"{ours:.2f}" + (f" ({ours / floor:.2f}x)" if vs_floor else ""),
                f"{before:.2f}" + (f" ({before / floor:.2f}x)" if vs_floor else ""),
                f"{before / ours:.1f}x",
                "met" if ours <= goals[data] else "missed",
            ]
        )
    headers = ["job, end to end", "goal", f"warm, pool {pool} (s)", "cold, pool 0 (s)", "cold / warm", "goal"]
    notes = (
        f"Medians of {args.repeats} runs ({args.big_repeats} for the 100k PSI and its floor), from `project.run` to "
        "`wait()` returning, guest and host nodes on this machine; the first job after each (re)start is not "
        f"counted. Warm: the node's default pool of {pool}, each job started once both pools were full again. "
        "Cold: `warm_workers: 0`, every step's worker forked with its step from the node's fork server (its "
        "imports done once). Floor: the 100k PSI's group "
        f"operations on {workers} processes (per ID and side one hash-and-mask and one mask), no network, "
        f"measured after each warm 100k PSI. Whole run {time.perf_counter() - began:.0f} s; 1-minute load "
        f"average at the start, after the warm runs, at the end: {', '.join(f'{x:.1f}' for x in loads)} "
        f"(above {workers}: other processes shared the {workers} cores)."
    )
    table = markdown_table(headers, rows)
    if args.no_record:
        print(table + "\n\n" + notes)
        return
    record("latency.py: end-to-end latency of small jobs, warm workers vs cold starts", table, notes)


if __name__ == "__main__":
    main()
