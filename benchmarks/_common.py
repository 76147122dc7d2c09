"""Shared helpers of the benchmark scripts: medians, a markdown table, and appending it to RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def median(values: Sequence[float]) -> float:
    """The median (this machine is noisy; means mislead)."""
    return float(statistics.median(values))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def record(title: str, table: str, notes: str = "") -> None:
    """Print the table and append it, dated and with the machine's description, to RESULTS.md."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    section = f"\n## {title}\n\n{stamp}; {machine}\n\n{table}\n" + (f"\n{notes}\n" if notes else "")
    print(section)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach section is appended by a script under benchmarks/.\n")
    with RESULTS.open("a") as handle:
        handle.write(section)


class Stopwatch:
    """Wall and CPU seconds (of this process) per named stage."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start, start_cpu = time.perf_counter(), time.process_time()
        yield
        self.wall[stage] = self.wall.get(stage, 0.0) + time.perf_counter() - start
        self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - start_cpu


TEST_PLUGINS = Path(__file__).resolve().parent.parent / "tests" / "plugins"
"""Where the test-only `slow` component lives (the long job that carries a benchmark's messages)."""


class Channel:
    """A long job of the sandbox's demo project, running on guest and host, recorded in `<root>/channel.json`.

    A node takes a message only into a job it runs, with that job's project token: benchmarks that drive the
    transport themselves send under this job's keys with its project's credentials.
    """

    def __init__(self, root: Path) -> None:
        import json

        facts = json.loads((root / "channel.json").read_text())
        self.root, self.job_id, self.project_id = root, str(facts["job_id"]), str(facts["project_id"])

    def key(self, tag: str) -> str:
        """A message key of the job: `<job>/bench/<tag>` (tag: letters, digits, _.:-)."""
        return f"{self.job_id}/bench/{tag}"

    def project(self, party: str) -> tuple[str, str]:
        """The project id and token as `party`'s node holds them (what its pushes carry)."""
        token = (self.root / party / "secrets" / f"project-{self.project_id}.token").read_text().strip()
        return self.project_id, token


def start_channel(root: Path) -> Channel:
    """Start a sandbox at `root` (demo data, test components) with one long `slow` job running on both sides."""
    import json

    import fedbench
    from fedbench import sandbox

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(TEST_PLUGINS) + (os.pathsep + old if old else "")
    try:
        sandbox.up(root, component_modules=["fb_test_components"])
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    project = fedbench.connect(home=root / "guest").project("demo")
    run = project.run("slow", data="credit", seconds=7 * 86400)
    sides = [fedbench.connect(home=root / party).project("demo") for party in ("guest", "host")]
    deadline = time.monotonic() + 120
    while any(side.run_by_id(run.job_id).info["state"] != "running" for side in sides):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the benchmark's channel job {run.job_id} did not start on both parties")
        time.sleep(0.2)
    (root / "channel.json").write_text(json.dumps({"job_id": run.job_id, "project_id": project.info["id"]}))
    return Channel(root)
