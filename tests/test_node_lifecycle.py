"""Nodes as processes: sandbox CLI from a clean home, connect(), SIGKILL and restart with the store intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATABASE_URL, Federation, child_pids

import fedbench
from fedbench import sandbox
from fedbench.errors import ConfigError
from fedbench.node.fork_server import is_fork_server
from fedbench.store import ArtifactFiles


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbench", *args], capture_output=True, text=True, timeout=180, check=False
    )


def test_sandbox_up_from_clean_home_then_connect_sees_host_reachable(tmp_path):
    home = tmp_path / "clean"
    try:
        result = _cli("sandbox", "up", "--home", str(home))
        assert result.returncode == 0, result.stderr
        status = json.loads(_cli("sandbox", "status", "--home", str(home), "--json").stdout)
        parties = {n["party"]: n for n in status["nodes"]}
        assert set(parties) == {"guest", "host"}
        assert all(n["running"] for n in parties.values())

        wb = fedbench.connect(home=home)
        assert wb.party == "guest"
        (peer,) = wb.peers()
        assert (peer.party, peer.reachable, peer.error) == ("host", True, None)
        names = {d.name for d in wb.datasets.list()}
        assert {"credit", "breast_cancer"} <= names
        assert wb.project("demo").state == "active"
        assert "<table" in wb._repr_html_()
        host = fedbench.connect("host", home=home)
        assert {d.name for d in host.datasets.list()} >= {"credit", "breast_cancer"}
        assert host.datasets.get("credit").info.label_column is None

        again = _cli("sandbox", "up", "--home", str(home))
        assert again.returncode == 0, again.stderr
        pids = {
            n["party"]: n["pid"]
            for n in json.loads(_cli("sandbox", "status", "--home", str(home), "--json").stdout)["nodes"]
        }
        assert pids == {p: n["pid"] for p, n in parties.items()}, "a second `up` must not restart nodes"
    finally:
        _cli("sandbox", "down", "--home", str(home))
    assert not any(n.running for n in sandbox.status(home))


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Two nodes of this module alone: one test kills and restarts the guest, the next stops the host."""
    root = tmp_path_factory.mktemp("lifecycle")
    sandbox.up(root, demo_data=False, database_url=DATABASE_URL)
    yield Federation(root)
    sandbox.down(root)


def test_node_killed_and_restarted_keeps_datasets_and_artifacts(nodes):
    frame = pd.DataFrame(
        {"id": [f"u{i}" for i in range(100)], "y": np.arange(100) % 2, "x": np.linspace(0, 1, 100)}
    )
    wb = fedbench.connect(home=nodes.home("guest").root)
    info = wb.datasets.upload(frame, name="kept", id_column="id", label_column="y").info
    files = ArtifactFiles(nodes.home("guest").artifacts_dir)
    stored = files.write_bytes(b"a model artifact")

    pid = int(nodes.home("guest").pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while any(n.running for n in sandbox.status(nodes.root) if n.party == "guest"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    sandbox.up(nodes.root, demo_data=False)

    wb = fedbench.connect(home=nodes.home("guest").root)
    again = wb.datasets.get("kept")
    assert again.info.fingerprint == info.fingerprint
    pd.testing.assert_series_equal(again.to_pandas()["x"], frame["x"], check_names=False)
    assert files.read_bytes(stored.path) == b"a model artifact"
    assert files.verify(stored)


def test_the_suites_sandboxes_keep_no_warm_workers_and_the_pool_option_is_checked(
    nodes, tmp_path, monkeypatch
):
    """tests/conftest.py sets $FEDBENCH_SANDBOX_WARM_WORKERS to 0: a test's node starts no idle worker until a
    step asks for one (its fork server, forked from the node at start-up, and multiprocessing's resource tracker
    are its only children). A pool size that is not a whole number from 0 to 32 is refused before anything is
    made."""
    for party in ("guest", "host"):
        assert nodes.home(party).load_config().warm_workers == 0, party
    node = next(n for n in sandbox.status(nodes.root) if n.party == "guest" and n.running)
    children = child_pids(node.pid)
    servers = [c for c in children if is_fork_server(c)]
    trackers = [c for c in children if b"resource_tracker" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(servers) == 1 and sorted(servers + trackers) == sorted(children), children
    assert not child_pids(servers[0]), "a node with no warm workers starts no worker before a step"

    with pytest.raises(ConfigError, match="from 0 to 32, got -1"):
        sandbox.up(tmp_path / "negative", demo_data=False, warm_workers=-1)
    monkeypatch.setenv(sandbox.WARM_WORKERS_ENV, "two")
    with pytest.raises(ConfigError, match="FEDBENCH_SANDBOX_WARM_WORKERS='two' is not a whole number"):
        sandbox.up(tmp_path / "words", demo_data=False)
    assert not (tmp_path / "negative").exists() and not (tmp_path / "words").exists(), "refused before"
    monkeypatch.delenv(sandbox.WARM_WORKERS_ENV)
    refused = _cli("sandbox", "up", "--home", str(tmp_path / "cli"), "--warm-workers", "33")
    assert refused.returncode == 2 and "from 0 to 32, got 33" in refused.stderr, refused.stderr
    assert not (tmp_path / "cli").exists()


def test_node_stops_cleanly_on_sigterm(nodes):
    home = nodes.home("host")
    pid = int(home.pid_file.read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while home.pid_file.exists():
        assert time.monotonic() < deadline, "the node did not remove its pid file on SIGTERM"
        time.sleep(0.1)
    assert "stopping" in home.log_file.read_text()


def test_connect_to_a_folder_that_is_no_node_says_how_to_start_one(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="sandbox up"):
        fedbench.connect(home=tmp_path / "empty")
