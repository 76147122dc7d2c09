"""Backup and restore of a party node's home: one .tar.gz with a consistent copy of what the node needs.

The archive holds node.json, the control-API token, `tls/` (party key, certificate, CA), `secrets/` (project
tokens, the audit MAC key without which the restored audit chain cannot be verified, and the audit heads handed
to partners), `artifacts/` (content-addressed tables and models), job logs, and, when the store is SQLite, a
snapshot of the database taken with SQLite's online backup API, so the node may keep running meanwhile (the
snapshot is taken first: every artifact it names was written before it, and artifacts are never rewritten).
A database at any other URL is not in the archive: back it up with its own tools (pg_dump for PostgreSQL).

The archive holds private keys and tokens, so it is written with mode 0600. `restore` unpacks into a new
(empty) home, accepts only regular files and directories under the archive's `home/` folder, and keeps each
file's mode. A revocation list kept outside the home (`crl_path`) travels in the archive and is restored as
`tls/crl.pem` when its original path does not exist where the home is restored.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from sqlalchemy.engine import make_url

from fedbench import __version__
from fedbench.errors import FedbenchError
from fedbench.node.config import NodeHome
from fedbench.store.database import mask_url

__all__ = ["BackupError", "BackupSummary", "backup", "restore"]

MANIFEST = "fedbench-backup.json"
_HOME = "home"
_CRL = "crl.pem"
_SKIPPED = {
    "node.pid",
    "node.log",
    ".lock",
    "fedbench.db",
    "fedbench.db-wal",
    "fedbench.db-shm",
    "fedbench.db-journal",
}


class BackupError(FedbenchError):
    """A backup cannot be written, or an archive cannot be restored (not ours, unsafe, or target not empty)."""

    code = "backup"


@dataclass(frozen=True)
class BackupSummary:
    """What a backup or restore did: the party, how many files and bytes, and what the operator must know."""

    party: str
    home: Path
    archive: Path
    files: int
    bytes: int
    database: str
    notes: list[str] = field(default_factory=list)


def backup(home: str | os.PathLike[str], out: str | os.PathLike[str]) -> BackupSummary:
    """Write a consistent archive of the node home `home` to `out` (a .tar.gz, mode 0600)."""
    node_home = NodeHome(home)
    config = node_home.load_config()
    url = make_url(node_home.database_url(config))
    target = Path(out).expanduser().absolute()
    if target.exists() and target.is_dir():
        raise BackupError(
            f"{target} is a directory; give the archive's file name, e.g. {target / 'node.tar.gz'}"
        )
    notes: list[str] = []
    manifest: dict[str, object] = {
        "format": 1,
        "fedbench": __version__,
        "party": config.party,
        "created_at": datetime.now(UTC).isoformat(),
    }
    tmp = target.with_name(f".{target.name}.part")
    files = size = 0
    with tempfile.TemporaryDirectory(prefix="fedbench-backup-") as scratch:
        if url.get_backend_name() == "sqlite":
            snapshot = Path(scratch) / "fedbench.db"
            _sqlite_snapshot(Path(url.database or ""), snapshot)
            manifest["database"] = {"kind": "sqlite", "in_archive": "home/fedbench.db", "url": str(url)}
            database = "SQLite snapshot included"
        else:
            manifest["database"] = {"kind": url.get_backend_name(), "url": mask_url(url)}
            database = f"not included: {mask_url(url)}"
            notes.append(
                f"the metadata database {mask_url(url)} is not in the archive; back it up with its own tools "
                f"(for PostgreSQL: pg_dump) at the same time"
            )
        crl = _external_crl(node_home, config.crl_path)
        if crl is not None:
            manifest["crl_path"] = str(crl)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
                tar.add(node_home.root, arcname=_HOME, recursive=False)
                for path in _home_files(node_home.root):
                    tar.add(
                        path,
                        arcname=f"{_HOME}/{path.relative_to(node_home.root).as_posix()}",
                        recursive=False,
                    )
                    if path.is_file():
                        files += 1
                        size += path.stat().st_size
                if url.get_backend_name() == "sqlite":
                    tar.add(snapshot, arcname=f"{_HOME}/fedbench.db")
                    files += 1
                    size += snapshot.stat().st_size
                if crl is not None:
                    tar.add(crl, arcname=_CRL)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BackupError(f"cannot write the backup {target}: {exc}") from exc
    return BackupSummary(config.party, node_home.root, target, files, size, database, notes)


def restore(archive: str | os.PathLike[str], home: str | os.PathLike[str]) -> BackupSummary:
    """Unpack a backup into `home`, which must not exist yet or be empty; returns what was restored."""
    source = Path(archive).expanduser().absolute()
    root = Path(home).expanduser().absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise BackupError(f"{root} is not an empty directory; restore into a new home")
    existed = root.exists()
    try:
        with tarfile.open(source, mode="r:gz") as tar:
            manifest = _read_manifest(tar, source)
            files, size = _unpack(tar, root, source)
            notes = _fix_config(NodeHome(root), tar, manifest)
    except BaseException as exc:
        _clear(root, existed)
        if isinstance(exc, (OSError, EOFError, ValueError, tarfile.TarError)):
            raise BackupError(f"cannot restore {source} into {root}: {exc}") from exc
        raise
    database = manifest.get("database", {})
    kind = database.get("kind") if isinstance(database, dict) else None
    if kind == "sqlite":
        text = "SQLite snapshot restored"
    else:
        url = database.get("url") if isinstance(database, dict) else None
        text = f"not included: {url}"
        notes.append(f"the metadata database {url} was not in the archive: restore it with its own tools")
    return BackupSummary(str(manifest.get("party")), root, source, files, size, text, notes)


def _clear(root: Path, keep_root: bool) -> None:
    """Remove what a failed restore wrote, so a refused archive leaves nothing behind."""
    if not root.exists():
        return
    if not keep_root:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _unpack(tar: tarfile.TarFile, root: Path, source: Path) -> tuple[int, int]:
    """Check every member, then write the home's files and folders; returns (files, bytes)."""
    members = [m for m in tar.getmembers() if m.name not in (MANIFEST, _CRL)]
    for member in members:
        _check_member(member, source)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = size = 0
    for member in sorted(members, key=lambda m: m.name):
        path = root.joinpath(*PurePosixPath(member.name).relative_to(_HOME).parts)
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(member.mode & 0o777)
            continue
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _extract(tar, member, path)
        files += 1
        size += member.size
    root.chmod(0o700)
    return files, size


