"""Holes 7 of issue #14: `fedbench dashboards` must not open a kernel (and its widget state) to just anyone.

The attacker here is not a federation partner but whoever else reaches the dashboards' loopback port: another
user of the machine (no token), or a web page the party's user visits, through DNS rebinding (a foreign `Host`
header) or a cross-origin request (a foreign `Origin`). The victim is the real `fedbench dashboards` of the
sandbox's guest; each refusal must show in its log (Voila's warnings are its audit trail), must start no
kernel (counted from the log, where Voila records every kernel it starts), and the tokened URL it printed must
still open a dashboard afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
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
from conftest import dashboards_url
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from fedbench import sandbox
from fedbench.net.ports import free_port
from fedbench.node.fork_server import child_pids

EVIL = "http://evil.example"
KERNEL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Served:
    """A running `fedbench dashboards`: its port, the token of the URL it printed, and its log."""

    port: int
    token: str
    log: Path
    pid: int

    def kernels_started(self) -> int:
        """How many kernels Voila has started so far (it logs each one)."""
        return self.log.read_text(errors="replace").count("Kernel started:")

    def request(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, str]:
        """One GET, redirects not followed; returns the status, the headers and the body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", path, headers=headers or {})
            answer = connection.getresponse()
            return answer.status, answer.headers, answer.read().decode(errors="replace")
        finally:
            connection.close()

    def websocket(self, path: str, headers: dict[str, str] | None = None) -> int:
        """Open a websocket on `path`; returns 101 when it opened, else the refusal's status."""

        async def attempt() -> int:
            request = HTTPRequest(f"ws://127.0.0.1:{self.port}{path}", headers=headers or {})
            try:
                connection = await websocket_connect(request)
            except HTTPClientError as exc:
                return exc.code
            connection.close()
            return 101

        return asyncio.run(attempt())


