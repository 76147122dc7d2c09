"""Operations: a node started as an orchestrator would, answering GET /healthz and logging JSON lines."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from fedbench.net.certs import init_ca, issue_party
from fedbench.net.ports import free_port, free_ports
from fedbench.node.config import NodeConfig, NodeHome


def _node_home(tmp_path: Path, health_port: int) -> Path:
    """A standalone node home (its own CA, certificate and node.json) with a health port."""
    home = NodeHome(tmp_path / "home")
    init_ca(tmp_path / "ca")
    issue_party(tmp_path / "ca", home.tls_dir, "bank-a")
    federation_port, control_port = [port for port in free_ports(3) if port != health_port][:2]
    home.save_config(
        NodeConfig(
            party="bank-a",
            federation_port=federation_port,
            control_port=control_port,
            health_port=health_port,
            peers={"bank-b": "127.0.0.1:1"},
        )
    )
    return home.root


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_healthy(url: str, node: subprocess.Popen[str], timeout: float = 60.0) -> dict:
    give_up = time.monotonic() + timeout
    while True:
        assert node.poll() is None, f"the node exited: {node.communicate()[1]}"
        try:
            status, body = _get(url)
            if status == 200:
                return body
        except OSError:
            pass
        assert time.monotonic() < give_up, "the health endpoint never answered 200"
        time.sleep(0.2)


def test_healthz_answers_json_and_logs_are_json_lines(tmp_path: Path) -> None:
    port = free_port()
    home = _node_home(tmp_path, port)
    node = subprocess.Popen(
        [sys.executable, "-m", "fedbench", "node", "start", "--home", str(home), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = _wait_healthy(f"http://127.0.0.1:{port}/healthz", node)
        assert body["ok"] is True and body["party"] == "bank-a"
        assert body["checks"] == {"serving": "ok", "database": "ok"}
        assert body["uptime_s"] >= 0 and body["version"]
        assert "token" not in json.dumps(body).lower()
        status, missing = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 404 and "/healthz" in missing["error"]
    finally:
        node.send_signal(signal.SIGTERM)
        _, stderr = node.communicate(timeout=30)
    assert node.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    messages = [r["message"] for r in records]
    assert any("health endpoint on http://127.0.0.1:" in m for m in messages)
    assert any("stopping" in m for m in messages)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_taken_health_port_is_a_config_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        home = _node_home(tmp_path, taken.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "fedbench", "node", "start", "--home", str(home)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert "health endpoint" in done.stderr and "pick a free health_port" in done.stderr


def test_text_logs_stay_the_default(tmp_path: Path) -> None:
    home = _node_home(tmp_path, free_port())
    node = subprocess.Popen(
        [sys.executable, "-m", "fedbench", "node", "start", "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    give_up = time.monotonic() + 60
    while not (home / "node.pid").exists():
        assert node.poll() is None and time.monotonic() < give_up
        time.sleep(0.1)
    node.send_signal(signal.SIGTERM)
    _, stderr = node.communicate(timeout=30)
    first = stderr.splitlines()[0]
    assert not first.startswith("{") and "fedbench.node INFO" in first


_TGKILL = {"x86_64": 234, "aarch64": 131}
"""The tgkill system call's number (signal one thread of another process), by machine."""


def _takes_sigterm(task: Path) -> bool:
    """Whether a thread (`/proc/<pid>/task/<tid>`) leaves SIGTERM unblocked, so the kernel may hand it one sent to
    the process (a native helper thread, e.g. jemalloc's background thread, blocks every signal)."""
    for line in (task / "status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return not int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1
    return False


def test_sigterm_taken_by_any_thread_of_the_node_stops_it(tmp_path: Path) -> None:
    """The kernel may hand a SIGTERM sent to the node to any of its threads (gRPC's, the health server's); the
    node still stops. On a loaded machine this happened: the main thread slept in an untimed wait that only a
    signal to itself would have woken, and the node served on for good."""
    import ctypes
    import os

    port = free_port()
    home = _node_home(tmp_path, port)
    node = subprocess.Popen(
        [sys.executable, "-m", "fedbench", "node", "start", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", node)
        give_up = time.monotonic() + 60
        while not (home / "node.pid").exists():
            assert time.monotonic() < give_up, "the node wrote no pid file"
            time.sleep(0.1)
        time.sleep(1.0)  # the node's main thread is past start-up, asleep until a signal
        other = next(
            int(t.name)
            for t in sorted(Path(f"/proc/{node.pid}/task").iterdir(), key=lambda t: int(t.name))
            if int(t.name) != node.pid and _takes_sigterm(t)
        )
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(_TGKILL[os.uname().machine], node.pid, other, signal.SIGTERM) == 0
        try:
            _, stderr = node.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "a SIGTERM taken by another thread than the main one did not stop the node"
            ) from None
        assert node.returncode == 0 and "stopping" in stderr, stderr
    finally:
        if node.poll() is None:
            node.kill()
            node.communicate()
