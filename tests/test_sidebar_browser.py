"""The JupyterLab "Federation" sidebar in a real browser: JupyterLab on the host of a real sandbox, with the
prebuilt extension of this checkout (`fedbench/labextension`), driven by Debian's chromium through playwright.

One JupyterLab for the module (its start is the expensive part). The test opens the sidebar and sees both
parties healthy, reviews and accepts a pending proposal as the host (checked on the guest's node too), starts a
run from the notebook the page opened with and watches it reach "succeeded" in the panel, then inserts the
output snippet into that notebook and runs it there. Every request to anything but loopback is aborted; the
final page is saved under tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import loopback_context, up_with_test_components
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import fedbench
from fedbench import sandbox
from fedbench.net.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "extensions" / "jupyter-config" / "jupyter_server_config.d" / "fedbench.json"
BUILT = ROOT / "fedbench" / "labextension"
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "sidebar-browser-token"
PROJECT = "sidebar-browser"
STARTER = "start-a-run.ipynb"
"""The notebook the page opens with: the analyst starts the project's run from it."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """guest and host (with the test-only `slow` step, whose output both keep), each with a 20-row table `t`,
    and the guest's proposal the host has not answered."""
    root = tmp_path_factory.mktemp("sidebar-browser")
    up_with_test_components(root)
    ids = [f"u{i}" for i in range(20)]
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    guest.datasets.upload(
        pd.DataFrame({"id": ids, "y": [i % 2 for i in range(20)]}), name="t", id_column="id"
    )
    host.datasets.upload(
        pd.DataFrame({"id": ids, "x": [float(i) for i in range(20)]}), name="t", id_column="id"
    )
    guest.projects.propose(PROJECT, partners="host", datasets=["t"], purpose="row counts", jobs_per_day=100)
    yield root
    sandbox.down(root)


