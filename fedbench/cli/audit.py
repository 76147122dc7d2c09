"""`fedbench audit verify|show`: check a node's tamper-evident audit log, or print it."""

from __future__ import annotations

import argparse
from typing import Any

from fedbench.node.audit import AuditLog
from fedbench.node.config import NodeHome
from fedbench.store import Database

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register `fedbench audit ...`."""
    parser = sub.add_parser("audit", help="check or show a node's audit log")
    actions = parser.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="walk the hash chain; exit 1 at the first tampered entry")
    verify.set_defaults(func=_verify)
    show = actions.add_parser("show", help="print the audit log")
    show.add_argument("--last", type=int, default=50)
    show.set_defaults(func=_show)
    for action in (verify, show):
        action.add_argument("--home", required=True, help="the node's home directory")


def _log(home: str) -> tuple[AuditLog, Database]:
    node_home = NodeHome(home)
    db = Database(node_home.database_url(node_home.load_config()))
    return AuditLog(db), db


def _verify(args: argparse.Namespace) -> int:
    log, db = _log(args.home)
    try:
        check = log.verify()
    finally:
        db.close()
    if check.ok:
        print(f"audit log intact: {check.entries} entries")
        return 0
    print(f"audit log TAMPERED at entry {check.first_bad_id}: {check.problem}")
    return 1


def _show(args: argparse.Namespace) -> int:
    log, db = _log(args.home)
    try:
        print(log.frame().tail(args.last).to_string(index=False))
    finally:
        db.close()
    return 0
