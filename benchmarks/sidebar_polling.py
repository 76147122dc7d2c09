"""What JupyterLab's Federation sidebar costs the node: the node processes' CPU seconds while k panels poll.

A real sandbox (guest and host) and a real `jupyter server` on the guest with fedbench's extension; k threads
each poll the sidebar's endpoints as an open panel does while a run is live (status, projects, the selected
project's runs, every second, sending the ETag they hold). The server keeps each endpoint's answer for a
second (`fedbench/jupyter/cache.py`), so the node's work should not grow with k. Figures: the CPU seconds of
both node processes over the same window, as a ratio to one panel in the same run, beside an idle baseline.

    python benchmarks/sidebar_polling.py [--seconds 20] [--panels 1,4,8]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, record  # noqa: E402

import fedbench  # noqa: E402
from fedbench import sandbox  # noqa: E402
from fedbench.net.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "sidebar-bench"
PROJECT = "bench-sidebar"


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes `pids` (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _poll(url: str, stop: threading.Event, counts: list[int]) -> None:
    """One panel: every second, the three endpoints an open panel reads while a run is live."""
    session = requests.Session()
    session.headers["Authorization"] = f"token {TOKEN}"
    etags: dict[str, str] = {}
    paths = ["status", "projects", f"projects/{PROJECT}/runs"]
    while not stop.is_set():
        for path in paths:
            headers = {"If-None-Match": etags[path]} if path in etags else {}
            answer = session.get(f"{url}/fedbench/{path}", headers=headers, timeout=30)
            answer.raise_for_status()
            if "Etag" in answer.headers:
                etags[path] = answer.headers["Etag"]
            counts.append(answer.status_code)
        stop.wait(1.0)


def _window(url: str, panels: int, seconds: float, nodes: list[int]) -> tuple[float, int, int]:
    """Node CPU seconds, requests answered and 304s while `panels` panels poll for `seconds`."""
    stop = threading.Event()
    counts: list[int] = []
    threads = [threading.Thread(target=_poll, args=(url, stop, counts)) for _ in range(panels)]
    before = _cpu_seconds(nodes)
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return _cpu_seconds(nodes) - before, len(counts), counts.count(304)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--panels", default="1,4,8")
    args = parser.parse_args()
    panels = [int(k) for k in args.panels.split(",")]

    with tempfile.TemporaryDirectory(prefix="fb-sidebar-bench-") as tmp:
        root = Path(tmp) / "sb"
        sandbox.up(root, demo_data=False, warm_workers=0)
        server = None
        try:
            ids = [f"u{i}" for i in range(200)]
            guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
            guest.datasets.upload(
                pd.DataFrame({"id": ids, "y": [i % 2 for i in range(200)]}), name="t", id_column="id"
            )
            host.datasets.upload(
                pd.DataFrame({"id": ids, "x": [float(i) for i in range(200)]}), name="t", id_column="id"
            )
            guest.projects.propose(PROJECT, partners="host", datasets=["t"], jobs_per_day=1000)
            host.projects.accept(PROJECT, datasets=["t"])
            for _ in range(5):
                guest.project(PROJECT).run("row_count", data="t").wait(show_progress=False)

            port = free_port()
            config = Path(tmp) / "config" / "jupyter_server_config.d"
            config.mkdir(parents=True)
            shipped = ROOT / "extensions" / "jupyter-config" / "jupyter_server_config.d" / "fedbench.json"
            (config / "fedbench.json").write_text(shipped.read_text())
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("FEDBENCH_", "JUPYTER"))},
                "FEDBENCH_HOME": str(root / "guest"),
                "JUPYTER_CONFIG_DIR": str(config.parent),
                "JUPYTER_RUNTIME_DIR": str(Path(tmp) / "runtime"),
            }
            server = subprocess.Popen(
                [
                    sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
                    f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={tmp}", "--ServerApp.port_retries=0",
                ],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            while True:
                try:
                    answer = requests.get(
                        f"{url}/fedbench/status", headers={"Authorization": f"token {TOKEN}"}
                    )
                    if answer.ok and answer.json()["node"]["ok"]:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.3)

            nodes = [n.pid for n in sandbox.status(root) if n.pid]
            load = os.getloadavg()[0]
            idle_cpu, _, _ = _window(url, 0, args.seconds, nodes)
            measured = {k: _window(url, k, args.seconds, nodes) for k in panels}
            load_end = os.getloadavg()[0]
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(30)
            sandbox.down(root)

    base = measured[panels[0]][0] - idle_cpu
    rows = [["no panel (idle nodes)", f"{idle_cpu:.2f}", "", "", "—"]]
    for k in panels:
        cpu, requests_done, not_modified = measured[k]
        ratio = (cpu - idle_cpu) / base if base > 0 else float("nan")
        rows.append([f"{k} panel(s)", f"{cpu:.2f}", requests_done, not_modified, f"{ratio:.2f}"])
    record(
        "JupyterLab sidebar: node CPU while panels poll",
        markdown_table(
            [
                "polling",
                "node CPU s (guest + host)",
                "requests",
                "304 answers",
                f"above idle, ratio to {panels[0]}",
            ],
            rows,
        ),
        f"{args.seconds:g} s per row; each panel reads status, projects and runs every second with ETags; "
        f"the server keeps each answer for 1 s. Load average {load:.1f} at the start, {load_end:.1f} at the end "
        "(2 cores shared with other work: above 2, other processes competed).",
    )


if __name__ == "__main__":
    main()
