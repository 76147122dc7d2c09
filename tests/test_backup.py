"""`fedbench backup` and `restore`: a running sandbox node archived, restored into a fresh home, started there."""

from __future__ import annotations

import io
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fedbench
from fedbench import sandbox
from fedbench.client.control import NodeClient
from fedbench.errors import FedbenchError
from fedbench.net.ports import free_ports
from fedbench.node.backup import BackupError, restore
from fedbench.node.config import NodeHome
from fedbench.store import table_fingerprint


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbench", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sandbox with the demo data sets and the accepted `demo` project, plus one finished run (SQLite)."""
    root = tmp_path_factory.mktemp("backup-sandbox")
    sandbox.up(root)
    wb = fedbench.connect(home=root / "guest")
    wb.project("demo").run("row_count", data="credit").wait(show_progress=False)
    wb.close()
    yield root
    sandbox.down(root)


def test_backup_restore_into_a_fresh_home_finds_everything(demo: Path, tmp_path: Path) -> None:
    original = fedbench.connect(home=demo / "guest")
    datasets = {d.name: d.fingerprint for d in original.datasets.list()}
    assert {"credit", "breast_cancer"} <= set(datasets)
    project = original.project("demo").info
    audit_before = len(original.audit())
    original.close()
    archive = tmp_path / "guest.tar.gz"

    saved = _cli("backup", "--home", str(demo / "guest"), "--out", str(archive))
    assert saved.returncode == 0, saved.stderr
    assert "SQLite snapshot included" in saved.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"home/node.json", "home/api_token", "home/tls/party.key", "home/fedbench.db"} <= names
    assert "home/secrets/audit.key" in names
    assert not any(n.endswith(("node.pid", "fedbench.db-wal", "node.log")) for n in names)

    new_home = tmp_path / "restored"
    restored = _cli("restore", "--archive", str(archive), "--home", str(new_home))
    assert restored.returncode == 0, restored.stderr
    assert f"fedbench node start --home {new_home}" in restored.stdout
    home = NodeHome(new_home)
    assert stat.S_IMODE((home.tls_dir / "party.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.token_file.stat().st_mode) == 0o600
    assert home.api_token() == NodeHome(demo / "guest").api_token()
    assert stat.S_IMODE(home.audit_key_file.stat().st_mode) == 0o600
    assert home.audit_key_file.read_bytes() == NodeHome(demo / "guest").audit_key_file.read_bytes()
    config = home.load_config()
    federation_port, control_port = free_ports(2)
    home.save_config(
        config.model_copy(update={"federation_port": federation_port, "control_port": control_port})
    )

    node = subprocess.Popen(
        [sys.executable, "-m", "fedbench", "node", "start", "--home", str(new_home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_answering(home, node)
        wb = fedbench.connect(home=new_home)
        assert wb.party == "guest"
        assert {d.name: d.fingerprint for d in wb.datasets.list()} == datasets
        for info in wb.datasets.list():
            frame = wb.datasets.get(info.name).to_pandas()
            assert table_fingerprint(frame, info.id_column, info.label_column) == datasets[info.name]
        again = wb.project("demo").info
        assert again["id"] == project["id"] and again["members"] == project["members"]
        assert again["state"] == "active"
        assert len(wb.project("demo").runs()) == 1
        assert len(wb.audit()) >= audit_before
        wb.close()
        verify = _cli("audit", "verify", "--home", str(new_home))
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=30)
    assert node.returncode == 0


def _wait_answering(home: NodeHome, node: subprocess.Popen[str], timeout: float = 60.0) -> None:
    client = NodeClient.for_home(home)
    give_up = time.monotonic() + timeout
    try:
        while True:
            assert node.poll() is None, f"the restored node exited: {node.communicate()[1]}"
            try:
                client.health(timeout=2.0)
                return
            except FedbenchError:
                assert time.monotonic() < give_up, "the restored node never answered"
                time.sleep(0.2)
    finally:
        client.close()


def test_restore_refuses_a_home_in_use_and_unsafe_archives(demo: Path, tmp_path: Path) -> None:
    archive = tmp_path / "guest.tar.gz"
    assert _cli("backup", "--home", str(demo / "guest"), "--out", str(archive)).returncode == 0
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("mine")
    refused = _cli("restore", "--archive", str(archive), "--home", str(tmp_path / "busy"))
    assert refused.returncode == 2 and "not an empty directory" in refused.stderr
    assert (tmp_path / "busy" / "something").read_text() == "mine"

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(archive) as good, tarfile.open(evil, "w:gz") as bad:
        for member in good.getmembers():
            bad.addfile(member, good.extractfile(member) if member.isfile() else None)
        escape = tarfile.TarInfo("home/../../escaped")
        escape.size = 3
        bad.addfile(escape, io.BytesIO(b"bad"))
    with pytest.raises(BackupError, match="refusing"):
        restore(evil, tmp_path / "target")
    assert not (tmp_path / "target").exists() and not (tmp_path / "escaped").exists()

    with pytest.raises(BackupError, match="not a readable|no fedbench-backup.json|cannot restore"):
        restore(demo / "guest" / "node.json", tmp_path / "target2")
