"""`sandbox.down` asks every node to stop before it waits on any, and each node then stops cleanly.

A sandbox used to stop its nodes one after the other (each waited out before the next was asked), so stopping
one took the sum of its nodes' stops; now it takes the slowest one's. Checked without a clock: both nodes are
frozen (SIGSTOP keeps a SIGTERM pending, unhandled), and both must hold a pending SIGTERM while `down` waits.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from fedbench import sandbox
from fedbench.node.config import NodeHome


def _sigterm_pending(pid: int) -> bool:
    """Whether a SIGTERM waits, undelivered, for process `pid` (Linux /proc: the process-wide pending mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("ShdPnd:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    raise AssertionError(f"no ShdPnd line in /proc/{pid}/status")


def _frozen(pid: int) -> bool:
    """Whether every thread of process `pid` has stopped (Linux /proc: state T). A SIGSTOP takes effect only
    once each thread runs again; a SIGTERM sent before that would be handled first on a loaded machine."""
    states = [
        (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        for task in Path(f"/proc/{pid}/task").iterdir()
    ]
    return all(state == "T" for state in states)


def test_down_asks_every_node_to_stop_before_waiting_on_any(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    sandbox.up(root, demo_data=False)
    pids = {node.party: node.pid for node in sandbox.status(root) if node.pid is not None}
    assert set(pids) == {"guest", "host"}
    stopped: list[str] = []
    for pid in pids.values():
        os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 60
    while not all(_frozen(pid) for pid in pids.values()):
        assert time.monotonic() < deadline, "SIGSTOP froze the nodes"
        time.sleep(0.05)
    down = threading.Thread(target=lambda: stopped.extend(sandbox.down(root, timeout=120.0)))
    try:
        down.start()
        deadline = time.monotonic() + 60
        while not all(_sigterm_pending(pid) for pid in pids.values()):
            assert time.monotonic() < deadline, (
                "down asked one node to stop and waited on it before asking the other: "
                + ", ".join(f"{party} pending={_sigterm_pending(pid)}" for party, pid in pids.items())
            )
            time.sleep(0.05)
    finally:
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
        down.join(180)
    assert not down.is_alive(), "down did not return once the nodes could run again"
    assert sorted(stopped) == ["guest", "host"]
    for party, pid in pids.items():
        home = NodeHome(root / party)
        ended = f"the node's process {pid} "  # written by its parent once it has reaped it
        deadline = time.monotonic() + 30
        while ended not in home.log_file.read_text():
            assert time.monotonic() < deadline, f"{party}'s end was never written to its log"
            time.sleep(0.05)
        log = home.log_file.read_text()
        assert f"{ended}exited with code 0" in log, f"{party} did not stop cleanly on SIGTERM: {log[-500:]}"
        assert "stopping" in log, party
        assert not home.pid_file.exists(), party
    assert not any(node.running for node in sandbox.status(root))
