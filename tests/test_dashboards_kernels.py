"""Issue #15 items 3 and 10: the dashboards free the kernel of every page closed or left idle, and their root URL
is a landing page of the five dashboards.

A real `fedbench dashboards` (Voila) of a sandbox's guest, driven by Debian's chromium through playwright (never
`playwright install`; every request to anything but loopback is aborted). Kernels are counted and memory is
measured in the process table: the `ipykernel` processes and the resident memory of everything the command
started. Short timeouts (`--cull-closed`, `--cull-idle`) keep the test quick; the defaults are tested on the
configuration Voila is given.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import dashboards_url, loopback_context

from fedbench import sandbox
from fedbench.cli import dashboards
from fedbench.cli.dashboards import DASHBOARDS
from fedbench.errors import ConfigError
from fedbench.net.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
CLOSED_S = 3
"""`--cull-closed` of the served dashboards: a closed page's kernel goes this long after it closed."""
IDLE_S = 40
"""`--cull-idle` of the served dashboards: longer than any page of the test takes to load and be used."""
VISITS = 10


def _tree() -> dict[int, tuple[int, str]]:
    """Every process: its parent and its command line (Linux /proc)."""
    processes: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            processes[int(entry.name)] = (parent, command)
    return processes


def _descendants(root: int) -> list[int]:
    """`root` and every process started under it."""
    processes = _tree()
    found = [root]
    for pid in processes:
        ancestor = pid
        for _ in range(16):
            ancestor = processes.get(ancestor, (0, ""))[0]
            if ancestor == root:
                found.append(pid)
                break
            if ancestor <= 1:
                break
    return found


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Served:
    """A running `fedbench dashboards`: its process, the URL it printed (with the token) and its log."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    root: Path

    @property
    def base(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/"

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.url).port or 0)

    def kernels(self) -> list[int]:
        """The pids of the kernels the dashboards hold now."""
        processes = _tree()
        return [
            pid for pid in _descendants(self.process.pid) if "ipykernel" in processes.get(pid, (0, ""))[1]
        ]

    def rss_mb(self) -> float:
        """The resident memory of the command and everything it started (Voila, its kernels), in MB."""
        return sum(_rss_mb(pid) for pid in _descendants(self.process.pid))

    def settle(self, kernels: int, timeout: float = 240.0) -> None:
        """Wait until exactly `kernels` kernels run and none of them uses the CPU any more."""
        give_up = time.monotonic() + timeout
        previous: dict[int, int] = {}
        while True:
            current = {pid: _cpu(pid) for pid in self.kernels()}
            if len(current) == kernels and current == previous:
                return
            assert time.monotonic() < give_up, (
                f"{len(current)} kernels still run, expected {kernels}:\n{self.log.read_text()[-3000:]}"
            )
            previous = current
            time.sleep(1.5)

    def request(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", path, headers=headers or {})
            answer = connection.getresponse()
            return answer.status, answer.read().decode(errors="replace")
        finally:
            connection.close()


def _cpu(pid: int) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    return -1


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("dashboards-kernels")
    sandbox.up(root, demo_data=False)
    port = free_port()
    log = root / "voila.log"
    command = [sys.executable, "-m", "fedbench", "dashboards", "--port", str(port), "--home", str(root)]
    command += ["--party", "guest", "--cull-closed", str(CLOSED_S), "--cull-idle", str(IDLE_S)]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        give_up = time.monotonic() + 120
        while not (url := dashboards_url(log.read_text(), "guest")):
            assert server.poll() is None, f"fedbench dashboards exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < give_up, (
                f"Voila did not answer within 120 s:\n{log.read_text()[-3000:]}"
            )
            time.sleep(0.3)
        served = Served(process=server, url=url, log=log, root=root)
        served.settle(len(DASHBOARDS))
        yield served
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        sandbox.down(root)


@pytest.fixture
def context(browser, served: Served):
    """A browser context logged in with the printed URL, whose requests go to loopback only."""
    ctx = loopback_context(browser, timeout_ms=60_000, viewport={"width": 1280, "height": 900})
    login = ctx.new_page()
    login.goto(served.url)
    login.close()
    yield ctx
    ctx.close()


def _open_projects(context, served: Served):
    page = context.new_page()
    page.goto(f"{served.base}voila/render/projects.ipynb")
    page.wait_for_selector(".fb-app-projects.fb-opened", state="visible", timeout=120_000)
    return page


def test_the_root_url_is_a_landing_page_of_the_five_dashboards(served: Served, context) -> None:
    page = context.new_page()
    page.goto(served.url)
    page.wait_for_selector("ol.fb-landing")
    text = page.inner_text("main")
    assert "Select items to open" not in page.content() and ".ipynb" not in text, "not Voila's file list"
    links = page.locator("ol.fb-landing a")
    assert links.count() == len(DASHBOARDS)
    for name, link in zip(DASHBOARDS, links.all(), strict=True):
        assert link.get_attribute("href").endswith(f"/voila/render/{name}.ipynb")
        assert len(link.inner_text().split()) > 8, f"{name}: a line on what it does"
    assert page.get_by_role("link", name=re.compile("^Projects")).is_visible()
    assert "Upload a CSV file" in text and "Score customers" in text

    page.get_by_role("link", name=re.compile("^Projects")).click()
    page.wait_for_selector(".fb-app-projects.fb-opened", state="visible", timeout=120_000)
    assert page.url.endswith("/voila/render/projects.ipynb")
    page.close(run_before_unload=True)

    status, body = served.request("/")
    assert status in (302, 403) and "fb-landing" not in body, "the landing page needs the token"
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(served.url).query)["token"][0]
    status, body = served.request(f"/?token={token}", {"Host": f"evil.example:{served.port}"})
    assert status == 403 and "fb-landing" not in body, "a foreign Host is refused (DNS rebinding)"


def test_pages_opened_and_closed_10_times_leave_no_kernel_and_no_memory_behind(
    served: Served, context
) -> None:
    served.settle(len(DASHBOARDS))
    kernels, memory = len(served.kernels()), served.rss_mb()
    assert kernels == len(DASHBOARDS), "one pre-heated kernel per dashboard at rest"
    one_kernel = memory / (kernels + 1)
    for visit in range(VISITS):
        page = _open_projects(context, served)
        # Half the pages say goodbye (a tab closed normally: Voila shuts the kernel down), half never do (a
        # browser killed, a laptop closed, a tab discarded: only the closed-page clock frees those).
        page.close(run_before_unload=visit % 2 == 0)
    served.settle(len(DASHBOARDS), timeout=CLOSED_S + 240)
    assert len(served.kernels()) == kernels, "every closed page's kernel was shut down"
    after = served.rss_mb()
    assert after < memory + one_kernel, (
        f"memory came back near where it started ({memory:.0f} MB before, {after:.0f} MB after {VISITS} pages)"
    )
    log = served.log.read_text()
    assert log.count("its page closed") >= VISITS // 2 - 1, "pages that never said goodbye were freed too"


def test_a_page_left_open_and_unused_loses_its_kernel(served: Served, context) -> None:
    served.settle(len(DASHBOARDS))
    page = _open_projects(context, served)
    served.settle(len(DASHBOARDS) + 1)
    served.settle(len(DASHBOARDS), timeout=IDLE_S + 120)
    assert "with 1 connections due to" in served.log.read_text(), "the open page's kernel was culled as idle"
    notice = page.wait_for_selector(".fb-page-freed", state="visible", timeout=60_000)
    assert "put to sleep after a while without use" in notice.inner_text()
    shown = page.content().count("fb-page-freed")
    assert shown <= 3, f"one notice (its class is named twice in the script), {shown} times"
    page.get_by_role("button", name="Reload the page").click()
    page.wait_for_selector(".fb-app-projects.fb-opened", state="visible", timeout=120_000)
    assert page.locator(".fb-page-freed").count() == 0, "a reloaded page works again"
    page.close(run_before_unload=True)


HEAVY_IN_A_KERNEL = ("sqlalchemy", "sqlmodel", "matplotlib")
"""Libraries a dashboard's kernel has no use for until the user asks for something (a chart, an upload): each
page's kernel, pre-heated ones included, would import them for nothing (sqlalchemy and sqlmodel alone cost
about half a CPU second per kernel)."""


def test_a_dashboard_kernel_builds_every_page_without_the_database_layer_or_charts(served: Served) -> None:
    """Each dashboard's app, built as Voila's kernel builds it (the node named by the environment), and its
    page opened, imports none of `HEAVY_IN_A_KERNEL`."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(DASHBOARDS)!r}:\n"
        "    page = importlib.import_module(f'fedbench.ui.dashboards.{name}').app()\n"
        "    assert 'fb-app-unavailable' not in page._dom_classes, (name, page.value)\n"
        "    page.page_opened()\n"
        "    assert page.opened, name\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY_IN_A_KERNEL)!r})))\n"
    )
    env = {**os.environ, "FEDBENCH_HOME": str(served.root), "FEDBENCH_PARTY": "guest"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", f"a dashboard's kernel imported {done.stdout}"


def test_voila_is_told_to_free_kernels_with_sane_defaults(tmp_path: Path) -> None:
    config = dashboards.voila_config("guest", token="t")
    assert config["VoilaConfiguration"]["multi_kernel_manager_class"].endswith("DashboardKernelManager")
    culling = config["DashboardKernelManager"]
    assert culling["cull_idle_timeout"] == 600 and culling["closed_timeout"] == 30
    assert culling["cull_connected"] is True, "a page left open and idle is freed too"
    assert config["KernelManager"] == {"transport": "ipc"}, "kernels listen on Unix sockets, not TCP ports"
    assert culling["cull_interval"] <= 10, "a closed page's kernel goes within a minute"
    assert config["VoilaKernelManager"]["preheat_denylist"] == [], "every dashboard is pre-heated by default"
    only = dashboards.voila_config("guest", token="t", preheat=("projects",))["VoilaKernelManager"]
    assert sorted(only["preheat_denylist"]) == sorted(f"{n}.ipynb" for n in DASHBOARDS if n != "projects")
    with pytest.raises(ConfigError, match="no dashboard named charts"):
        dashboards.voila_config("guest", token="t", preheat=("projects", "charts"))
    with pytest.raises(ConfigError, match="--cull-closed 0"):
        dashboards.voila_config("guest", token="t", closed_timeout=0)
    done = subprocess.run(
        [sys.executable, "-m", "fedbench", "dashboards", "--cull-idle", "0", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "--cull-idle 0" in done.stderr, done.stderr


def test_the_container_dashboards_free_kernels_and_show_the_landing_page(tmp_path: Path) -> None:
    """`deploy/entrypoint.sh voila` (the compose service) uses the same kernel manager and landing page."""
    port, token, log = free_port(), "a-token-for-this-test-only-0123456789", tmp_path / "voila.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("FEDBENCH_")}
    env = {
        **base,
        "FEDBENCH_PYTHON": sys.executable,
        "FEDBENCH_HOME": str(tmp_path / "home"),
        "FEDBENCH_DASHBOARDS": str(ROOT / "notebooks" / "dashboards"),
        "FEDBENCH_TEMPLATES": str(ROOT / "templates"),
        "FEDBENCH_LAB_IP": "127.0.0.1",
        "FEDBENCH_VOILA_PORT": str(port),
        "FEDBENCH_CULL_CLOSED": "45",
        "JUPYTER_TOKEN": token,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    with open(log, "wb") as out:
        voila = subprocess.Popen(
            ["bash", str(ROOT / "deploy" / "entrypoint.sh"), "voila"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def get(path: str) -> tuple[int, str]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                connection.request("GET", path, headers={"Authorization": f"token {token}"})
                answer = connection.getresponse()
                return answer.status, answer.read().decode(errors="replace")
            finally:
                connection.close()

        give_up = time.monotonic() + 90
        while True:
            assert voila.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(OSError):
                status, landing = get("/")
                break
            assert time.monotonic() < give_up, log.read_text()[-3000:]
            time.sleep(0.5)
        assert status == 200 and landing.count('href="/voila/render/') == len(DASHBOARDS), landing[-2000:]
        assert "fb-landing" in landing and "Select items to open" not in landing
        status, page = get("/voila/render/projects.ipynb")
        assert status == 200 and "fb-page-header" in page, "the dashboards show in the fedbench template"
        assert "Culling kernels with idle durations > 600 seconds at 15 second intervals" in log.read_text()
        assert "Culling kernels even with connected clients" in log.read_text()
    finally:
        voila.terminate()
        voila.wait(30)
