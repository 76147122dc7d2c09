"""`fedbench users add|list|remove`: manage who may use a node (through the running node, as its admin)."""

from __future__ import annotations

import argparse
from typing import Any

from fedbench.client.control import NodeClient

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register `fedbench users ...`."""
    parser = sub.add_parser("users", help="manage the users of a node")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a user and print its token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", choices=("admin", "analyst", "viewer"), required=True)
    add.set_defaults(func=_add)
    listing = actions.add_parser("list", help="list users and roles")
    listing.set_defaults(func=_list)
    remove = actions.add_parser("remove", help="delete a user")
    remove.add_argument("name")
    remove.set_defaults(func=_remove)
    for action in (add, listing, remove):
        action.add_argument("--home", required=True, help="the node's home directory")


def _add(args: argparse.Namespace) -> int:
    answer = NodeClient.for_home(args.home).call("users.add", name=args.name, role=args.role)
    print(f"user {answer['name']} ({answer['role']}) token: {answer['token']}")
    print("give it to the user: fedbench.connect(home=..., token=...); it is not shown again")
    return 0


def _list(args: argparse.Namespace) -> int:
    for user in NodeClient.for_home(args.home).call("users.list"):
        print(f"{user['name']:<24} {user['role']}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    NodeClient.for_home(args.home).call("users.remove", name=args.name)
    print(f"removed {args.name}")
    return 0