def _home_files(root: Path) -> list[Path]:
    """Every directory and regular file of the home, but the live database, pid file, lock and node log."""
    found = []
    for current, dirs, names in os.walk(root):
        dirs.sort()
        base = Path(current)
        for name in dirs:
            found.append(base / name)
        for name in sorted(names):
            path = base / name
            if base == root and name in _SKIPPED:
                continue
            if name.endswith(".part") or name.endswith(".tmp") or not path.is_file() or path.is_symlink():
                continue
            found.append(path)
    return found


def _sqlite_snapshot(database: Path, snapshot: Path) -> None:
    if not database.is_file():
        raise BackupError(f"the SQLite database {database} does not exist; is this node home in use?")
    try:
        src = sqlite3.connect(database, timeout=30.0)
        try:
            dst = sqlite3.connect(snapshot)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot take a snapshot of the SQLite database {database}: {exc}") from exc


def _external_crl(node_home: NodeHome, crl_path: str | None) -> Path | None:
    if not crl_path:
        return None
    path = Path(crl_path).expanduser().absolute()
    if not path.is_file() or node_home.root in path.parents:
        return None
    return path


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def _read_manifest(tar: tarfile.TarFile, source: Path) -> dict[str, object]:
    try:
        handle = tar.extractfile(MANIFEST)
    except KeyError:
        handle = None
    if handle is None:
        raise BackupError(f"{source} is not a fedbench backup: it has no {MANIFEST}")
    manifest: dict[str, object] = json.loads(handle.read())
    if manifest.get("format") != 1:
        raise BackupError(f"{source} is a backup of format {manifest.get('format')!r}; this fedbench reads 1")
    return manifest


def _check_member(member: tarfile.TarInfo, source: Path) -> None:
    path = PurePosixPath(member.name)
    unsafe = path.is_absolute() or ".." in path.parts or not (path.parts and path.parts[0] == _HOME)
    if unsafe or not (member.isfile() or member.isdir()):
        raise BackupError(
            f"{source} holds {member.name!r}, which is not a plain file or folder under {_HOME}/; "
            "refusing to restore it"
        )


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    handle = tar.extractfile(member)
    if handle is None:
        raise BackupError(f"cannot read {member.name} from the archive")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, member.mode & 0o777)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(handle, out, 1 << 20)
    os.utime(path, (member.mtime, member.mtime))


def _fix_config(node_home: NodeHome, tar: tarfile.TarFile, manifest: dict[str, object]) -> list[str]:
    """Point the restored node.json at what now lives in the home (SQLite file, revocation list)."""
    config = node_home.load_config()
    notes = []
    update: dict[str, object] = {}
    database = manifest.get("database")
    if isinstance(database, dict) and database.get("kind") == "sqlite" and config.database_url:
        update["database_url"] = None
        notes.append(f"the SQLite database now lives in the home ({node_home.root / 'fedbench.db'})")
    crl_path = manifest.get("crl_path")
    if isinstance(crl_path, str) and not Path(crl_path).exists():
        handle = tar.extractfile(_CRL)
        if handle is not None:
            node_home.tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            (node_home.tls_dir / "crl.pem").write_bytes(handle.read())
            update["crl_path"] = None
            notes.append(
                f"the revocation list {crl_path} is not on this machine: a copy is in tls/crl.pem; "
                "replace it with the CA's current crl.pem"
            )
    if update:
        node_home.save_config(config.model_copy(update=update))
    return notes
