"""CPU seconds of each test module: pytest and every process it starts, daemons and orphans included.

Each module runs in a pytest of its own (`-p no:xdist`) under this process, which makes itself the child
subreaper (Linux `PR_SET_CHILD_SUBREAPER`): a process whose parent exits (a node's fork server, Chromium's
helpers, a Jupyter kernel, anything started with a new session) is re-parented here instead of to init, and is
reaped here, so its user and system seconds (and those of the children it reaped) land in this process's
`RUSAGE_CHILDREN`. Processes still alive a while after pytest has exited are reported, and their own seconds
(from /proc) are added before they are stopped. CPU seconds do not grow with the machine's load; wall
seconds do.

Run: `nice -n 10 python benchmarks/suite_cpu.py [tests/test_x.py ...] [--json out.json] [--record]`
(no module given: every tests/test_*.py). `--baseline REF` (a git commit) also runs each module as it is at REF,
right before this tree's run of it, from a copy of REF's files (`git archive`) that its pytest and every process
it starts import the package from (PYTHONPATH): the table then gives this tree's CPU as a ratio to REF's, both
measured under the same load.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
_PR_SET_CHILD_SUBREAPER = 36
_TICK = os.sysconf("SC_CLK_TCK")
LOGS = Path(tempfile.gettempdir()) / "suite_cpu"
"""Each module's pytest output."""
_OUTCOME = re.compile(r"\d+ (passed|failed|skipped|error)")


@dataclass
class ModuleCpu:
    """One module's run: its pytest outcome line, wall and CPU seconds, and what outlived it."""

    module: str
    wall_s: float
    cpu_s: float
    user_s: float
    system_s: float
    exit_code: int
    summary: str
    leftovers: int
    leftover_cpu_s: float


def become_subreaper() -> None:
    """Adopt this process's orphaned descendants (Linux only): their CPU time is then counted here."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _own_cpu(pid: int) -> float:
    """User + system seconds of a live process and of the children it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / _TICK


