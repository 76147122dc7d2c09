"""Free loopback ports to listen on: for the sandbox's nodes, the dashboards' server and the tests.

A port is found by binding to port 0 and reading what the kernel gave; the kernel may give a port it just
handed out again once its socket is closed, so several ports are picked with every socket still bound.
"""

from __future__ import annotations

import contextlib
import socket

__all__ = ["can_listen", "free_port", "free_ports"]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now (each may be taken by another program before it is used)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    """One port free on `host` now."""
    return free_ports(1, host)[0]


def can_listen(host: str, port: int) -> bool:
    """Whether a server could listen on `host:port` now (no other socket listens there)."""
    with socket.socket() as sock:
        # as gRPC binds: connections of a server that has closed (TIME_WAIT) are no obstacle
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
