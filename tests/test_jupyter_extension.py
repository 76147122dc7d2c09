"""The Jupyter server extension in a real `jupyter server` process: enabled by the shipped config file, it
brings up the node (a sandbox, or a node home) and answers `GET /fedbench/status` to token holders only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedbench import sandbox
from fedbench.net.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "extensions" / "jupyter-config" / "jupyter_server_config.d" / "fedbench.json"
TOKEN = "fedbench-test-token"


class Server:
    """A `jupyter server` subprocess with only the shipped fedbench config added to its config path."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        config_dir = tmp / "jupyter-config"
        (config_dir / "jupyter_server_config.d").mkdir(parents=True)
        shutil.copy(SHIPPED_CONFIG, config_dir / "jupyter_server_config.d" / "fedbench.json")
        (tmp / "notebooks" / "dashboards").mkdir(parents=True)
        (tmp / "notebooks" / "dashboards" / "data.ipynb").write_text("{}")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        full_env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
        }
        full_env.pop("FEDBENCH_HOME", None)
        full_env.update(env)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}",
                    f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={tmp}", "--ServerApp.port_retries=0",
                    "--allow-root",
                ],
                stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=tmp,
            )  # fmt: skip

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.url}{path}")
        if token:
            request.add_header("Authorization", f"token {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    def status_when_up(self, timeout: float = 120.0) -> dict:
        """Poll /fedbench/status until the node answers and every peer is reachable."""
        give_up = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < give_up:
            assert self.process.poll() is None, self.log.read_text()
            try:
                code, body = self.get("/fedbench/status")
            except OSError:
                code = 0
            if (
                code == 200
                and body["node"]["ok"]
                and body["peers"]
                and all(p["reachable"] for p in body["peers"])
            ):
                return body
            time.sleep(0.5)
        raise AssertionError(f"no healthy status in {timeout} s; last {body}; log:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
    sandbox.down(tmp_path / "sandbox")


def test_extension_starts_the_sandbox_and_reports_its_status(tmp_path: Path, servers: list[Server]) -> None:
    home = tmp_path / "sandbox"
    server = Server(tmp_path, {"FEDBENCH_SANDBOX": "1", "FEDBENCH_SANDBOX_HOME": str(home)})
    servers.append(server)
    body = server.status_when_up()
    assert body["mode"] == "sandbox" and body["home"] == str(home.resolve())
    assert body["party"] == "guest" and body["node"]["state"] == "up"
    assert [(p["party"], p["reachable"]) for p in body["peers"]] == [("host", True)]
    assert body["dashboards"] == [
        {
            "name": "data",
            "path": "notebooks/dashboards/data.ipynb",
            "url": "/voila/render/notebooks/dashboards/data.ipynb",
        }
    ]
    assert all(n.running for n in sandbox.status(home)), "the extension brought the sandbox up"
    assert "token" not in json.dumps(body).lower()
    assert server.get("/fedbench/status", token=None)[0] == 403
    assert server.get("/fedbench/status", token="wrong")[0] == 403
    assert "fedbench: finding or starting the sandbox federation" in server.log.read_text()


def test_extension_starts_a_configured_node_home(tmp_path: Path, servers: list[Server]) -> None:
    home = tmp_path / "sandbox"
    sandbox.up(home, demo_data=False)
    host = sandbox.status(home)[1]
    os.kill(host.pid, signal.SIGTERM)
    give_up = time.monotonic() + 20
    while any(n.running for n in sandbox.status(home) if n.party == "host"):
        assert time.monotonic() < give_up
        time.sleep(0.1)

    server = Server(tmp_path, {"FEDBENCH_HOME": host.home, "FEDBENCH_SANDBOX_HOME": str(tmp_path / "unused")})
    servers.append(server)
    body = server.status_when_up()
    assert (body["mode"], body["party"], body["home"]) == ("node", "host", host.home)
    assert [(p["party"], p["reachable"]) for p in body["peers"]] == [("guest", True)]
    assert all(n.running for n in sandbox.status(home)), "the extension started the host's node again"
    assert not (tmp_path / "unused").exists(), "no sandbox is made when a node home is configured"
