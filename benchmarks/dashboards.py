"""How fast each dashboard opens in a real browser, against a bare Voila page with one widget.

A sandbox (demo data) and `fedbench dashboards` for the guest start first; once Voila's pre-heated kernels
have gone quiet, Debian's chromium (through playwright) opens each dashboard --repeats times and times the
moment its app shows with data read after it was opened (`.fb-app-<name>.fb-opened`). The baseline, in the
same run: a bare `voila` serving a notebook that shows one ipywidgets Label, opened the same number of times
(a kernel started per page, no pre-heating: the cost a plain Voila app pays). The target is a dashboard that
opens in under 5 s on this machine. Run: `python benchmarks/dashboards.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record  # noqa: E402

from fedbench import sandbox  # noqa: E402
from fedbench.cli.dashboards import DASHBOARDS  # noqa: E402
from fedbench.net.ports import free_port

CHROMIUM = "/usr/bin/chromium"
BASELINE_NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": ["import ipywidgets\n", "ipywidgets.Label('ready').add_class('fb-baseline')"],
        }
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _start(command: list[str], log: Path, ready: Callable[[str], str | None], cwd: Path | None = None):
    """Start a server; wait until `ready(log text)` returns its URL."""
    with open(log, "wb") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
    give_up = time.monotonic() + 120
    while not (url := ready(log.read_text())):
        if server.poll() is not None or time.monotonic() > give_up:
            raise SystemExit(f"{command[2:4]} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.3)
    return server, url


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def _timed_open(context, url: str, selector: str) -> float:
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(selector, state="visible", timeout=120_000)
    elapsed = time.perf_counter() - started
    page.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait after the servers start")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sandbox.up(root / "fed", demo_data=True)
        (root / "plain").mkdir()
        (root / "plain" / "baseline.ipynb").write_text(json.dumps(BASELINE_NOTEBOOK))
        port, base_port = free_port(), free_port()
        dashboards, printed = _start(
            [
                sys.executable,
                "-m",
                "fedbench",
                "dashboards",
                "--port",
                str(port),
                "--home",
                str(root / "fed"),
            ],
            root / "dashboards.log",
            lambda text: (m := re.search(r"fedbench dashboards of party guest: (\S+)", text)) and m.group(1),
        )
        plain, _ = _start(
            [sys.executable, "-m", "voila", "--no-browser", f"--port={base_port}", "--Voila.ip=127.0.0.1"],
            root / "voila.log",
            lambda text: "http://" if "http://" in text else None,
            cwd=root / "plain",
        )
        try:
            time.sleep(args.settle)
            parts = urllib.parse.urlsplit(printed)
            with sync_playwright() as play:
                browser = play.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                base_url = f"http://127.0.0.1:{base_port}/voila/render/baseline.ipynb"
                baseline = [_timed_open(context, base_url, ".fb-baseline") for _ in range(args.repeats)]
                loads: dict[str, list[float]] = {}
                for name in DASHBOARDS:
                    url = urllib.parse.urlunsplit(
                        parts._replace(path=f"{parts.path}voila/render/{name}.ipynb")
                    )
                    loads[name] = [
                        _timed_open(context, url, f".fb-app-{name}.fb-opened") for _ in range(args.repeats)
                    ]
                browser.close()
        finally:
            _stop(dashboards)
            _stop(plain)
            sandbox.down(root / "fed")
    load = os.getloadavg()
    base = median(baseline)
    rows = [["bare Voila, one Label (baseline)", f"{base:.2f}", f"{max(baseline):.2f}", "1.00"]]
    rows += [
        [name, f"{median(times):.2f}", f"{max(times):.2f}", f"{median(times) / base:.2f}"]
        for name, times in loads.items()
    ]
    record(
        "Dashboard load time in chromium (guest, demo sandbox)",
        markdown_table(["page", "median s", "max s", "ratio to baseline"], rows),
        f"{args.repeats} opens each, after the servers settled {args.settle:.0f} s; target: each dashboard "
        f"under 5 s. Load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
    )


if __name__ == "__main__":
    main()
