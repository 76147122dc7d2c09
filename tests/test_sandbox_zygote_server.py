"""The sandbox zygote server (`fedbench.sandbox_zygote_server`): sandboxes fork their nodes from it, with the
caller's environment; without an answering server a sandbox starts its own zygote; the server leaves with the
process that started it. Real nodes, processes read from Linux /proc."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedbench import sandbox, sandbox_zygote_server
from fedbench.node.fork_server import child_pids

PROBE = "FEDBENCH_TEST_ZYGOTE_PROBE"


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _environment_seen_by(node: int) -> bytes:
    """The environment of the node's resource tracker: a process the node executes (a fork keeps the
    environment its first program started with in /proc, an exec shows the one it runs with)."""
    for child in child_pids(node):
        if b"resource_tracker" in Path(f"/proc/{child}/cmdline").read_bytes():
            return Path(f"/proc/{child}/environ").read_bytes()
    raise AssertionError(f"node {node} runs no resource tracker")


def _gone(pid: int, timeout: float) -> bool:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False


def test_a_sandbox_forks_its_nodes_from_the_server_with_the_callers_environment(tmp_path, monkeypatch):
    server, path = sandbox_zygote_server.start(tmp_path / "zygote")
    try:
        assert _comm(server.pid) == sandbox_zygote_server.NAME
        assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
        monkeypatch.setenv(sandbox_zygote_server.ENV, str(path))
        monkeypatch.setenv(PROBE, "from-the-caller")
        statuses = sandbox.up(tmp_path / "fed", demo_data=False)
        assert all(s.running for s in statuses)
        starters = {_parent(s.pid) for s in statuses if s.pid is not None}
        assert len(starters) == 1, "one starter forked both nodes"
        (starter,) = starters
        assert _comm(starter) == "fb-sandbox" and _parent(starter) == server.pid
        assert f"{PROBE}=from-the-caller".encode() in _environment_seen_by(statuses[0].pid)
        sandbox.down(tmp_path / "fed")
        assert _gone(starter, 10), "the starter exits once its nodes have, and the server reaps it"
        assert server.poll() is None, "the server outlives the sandboxes it started"
    finally:
        server.terminate()
        server.wait(30)
        sandbox.down(tmp_path / "fed")
    assert server.returncode == 0


@pytest.mark.parametrize("difference", ["PYTHONHASHSEED", "another Python"])
def test_a_caller_with_another_interpreter_or_its_settings_starts_its_own_zygote(
    tmp_path, monkeypatch, difference
):
    """`PYTHONHASHSEED` (like every `PYTHON*` variable but `PYTHONPATH`) acts only as an interpreter starts; a
    caller in a virtual environment or another checkout would get nodes running the server's code."""
    server, path = sandbox_zygote_server.start(tmp_path / "zygote")
    monkeypatch.setenv(sandbox_zygote_server.ENV, str(path))
    if difference == "PYTHONHASHSEED":
        monkeypatch.setenv("PYTHONHASHSEED", "12345")
    else:
        monkeypatch.setattr(sandbox_zygote_server, "_interpreter", lambda: ["/venv/bin/python", "/elsewhere"])
    try:
        statuses = sandbox.up(tmp_path / "fed", demo_data=False)
        assert all(s.running for s in statuses)
        zygote = _parent(statuses[0].pid)
        assert _parent(zygote) != server.pid and _comm(zygote) == "fb-sandbox"
        assert b"fedbench.sandbox_zygote\0" in Path(f"/proc/{zygote}/cmdline").read_bytes()
    finally:
        sandbox.down(tmp_path / "fed")
        server.terminate()
        server.wait(30)
    assert server.returncode == 0, "the server declined and kept serving"


def test_without_an_answering_server_a_sandbox_starts_its_own_zygote(tmp_path, monkeypatch):
    monkeypatch.setenv(sandbox_zygote_server.ENV, str(tmp_path / "nobody-listens.sock"))
    try:
        statuses = sandbox.up(tmp_path / "fed", demo_data=False)
        assert all(s.running for s in statuses)
        zygote = _parent(statuses[0].pid)
        assert b"fedbench.sandbox_zygote\0" in Path(f"/proc/{zygote}/cmdline").read_bytes()
    finally:
        sandbox.down(tmp_path / "fed")


@pytest.mark.parametrize("how", ["exits", "terminates it"])
def test_the_server_leaves_with_the_process_that_started_it(tmp_path, how):
    code = (
        "from fedbench import sandbox_zygote_server\n"
        f"server, path = sandbox_zygote_server.start({str(tmp_path / 'zygote')!r})\n"
        "print(server.pid, flush=True)\n"
    )
    if how == "terminates it":
        code += "server.terminate(); server.wait(30); print(server.returncode, flush=True)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split()
    assert _gone(int(lines[0]), 10), "no server is left behind"
    if how == "terminates it":
        assert lines[1] == "0", "SIGTERM is a clean exit"
