"""The sandbox obeys: `connect()` creates a sandbox on a first run but never restarts a node someone stopped,
and a stopped node is named (our node or the partner) with the command that starts it, without gRPC words.

One real sandbox for the module, made by the first `connect()` on an empty home; the tests then stop its
nodes by hand or with `fedbench sandbox down`, in file order. The last tests take a node's port with a socket
of their own (another program) or break its start, and check what `sandbox up` does then.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fedbench
from fedbench import errors, sandbox
from fedbench.cli import main as cli
from fedbench.client.workbench import Workbench
from fedbench.node.config import NodeHome
from fedbench.ui.dashboards import psi

GRPC_WORDS = ("ipv4", "UNKNOWN", "failed to connect to all addresses", "StatusCode", "RpcError")


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Workbench]]:
    """The sandbox home (empty until now) and the Workbench of the first `connect()` there."""
    root = tmp_path_factory.mktemp("obeys") / "sandbox"
    env = pytest.MonkeyPatch()
    env.setenv("FEDBENCH_SANDBOX_HOME", str(root))
    env.delenv("FEDBENCH_HOME", raising=False)
    env.delenv("FEDBENCH_PARTY", raising=False)
    workbench = fedbench.connect()
    yield root, workbench
    workbench.close()
    sandbox.down(root)
    env.undo()


def _running(root: Path) -> dict[str, bool]:
    return {n.party: n.running for n in sandbox.status(root)}


def _stop_by_hand(root: Path, party: str) -> None:
    """SIGTERM one node, as an operator would, and wait until it is gone."""
    (node,) = [n for n in sandbox.status(root) if n.party == party]
    assert node.pid is not None
    os.kill(node.pid, signal.SIGTERM)
    give_up = time.monotonic() + 30
    while _running(root)[party]:
        assert time.monotonic() < give_up, f"{party}'s node did not stop"
        time.sleep(0.1)


def _no_grpc_words(text: str) -> None:
    for word in GRPC_WORDS:
        assert word not in text, f"{word!r} leaked into a user's message: {text}"


def test_first_connect_on_an_empty_home_creates_and_starts_the_sandbox(first) -> None:
    root, wb = first
    assert wb.party == "guest"
    assert _running(root) == {"guest": True, "host": True}
    assert {"credit", "breast_cancer"} <= {d.name for d in wb.datasets.list()}
    assert not sandbox.stopped_on_purpose(root)


def test_a_partner_stopped_by_hand_stays_stopped_and_shows_as_not_reachable(first) -> None:
    root, _ = first
    _stop_by_hand(root, "host")

    wb = fedbench.connect()
    assert wb.party == "guest", "our node runs: connect() works with the partner down"
    assert _running(root) == {"guest": True, "host": False}, "connect() must not start a partner's node"
    (peer,) = wb.peers(timeout=3.0)
    assert (peer.party, peer.reachable) == ("host", False)
    assert peer.error is not None and peer.error.startswith("host is not reachable")
    assert f"`fedbench sandbox up --home {root}`" in peer.error, "the sandbox case names the command"
    _no_grpc_words(peer.error)

    with pytest.raises(errors.PeerUnavailable) as federation_call:
        wb.node.call("ping_peer", party="host")
    assert str(federation_call.value).startswith("host is not reachable")
    _no_grpc_words(str(federation_call.value))

    with pytest.raises(errors.NodeUnavailable) as as_host:
        fedbench.connect("host")
    assert "Your node (host) is not running" in str(as_host.value)
    assert as_host.value.command == f"fedbench sandbox up --home {root}"
    assert _running(root) == {"guest": True, "host": False}, "still not restarted"
    wb.close()


def test_our_node_stopped_by_hand_is_named_with_the_command_that_starts_it(first, monkeypatch) -> None:
    root, wb = first
    _stop_by_hand(root, "guest")

    with pytest.raises(errors.NodeUnavailable) as in_use:
        wb.datasets.list()
    message = str(in_use.value)
    assert message.startswith("Your node (guest) is not running")
    assert f"`fedbench sandbox up --home {root}`" in message
    assert "peer" not in message.lower() and "partner" not in message, "our own node is no peer"
    _no_grpc_words(message)
    assert in_use.value.detail, "the transport's words are kept for the logs"

    with pytest.raises(errors.NodeUnavailable, match="sandbox up") as connecting:
        fedbench.connect()
    assert connecting.value.command == f"fedbench sandbox up --home {root}"
    _no_grpc_words(str(connecting.value))
    assert not _running(root)["guest"], "connect() must not restart a node stopped by hand"

    monkeypatch.setenv("FEDBENCH_HOME", str(root))
    page = psi.app()
    assert "fb-app-unavailable" in page._dom_classes
    assert "cannot reach your organisation's node" in page.value and "Your node (guest)" in page.value
    assert "<code>fedbench sandbox up --home" in page.value and "press Retry" in page.value
    _no_grpc_words(page.value)
    page.retry_button.click()
    assert "Still not reachable" in page.value and not _running(root)["guest"]

    sandbox.up(root, demo_data=False)
    page.retry_button.click()
    assert isinstance(page.children[0], psi.PsiApp), "Retry builds the dashboard once the node answers"
    assert "fb-app-unavailable" not in page._dom_classes


def test_sandbox_down_sticks_until_sandbox_up(first, capsys) -> None:
    root, _ = first
    assert cli(["sandbox", "down", "--home", str(root)]) == 0
    assert f"until `fedbench sandbox up --home {root}`" in capsys.readouterr().out
    assert sandbox.stopped_on_purpose(root)

    for party in ("guest", "host"):
        with pytest.raises(errors.NodeUnavailable) as stopped:
            fedbench.connect(party)
        assert "stopped with `fedbench sandbox down`" in str(stopped.value)
        assert f"`fedbench sandbox up --home {root}`" in str(stopped.value)
    assert _running(root) == {"guest": False, "host": False}, "`sandbox down` must stick"

    assert cli(["sandbox", "status", "--home", str(root)]) == 0
    assert "stopped with `fedbench sandbox down`" in capsys.readouterr().out

    sandbox.up(root, demo_data=False)
    assert not sandbox.stopped_on_purpose(root)
    assert fedbench.connect().party == "guest"


def test_a_demo_of_fewer_than_1000_rows_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    with pytest.raises(
        errors.ConfigError, match="demo_rows must be a whole number of at least 1000, got 999"
    ):
        sandbox.up(tmp_path / "small", demo_rows=999)
    assert not (tmp_path / "small").exists()


def test_a_port_taken_while_a_partner_runs_is_refused_with_what_to_do(first) -> None:
    root, _ = first
    _stop_by_hand(root, "host")
    host = NodeHome(root / "host")
    with _listening(host.load_config().control_port) as taken, pytest.raises(errors.ConfigError) as refused:
        sandbox.up(root, demo_data=False)
    assert "another program listens on a port of host's node, while guest runs" in str(refused.value)
    assert f"`fedbench sandbox down --home {root}`" in str(refused.value)
    assert host.load_config().control_port == taken, "nothing is changed while a node runs"


def test_a_stopped_sandbox_whose_port_another_program_took_comes_up_on_new_ports(first, caplog) -> None:
    root, _ = first
    sandbox.down(root)
    guest, host = NodeHome(root / "guest"), NodeHome(root / "host")
    with _listening(host.load_config().federation_port) as taken:
        sandbox.up(root, demo_data=False)
    moved = host.load_config()
    assert moved.federation_port != taken
    assert guest.load_config().peers == {"host": moved.federation_address}
    assert f"another program listens on a port of host's node (federation {taken}" in caplog.text
    workbench = fedbench.connect(home=guest.root)
    assert [(p.party, p.reachable) for p in workbench.peers()] == [("host", True)]
    workbench.close()


def test_a_node_that_stops_as_it_starts_fails_the_up_at_once_with_its_reason(first) -> None:
    """A node that exits as it starts (here: it was given its partner's certificate) fails `up` with the node's
    own words, instead of a wait for the whole timeout and "did not start"."""
    root, _ = first
    sandbox.down(root)
    host_tls = NodeHome(root / "host").tls_dir
    own = {name: (host_tls / name).read_bytes() for name in ("party.pem", "party.key")}
    for name in own:
        (host_tls / name).write_bytes((NodeHome(root / "guest").tls_dir / name).read_bytes())
    try:
        with pytest.raises(errors.NodeError) as failed:
            sandbox.up(root, demo_data=False, timeout=600)
    finally:
        for name, content in own.items():
            (host_tls / name).write_bytes(content)
    assert "node host stopped as it started" in str(failed.value)
    assert "is for 'guest', but this node is 'host'" in str(failed.value)


def test_a_port_another_program_takes_as_a_new_sandbox_starts_is_replaced(
    tmp_path, monkeypatch, caplog
) -> None:
    """Ports are picked when a sandbox is made and held by nobody until its nodes listen: a program that takes
    one meanwhile (played here just before the host's node starts) costs a second try on new ports."""
    others: list[socket.socket] = []
    spawn = sandbox._spawn

    def spawn_after_another_program(root: Path, parties: list[str]) -> dict[str, int]:
        if "host" in parties and not others:
            other_program = socket.socket()
            other_program.bind(("127.0.0.1", NodeHome(root / "host").load_config().federation_port))
            other_program.listen()
            others.append(other_program)
        return spawn(root, parties)

    monkeypatch.setattr(sandbox, "_spawn", spawn_after_another_program)
    root = tmp_path / "sandbox"
    try:
        sandbox.up(root, demo_data=False)
        taken = others[0].getsockname()[1]
        host = NodeHome(root / "host").load_config()
        assert host.federation_port != taken
        assert NodeHome(root / "guest").load_config().peers == {"host": host.federation_address}
        assert "another program took a port of host's node as it started" in caplog.text
        workbench = fedbench.connect(home=root / "guest")
        assert [(p.party, p.reachable) for p in workbench.peers()] == [("host", True)]
        workbench.close()
    finally:
        sandbox.down(root)
        for other_program in others:
            other_program.close()


@contextlib.contextmanager
def _listening(port: int) -> Iterator[int]:
    """Another program listening on `port` for the length of the block (a server, so it may take a port whose
    last connections linger in TIME_WAIT)."""
    with socket.socket() as other_program:
        other_program.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other_program.bind(("127.0.0.1", port))
        other_program.listen()
        yield port
