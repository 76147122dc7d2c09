"""The node's artifact directory: content-addressed files written atomically, read back by relative path.

A file's name is the sha256 of its content (in a two-character fan-out folder), so identical content is stored
once and corruption is detectable; writes go to a temp file, are fsynced and then renamed, so a crash never
leaves a half-written artifact under its final name (only a `.tmp-*` file that `clean_temp()` removes).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import pandas as pd
import pyarrow as pa

from fedbench.errors import NotFound, StoreError
from fedbench.store.tables import table_from_parquet_bytes, table_to_parquet_bytes

TEMP_PREFIX = ".tmp-"
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9_-]{1,16}){0,3}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    """A file under the artifact root: `path` relative to the root (forward slashes), its sha256 and size."""

    path: str
    sha256: str
    size: int


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ArtifactFiles:
    """Content-addressed, atomically written files under one root directory."""

    def __init__(self, root: Path | str) -> None:
        """Use (and create if needed) the directory `root`."""
        self.root = Path(root).expanduser().resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the artifact directory '{self.root}': {exc.strerror or exc}; "
                "check the node home path and its permissions"
            ) from exc

    def absolute(self, path: str | os.PathLike[str]) -> Path:
        """Return the absolute path of relative `path`; StoreError if it is absolute or escapes the root."""
        text = os.fspath(path)
        posix = PurePosixPath(text)
        if (
            not text
            or "\\" in text
            or posix.is_absolute()
            or PureWindowsPath(text).drive
            or ".." in posix.parts
            or posix == PurePosixPath(".")
        ):
            raise StoreError(
                f"artifact path {text!r} is refused: give a relative path with forward slashes and no '..', "
                "such as one returned by write_bytes()"
            )
        full = self.root / posix
        if not full.resolve().is_relative_to(self.root):
            raise StoreError(f"artifact path {text!r} leads outside '{self.root}' (through a link); refused")
        return full

    def write_bytes(self, data: bytes, *, suffix: str = ".bin") -> StoredFile:
        """Store `data` atomically, named by its sha256 plus `suffix`; storing it again is a no-op."""
        if not _SUFFIX.match(suffix):
            raise StoreError(
                f"artifact suffix {suffix!r} is not valid; use something like '.bin' or '.parquet'"
            )
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha}{suffix}"
        final = self.root / sha[:2] / f"{sha}{suffix}"
        stored = StoredFile(path=rel, sha256=sha, size=len(data))
        if final.is_file() and self.verify(stored):
            return stored
        tmp_name: str | None = None
        try:
            fd, tmp_name = self._mkstemp(final.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, final)
            tmp_name = None
            _fsync_dir(final.parent)
        except OSError as exc:
            raise StoreError(
                f"cannot write artifact '{final}': {exc.strerror or exc}; "
                f"check free disk space and the permissions of '{self.root}'"
            ) from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
        return stored

    @staticmethod
    def _mkstemp(folder: Path) -> tuple[int, str]:
        """Create a temp file in `folder`, re-creating the folder if a concurrent delete() just removed it."""
        for _ in range(3):
            folder.mkdir(exist_ok=True)
            try:
                return tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=folder)
            except FileNotFoundError:
                continue
        return tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=folder)

    def write_table(self, df: pd.DataFrame) -> StoredFile:
        """Store `df` (without its index) as a parquet file, atomically and content-addressed."""
        return self.write_bytes(table_to_parquet_bytes(df), suffix=".parquet")

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """Return the content of the artifact at relative `path`; NotFound if it does not exist."""
        full = self.absolute(path)
        try:
            return full.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"artifact file {os.fspath(path)!r} not found under '{self.root}'") from exc
        except OSError as exc:
            raise StoreError(
                f"cannot read artifact '{full}': {exc.strerror or exc}; check the file and its permissions"
            ) from exc

    def read_table(self, path: str | os.PathLike[str]) -> pd.DataFrame:
        """Read the parquet artifact at relative `path` into a DataFrame."""
        data = self.read_bytes(path)
        try:
            return table_from_parquet_bytes(data)
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise StoreError(
                f"artifact {os.fspath(path)!r} is not a readable parquet file ({exc}); it may be corrupted"
            ) from exc

    def verify(self, stored: StoredFile) -> bool:
        """Return True if the file exists and its size and sha256 match `stored`."""
        full = self.absolute(stored.path)
        try:
            if full.stat().st_size != stored.size:
                return False
            return _hash_file(full) == (stored.sha256, stored.size)
        except OSError:
            return False

    def delete(self, path: str | os.PathLike[str]) -> None:
        """Remove the artifact at relative `path` (no error if already gone) and its folder if left empty."""
        full = self.absolute(path)
        try:
            full.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot delete artifact '{full}': {exc.strerror or exc}; check permissions"
            ) from exc
        if full.parent != self.root:
            with contextlib.suppress(OSError):
                full.parent.rmdir()

    def clean_temp(self, *, min_age_seconds: float = 0.0) -> int:
        """Delete temp files left by interrupted writes (older than `min_age_seconds`); return how many.

        Call it when no other process is writing, or give a minimum age so in-flight writes are spared.
        """
        removed = 0
        cutoff = time.time() - min_age_seconds
        for tmp in self.root.rglob(f"{TEMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if tmp.is_file() and tmp.stat().st_mtime <= cutoff:
                    tmp.unlink()
                    removed += 1
        return removed

    def __repr__(self) -> str:
        return f"ArtifactFiles('{self.root}')"
