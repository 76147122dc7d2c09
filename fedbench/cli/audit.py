"""`fedbench audit verify|show|export-heads`: check a node's keyed audit chain, print it, or export its anchors."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from fedbench.node.audit import AuditLog
from fedbench.node.audit_anchor import ask_partners, export_heads, load_partner_heads
from fedbench.node.config import NodeHome
from fedbench.store import Database

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register `fedbench audit ...`."""
    parser = sub.add_parser("audit", help="check or show a node's audit log")
    actions = parser.add_subparsers(dest="action", required=True)
    verify = actions.add_parser(
        "verify", help="walk the keyed chain and its anchors; exit 1 at the first tampered entry"
    )
    verify.add_argument(
        "--partner-heads",
        action="append",
        default=[],
        metavar="FILE",
        help="a partner's `fedbench audit export-heads` file: the heads of ours it holds must match",
    )
    verify.add_argument(
        "--ask-partners",
        action="store_true",
        help="ask each partner of our active projects (over the federation) for the heads of ours it holds",
    )
    verify.set_defaults(func=_verify)
    show = actions.add_parser("show", help="print the audit log")
    show.add_argument("--last", type=int, default=50)
    show.set_defaults(func=_show)
    export = actions.add_parser(
        "export-heads", help="write the audit heads partners handed this node (JSON), for their verify"
    )
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(func=_export)
    for action in (verify, show, export):
        action.add_argument("--home", required=True, help="the node's home directory")


def _log(home: str) -> tuple[AuditLog, Database, str]:
    node_home = NodeHome(home)
    config = node_home.load_config()
    db = Database(node_home.database_url(config))
    return AuditLog.for_home(db, node_home, create_key=False), db, config.party


def _verify(args: argparse.Namespace) -> int:
    log, db, party = _log(args.home)
    asked: list[str] = []
    try:
        heads = [h for path in args.partner_heads for h in load_partner_heads(Path(path), party)]
        if args.ask_partners:
            held, asked = ask_partners(NodeHome(args.home), db, party)
            heads.extend(held)
        check = log.verify(heads)
    finally:
        db.close()
    for note in (*check.notes, *asked):
        print(f"note: {note}")
    if check.ok:
        anchors = f", {len(heads)} partner heads matched" if args.partner_heads or args.ask_partners else ""
        print(f"audit log intact: {check.entries} entries{anchors}")
        return 0
    print(f"audit log TAMPERED at entry {check.first_bad_id}: {check.problem}")
    return 1


def _show(args: argparse.Namespace) -> int:
    log, db, _ = _log(args.home)
    try:
        print(log.frame().tail(args.last).to_string(index=False))
    finally:
        db.close()
    return 0


def _export(args: argparse.Namespace) -> int:
    log, db, party = _log(args.home)
    try:
        text = json.dumps(export_heads(log, party), indent=2) + "\n"
    finally:
        db.close()
    if not args.out:
        print(text, end="")
        return 0
    target = Path(args.out)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, target)
    print(f"wrote {len(json.loads(text)['heads'])} audit heads held by {party} to {target}")
    return 0
