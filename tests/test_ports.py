"""Ports picked together are distinct: the kernel may hand a just-closed port out again, and a sandbox whose
host listened on its guest's control port never came up (seen once in CI)."""

from __future__ import annotations

import socket

from fedbench.net.ports import free_port, free_ports


def test_ports_picked_together_are_never_the_same() -> None:
    for _ in range(20):
        ports = free_ports(200)
        assert len(set(ports)) == 200, sorted(p for p in ports if ports.count(p) > 1)


def test_a_picked_port_can_be_listened_on() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
