"""Worker processes that end with the process that owns them.

A process pool's worker waits on its task queue, and nothing tells it when the pool's owner dies (a step
worker killed with SIGKILL, or stopped by SIGTERM mid-step): its parent is the fork server, which lives as
long as any of its children do, so both would idle on forever (measured: a killed owner left its two
Paillier pool workers and their fork server behind). A pool's initializer calls `watch_owner` with the
owner's pid: a daemon thread ends the worker within `interval` seconds of the owner's death.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["owner_alive", "watch_owner"]


def owner_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != b"Z"


def watch_owner(owner: int, interval: float = 0.5) -> None:
    """Exit this process (status 3) once `owner` is gone; checks every `interval` seconds in a daemon thread."""

    def watch() -> None:
        while owner_alive(owner):
            time.sleep(interval)
        os._exit(3)

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()