def _reap(block: bool) -> list[tuple[int, int]]:
    """Reap children that have exited: (pid, status) of each."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))
        block = False


def baseline_tree(ref: str, into: Path) -> Path:
    """The files of commit `ref` of this repository, written under `into` (nothing of this tree's)."""
    tree = into / f"baseline-{ref}"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


@dataclass
class Counted:
    """One command's run: its exit code, wall seconds, and the CPU seconds of it and every process it started."""

    exit_code: int
    wall_s: float
    user_s: float
    system_s: float
    leftovers: int
    leftover_cpu_s: float


def run_counted(argv: list[str], log: Path, root: Path = ROOT, grace: float = 10.0) -> Counted:
    """Run `argv` in `root` with the package of `root` (PYTHONPATH), output to `log`, and count the CPU seconds of
    every process it starts; processes still alive `grace` seconds after it exited are stopped and counted.

    Call `become_subreaper()` first, so that orphaned descendants are reaped (and counted) here.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    log.parent.mkdir(exist_ok=True)
    start = time.monotonic()
    with open(log, "wb") as out:
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            os.chdir(root)
            os.environ["PYTHONPATH"] = str(root)
            os.execv(argv[0], argv)
    exit_code = -1
    while exit_code < 0:
        for child, status in _reap(block=True):
            if child == pid:
                exit_code = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    give_up = time.monotonic() + grace
    while _children_of(os.getpid()) and time.monotonic() < give_up:
        _reap(block=False)
        time.sleep(0.2)
    leftovers, leftover_cpu = 0, 0.0
    while kids := _children_of(os.getpid()):
        # stopped here, then reaped: their seconds (and their children's) join RUSAGE_CHILDREN
        for child in kids:
            leftovers += 1
            leftover_cpu += _own_cpu(child)
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                continue
        time.sleep(0.2)
        _reap(block=False)
    _reap(block=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Counted(
        exit_code=exit_code,
        wall_s=wall,
        user_s=after.ru_utime - before.ru_utime,
        system_s=after.ru_stime - before.ru_stime,
        leftovers=leftovers,
        leftover_cpu_s=leftover_cpu,
    )


def run_module(module: str, extra: list[str], grace: float, root: Path = ROOT) -> ModuleCpu:
    """Run one module's tests (as they are under `root`, with the package of `root`) in a pytest of their own
    and count every process's CPU seconds."""
    log = LOGS / (("" if root == ROOT else "baseline-") + Path(module).stem + ".log")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", module, *extra]
    run = run_counted(argv, log, root, grace)
    lines = [line for line in log.read_text(errors="replace").splitlines() if _OUTCOME.search(line)]
    return ModuleCpu(
        module=Path(module).name,
        wall_s=round(run.wall_s, 1),
        cpu_s=round(run.user_s + run.system_s, 1),
        user_s=round(run.user_s, 1),
        system_s=round(run.system_s, 1),
        exit_code=run.exit_code,
        summary=lines[-1] if lines else "",
        leftovers=run.leftovers,
        leftover_cpu_s=round(run.leftover_cpu_s, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="test modules (default: every tests/test_*.py)")
    parser.add_argument("--json", type=Path, help="append each module's figures to this JSON-lines file")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    parser.add_argument(
        "--grace", type=float, default=20.0, help="seconds left to processes outliving pytest"
    )
    parser.add_argument("--pytest-args", default="", help="more pytest arguments, space-separated")
    parser.add_argument("--baseline", metavar="REF", help="also run each module as it is at this git commit")
    args = parser.parse_args()
    become_subreaper()
    modules = args.modules or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py"))
    results = []
    baselines: dict[str, ModuleCpu] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="suite-cpu-") as scratch:
        old = baseline_tree(args.baseline, Path(scratch)) if args.baseline else None
        for module in modules:
            runs = [("baseline", old), ("this tree", ROOT)] if old else [("this tree", ROOT)]
            for which, root in runs:
                result = run_module(module, args.pytest_args.split(), args.grace, root)
                print(json.dumps({"tree": which, **asdict(result)}), flush=True)
                if args.json:
                    with args.json.open("a") as handle:
                        handle.write(json.dumps({"tree": which, **asdict(result)}) + "\n")
                if root == ROOT:
                    results.append(result)
                else:
                    baselines[result.module] = result
    if args.baseline:
        record_comparison(args, results, baselines, load_before)
        return
    results.sort(key=lambda r: r.cpu_s, reverse=True)
    table = markdown_table(
        [
            "module",
            "CPU s (all processes)",
            "wall s",
            "outcome",
            "outlived pytest: processes (their CPU s, counted)",
        ],
        [[r.module, r.cpu_s, r.wall_s, r.summary, f"{r.leftovers} ({r.leftover_cpu_s})"] for r in results],
    )
    total = sum(r.cpu_s for r in results)
    notes = (
        f"{len(results)} modules, {total:.0f} CPU s in all; each module in a pytest of its own (`-p no:xdist`), "
        f"its orphans adopted by a child subreaper; load average (1 min) {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after."
    )
    _publish(args.record, "Test suite: CPU seconds per module", table, notes)


def _publish(to_results: bool, title: str, table: str, notes: str) -> None:
    """Append the table to RESULTS.md (`--record`), or only print it."""
    if to_results:
        record(title, table, notes)
    else:
        print(table + "\n\n" + notes)


def record_comparison(
    args: argparse.Namespace, results: list[ModuleCpu], baselines: dict[str, ModuleCpu], load_before: float
) -> None:
    """The table of each module's CPU seconds here against the baseline commit's, printed or recorded."""
    results.sort(key=lambda r: baselines[r.module].cpu_s - r.cpu_s, reverse=True)
    table = markdown_table(
        [
            "module",
            f"CPU s at {args.baseline}",
            "CPU s here",
            "ratio",
            "wall s (baseline, here)",
            "outcome here",
        ],
        [
            [
                r.module,
                baselines[r.module].cpu_s,
                r.cpu_s,
                f"{r.cpu_s / baselines[r.module].cpu_s:.2f}" if baselines[r.module].cpu_s else "-",
                f"{baselines[r.module].wall_s}, {r.wall_s}",
                r.summary,
            ]
            for r in results
        ],
    )
    old, new = sum(b.cpu_s for b in baselines.values()), sum(r.cpu_s for r in results)
    notes = (
        f"{len(results)} modules: {old:.0f} CPU s at {args.baseline}, {new:.0f} here ({new / old:.2f}x); each "
        f"module run at the baseline commit, then here, each in a pytest of its own (`-p no:xdist`) with its "
        f"orphans adopted by a child subreaper; load average (1 min) {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after."
    )
    _publish(args.record, "Test suite: CPU seconds per module, against a baseline commit", table, notes)


if __name__ == "__main__":
    main()
