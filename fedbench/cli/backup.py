"""`fedbench backup` and `fedbench restore`: copy a party node's home to one archive, and back into a new home."""

from __future__ import annotations

import argparse
from typing import Any

from fedbench.node.backup import BackupSummary, backup, restore

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register `fedbench backup` and `fedbench restore`."""
    save = sub.add_parser(
        "backup",
        help="archive a node home (store, artifacts, certificates, secrets); the node may keep running",
    )
    save.add_argument("--home", required=True, help="the node's home directory (holds node.json)")
    save.add_argument("--out", required=True, metavar="FILE.tar.gz", help="the archive to write (mode 0600)")
    save.set_defaults(func=_backup)

    load = sub.add_parser("restore", help="unpack a backup into a new node home")
    load.add_argument(
        "--archive", required=True, metavar="FILE.tar.gz", help="an archive of `fedbench backup`"
    )
    load.add_argument("--home", required=True, help="the new home: a directory that is missing or empty")
    load.set_defaults(func=_restore)


def _print(summary: BackupSummary, verb: str) -> None:
    print(
        f"{verb} party {summary.party}: {summary.files} files, {summary.bytes / 1e6:.1f} MB; "
        f"database: {summary.database}"
    )
    for note in summary.notes:
        print(f"note: {note}")


def _backup(args: argparse.Namespace) -> int:
    summary = backup(args.home, args.out)
    _print(summary, f"wrote {summary.archive} for")
    return 0


def _restore(args: argparse.Namespace) -> int:
    summary = restore(args.archive, args.home)
    _print(summary, f"restored {summary.home} for")
    print(f"start it with: fedbench node start --home {summary.home}")
    return 0