def _settle(served: Served, before: int, seconds: float = 4.0) -> int:
    """Give Voila time to start a kernel had it accepted the request; returns how many it started since."""
    time.sleep(seconds)
    return served.kernels_started() - before


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("dashboards-rogue")
    sandbox.up(root, demo_data=False)
    port = free_port()
    log = root / "voila.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "fedbench", "dashboards", "--port", str(port), "--home", str(root)),
                *("--preheat", "projects"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        give_up = time.monotonic() + 120
        while log.read_text(errors="replace").count("Kernel pool of ") < 1:
            assert server.poll() is None, f"fedbench dashboards exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < give_up, f"Voila's kernels were not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        url = dashboards_url(log.read_text(), "guest")
        assert url, log.read_text()[-3000:]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        yield Served(port=port, token=query.get("token", [""])[0], log=log, pid=server.pid)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        sandbox.down(root)


def _honest_page(served: Served) -> str:
    """Open the projects dashboard with the printed token, as the party's user does; returns its kernel id
    once Voila has started the kernel that refills its pre-heated pool (so later counts start from rest)."""
    before = served.kernels_started()
    status, _, body = served.request(f"/voila/render/projects.ipynb?token={served.token}")
    assert status == 200 and "Traceback" not in body, body[-2000:]
    give_up = time.monotonic() + 60
    while served.kernels_started() == before:
        assert time.monotonic() < give_up, "Voila did not refill its pool after an honest page"
        time.sleep(0.3)
    kernel = KERNEL_ID.search(body)
    assert kernel, "the page names its kernel"
    return kernel.group(0)


def test_the_printed_url_carries_a_fresh_token(served: Served) -> None:
    assert len(served.token) >= 32, "the printed URL carries a long random token"
    commands = _voila_command_lines()
    assert commands, "the dashboards' Voila process is running"
    assert served.token.encode() not in b" ".join(commands), (
        "the token is not on a command line (any local user can read those)"
    )


def _voila_command_lines() -> list[bytes]:
    """The command line of every running Voila process, each read once (a process may exit meanwhile)."""
    lines = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            line = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
            if b"voila" in line:
                lines.append(line)
    return lines


def test_kernels_listen_on_unix_sockets_in_a_private_folder_not_on_tcp_ports(served: Served) -> None:
    """Another user of the host can connect to a kernel's TCP ports (and a port taken between Voila picking it
    and the kernel binding it killed the kernel); a Unix socket in Voila's 0700 folder is neither."""
    connections = []
    for pid in _descendants(served.pid):
        with contextlib.suppress(OSError):
            line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"ipykernel_launcher" in b" ".join(line) and b"-f" in line:
                connections.append(Path(line[line.index(b"-f") + 1].decode()))
    assert connections, "the pre-heated kernel of projects.ipynb is running"
    for path in connections:
        info = json.loads(path.read_text())
        assert info["transport"] == "ipc", f"{path}: a kernel listens on {info['transport']}"
        assert Path(info["ip"]).parent.stat().st_mode & 0o077 == 0, (
            f"{info['ip']}: in a folder others can open"
        )
        sockets = [Path(f"{info['ip']}-{info[f'{c}_port']}") for c in ("shell", "iopub", "control")]
        give_up = time.monotonic() + 60
        while not all(socket.is_socket() for socket in sockets):
            assert time.monotonic() < give_up, f"{path}: the kernel never listened on {sockets}"
            time.sleep(0.3)


def _descendants(root: int) -> list[int]:
    """The processes descending from process `root`."""
    children = child_pids(root)
    return children + [pid for child in children for pid in _descendants(child)]


def test_a_request_without_the_token_opens_no_kernel(served: Served) -> None:
    before = served.kernels_started()
    for path in ("/voila/render/projects.ipynb", "/voila/render/data.ipynb?token=not-the-token"):
        status, headers, body = served.request(path)
        assert status in (302, 403), f"{path} answered {status} without the token"
        assert status == 403 or "/login" in headers.get("Location", ""), headers
        assert "fb-app" not in body and not KERNEL_ID.search(body), "nothing of a dashboard is sent"
    assert _settle(served, before) == 0, "no kernel was started for a request without the token"

    kernel = _honest_page(served)
    assert served.websocket(f"/api/kernels/{kernel}/channels") == 403, (
        "a kernel's channels do not open without the token, even knowing its id"
    )
    assert served.request(f"/api/kernels/{kernel}")[0] == 403
    assert _honest_page(served) != kernel, "the token still opens a dashboard, with a new kernel"


def test_a_foreign_host_header_is_refused_dns_rebinding(served: Served) -> None:
    before = served.kernels_started()
    rebinding = {"Host": f"evil.example:{served.port}", "Origin": f"{EVIL}:{served.port}"}
    status, _, body = served.request(f"/voila/render/projects.ipynb?token={served.token}", rebinding)
    assert status == 403, "a page on another site name is refused, even one that guessed the token"
    assert not KERNEL_ID.search(body)
    assert _settle(served, before) == 0, "no kernel was started for a foreign Host"
    assert "Blocking request with non-local 'Host' evil.example" in served.log.read_text()
    _honest_page(served)


def test_cross_origin_page_and_kernel_requests_are_refused(served: Served) -> None:
    before = served.kernels_started()
    status, _, body = served.request(
        "/voila/render/projects.ipynb", {"Origin": EVIL, "Referer": f"{EVIL}/page.html"}
    )
    assert status in (302, 403) and not KERNEL_ID.search(body), "another site's page gets no dashboard"
    assert _settle(served, before) == 0, "no kernel was started for another site's request"

    kernel = _honest_page(served)
    status, headers, _ = served.request(f"/?token={served.token}")
    cookies = "; ".join(value.split(";", 1)[0] for value in headers.get_all("Set-Cookie") or [])
    assert cookies, "the tokened URL logs the browser in (a cookie), as for the party's user"
    logged_in = {"Cookie": cookies}
    channels = f"/api/kernels/{kernel}/channels"
    assert served.websocket(channels, {**logged_in, "Origin": EVIL}) == 403, (
        "another site cannot reach a kernel through the user's login"
    )
    assert "Blocking Cross Origin WebSocket Attempt.  Origin: http://evil.example" in served.log.read_text()
    assert served.websocket(f"{channels}?token={served.token}") == 101, "the party's own client still can"


def test_only_the_dashboards_named_to_preheat_get_a_kernel_ahead(served: Served) -> None:
    """The server is told `--preheat projects` (the only page these tests open): Voila heats no other page."""
    pools = set(re.findall(r"Kernel pool of (\S+) is filled", served.log.read_text(errors="replace")))
    assert pools == {"projects.ipynb"}, pools


def test_a_non_loopback_address_needs_allow_remote(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fedbench", "dashboards", "--ip", "0.0.0.0", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "--allow-remote" in done.stderr, done.stderr
    assert "would let other machines reach the dashboards" in done.stderr