def _starter_notebook(fed: Path) -> str:
    """A notebook whose one cell starts a run of the project as the lab's party (the host) and prints its id."""
    code = (
        "import fedbench\n"
        f'project = fedbench.connect(home="{fed / "host"}").project("{PROJECT}")\n'
        'run = project.run("slow", data="t", seconds=1)\n'
        'print("started", run.job_id)'
    )
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "id": "start",
        "metadata": {},
        "outputs": [],
        "source": code,
    }
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook = {"cells": [cell], "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(notebook)


def _run_active_cell(page) -> str:
    """Run the notebook's active cell once its kernel is connected; the text of that cell's first output."""
    # a cell run before the notebook's kernel is connected is not run at all: wait for "Idle" in the status bar
    page.wait_for_function(
        "() => (document.querySelector('#jp-main-statusbar')?.textContent || '').includes('| Idle')",
        timeout=120_000,
    )
    cell = page.locator(".jp-NotebookPanel:visible .jp-Cell.jp-mod-active")
    cell.locator(".jp-InputArea").click()
    page.keyboard.press("Control+Enter")
    output = cell.locator(".jp-OutputArea-output").first
    try:
        output.wait_for(timeout=120_000)
    except PlaywrightTimeout:
        raise AssertionError("\n".join(page.console[-40:])) from None
    return output.inner_text()


@pytest.fixture(scope="module")
def lab(fed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab working with the host's node, loading this checkout's prebuilt sidebar; yields its URL."""
    assert (BUILT / "package.json").exists(), "build the sidebar first: bash scripts/ci/build-sidebar.sh"
    tmp = tmp_path_factory.mktemp("sidebar-lab")
    config = tmp / "config" / "jupyter_server_config.d"
    config.mkdir(parents=True)
    (config / "fedbench.json").write_text(SHIPPED_CONFIG.read_text())
    data = tmp / "data" / "labextensions"
    data.mkdir(parents=True)
    (data / "fedbench-sidebar").symlink_to(BUILT)
    work = tmp / "work"
    (work / "notebooks" / "dashboards").mkdir(parents=True)
    (work / STARTER).write_text(_starter_notebook(fed))
    (work / "notebooks" / "dashboards" / "data.ipynb").write_text("{}")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FEDBENCH_SANDBOX", "JUPYTER"))},
        "FEDBENCH_HOME": str(fed / "host"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_PATH": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "user-data"),
    }
    log = tmp / "lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
                "--ServerApp.port_retries=0", f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={work}",
                f"--LabApp.workspaces_dir={tmp / 'workspaces'}", f"--LabApp.user_settings_dir={tmp / 'settings'}",
                "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < give_up, f"JupyterLab did not answer:\n{log.read_text()[-4000:]}"
            try:
                request = urllib.request.Request(
                    f"{url}/api/status", headers={"Authorization": f"token {TOKEN}"}
                )
                with urllib.request.urlopen(request, timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def page(browser, lab: str):
    """A JupyterLab page, its requests kept on loopback."""
    context = loopback_context(browser, timeout_ms=60_000, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console = []  # type: ignore[attr-defined]
    page.on("console", lambda message: page.console.append(f"{message.type}: {message.text}"))
    page.goto(f"{lab}/lab/tree/{STARTER}?token={TOKEN}")
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    # the extension's status-bar item: the extension is active and its commands are registered (on a loaded
    # machine JupyterLab shows its dock well before it has activated every extension)
    page.wait_for_selector(".fb-statusbar", timeout=120_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sidebar.png"))
    context.close()


def _search_palette(page, text: str) -> None:
    """Open the command palette and type `text` in its search; again from its shortcut if a busy page missed the
    key press or closed the palette before the text landed (moving the focus closes it: it failed so in CI)."""
    search = page.locator(".lm-CommandPalette-input")
    for attempt in range(4):
        if not search.is_visible():
            page.keyboard.press("Control+Shift+C")
        try:
            search.fill(text, timeout=15_000)
            return
        except PlaywrightTimeout:
            if attempt == 3:
                raise


def _run_from_palette(page, text: str, label: str) -> None:
    """Search the palette for `text` and run the command `label`; again from the search if the palette closed
    before the click landed (a busy page can move the focus away, which closes it and detaches its items)."""
    item = page.locator(".lm-CommandPalette-item").filter(has_text=label)
    for attempt in range(3):
        _search_palette(page, text)
        try:
            item.click(timeout=15_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")


def test_sidebar_accepts_a_proposal_follows_a_run_and_inserts_its_output(page, fed: Path) -> None:
    _search_palette(page, "fedbench")
    palette = page.locator(".lm-CommandPalette-item")
    palette.filter(has_text="fedbench: Refresh the Federation sidebar").wait_for()
    page.keyboard.press("Escape")
    _run_from_palette(page, "fedbench", "fedbench: Show the Federation sidebar")
    panel = page.locator("#fedbench-federation")
    panel.wait_for()
    health = panel.locator('.fb-health[data-level="ok"]')
    health.wait_for()
    assert health.inner_text() == "host: node up, guest reachable"
    assert panel.locator('.fb-peer[data-party="guest"]').get_attribute("data-reachable") == "true"
    status_bar = page.locator(".fb-statusbar")
    assert status_bar.inner_text() == "fedbench host ✓ · guest ✓"
    assert panel.locator('.fb-dashboard[data-name="data"]').count() == 1
    _search_palette(page, "fedbench open")
    palette.filter(has_text="fedbench: Open the data dashboard").wait_for()
    page.keyboard.press("Escape")

    proposal = panel.locator(f'.fb-project[data-name="{PROJECT}"][data-state="pending"]')
    proposal.wait_for()
    assert "guest proposes this project: row counts." in proposal.inner_text()
    assert "Up to 100 jobs a day, 10 PSI runs in all" in proposal.locator(".fb-terms").inner_text()
    assert "unmodified" in proposal.locator(".fb-caveats").inner_text()
    accept = proposal.locator(".fb-accept")
    assert accept.is_disabled(), "nothing is accepted before a dataset is chosen"
    proposal.locator('.fb-dataset input[value="t"]').check()
    panel.locator(f'.fb-project[data-name="{PROJECT}"] .fb-accept:not([disabled])').click()
    panel.locator(f'.fb-project[data-name="{PROJECT}"][data-state="active"]').wait_for()
    guest = fedbench.connect(home=fed / "guest")
    assert guest.project(PROJECT).state == "active", "the guest's node has the host's acceptance"
    assert fedbench.connect(home=fed / "host").project(PROJECT).info["datasets"]["host"][0]["name"] == "t"

    started = _run_active_cell(page).split()
    assert started[0] == "started", started
    run = guest.project(PROJECT).run_by_id(started[1])
    card = panel.locator(f'.fb-run[data-job="{run.job_id}"][data-state="succeeded"]')
    card.wait_for()
    assert run.wait(show_progress=False).record.state == "succeeded"
    assert card.locator(".fb-step").inner_text() == "slow: succeeded 100%"
    assert card.locator("progress").get_attribute("value") == "100"

    card.locator('.fb-insert[data-output="metrics"]').click()
    cell = page.locator(".jp-NotebookPanel:visible .jp-Cell.jp-mod-active")
    cell.locator(".jp-InputArea").wait_for()
    page.wait_for_function(
        "id => [...document.querySelectorAll('.jp-NotebookPanel .jp-InputArea')]"
        ".some(a => a.textContent.includes('run_by_id(\"' + id + '\")'))",
        arg=run.job_id,
    )
    source = cell.locator(".jp-InputArea").inner_text()
    assert f'project.run_by_id("{run.job_id}").output("metrics").value()' in source
    assert f'fedbench.connect(home="{fed / "host"}")' in source
    text = _run_active_cell(page)
    assert text.strip() == "{'rows': 20}", text

    panel.locator('.fb-dashboard[data-name="data"]').click()
    frame = page.locator("#fedbench-dashboard-data iframe")
    frame.wait_for(state="attached")
    assert frame.get_attribute("src") == "/voila/render/notebooks/dashboards/data.ipynb"
    assert page.locator(".lm-TabBar-tab", has_text="data dashboard").count() == 1
