"""Shared fixtures: real sandbox federations (node processes over mutual TLS on loopback), never mocks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedbench import sandbox
from fedbench.client.control import NodeClient
from fedbench.net.certs import PartyCredentials
from fedbench.net.peer import PeerClient
from fedbench.net.tls import TlsMaterial
from fedbench.node.config import NodeHome

DATABASE_URL = os.environ.get("FEDBENCH_TEST_DATABASE_URL")
"""When set (e.g. postgresql://localhost/fb_{sandbox}_{party}), every test sandbox stores metadata there."""


class Federation:
    """A running sandbox in a temporary home, with helpers to reach its nodes as a test needs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def home(self, party: str) -> NodeHome:
        return NodeHome(self.root / party)

    def client(self, party: str) -> NodeClient:
        return NodeClient.for_home(self.home(party))

    def tls(self, party: str) -> TlsMaterial:
        key, cert, ca = PartyCredentials.from_dir(self.home(party).tls_dir).load()
        return TlsMaterial(key=key, cert=cert, ca=ca)

    def peer_client(self, sender: str, receiver: str, tls: TlsMaterial | None = None) -> PeerClient:
        """A channel from the test process, acting as `sender`, to `receiver`'s node."""
        address = self.home(receiver).load_config().federation_address
        return PeerClient(sender, receiver, address, tls or self.tls(sender))

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Two nodes (guest, host) shared by the tests that only send, receive and get refused."""
    root = tmp_path_factory.mktemp("federation")
    sandbox.up(root, demo_data=False, database_url=DATABASE_URL)
    yield Federation(root)
    sandbox.down(root)


@pytest.fixture
def fresh_federation(tmp_path: Path) -> Iterator[Federation]:
    """Two nodes of this test alone (for tests that kill nodes or fill the store)."""
    sandbox.up(tmp_path / "sb", demo_data=False, database_url=DATABASE_URL)
    yield Federation(tmp_path / "sb")
    sandbox.down(tmp_path / "sb")


@pytest.fixture(scope="session")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Three nodes (guest, host, mallory): mallory holds a valid federation certificate but joins no project."""
    root = tmp_path_factory.mktemp("trio")
    sandbox.up(root, parties=("guest", "host", "mallory"), demo_data=False, database_url=DATABASE_URL)
    yield Federation(root)
    sandbox.down(root)
