"""The `fedbench` command: one sub-command module per noun (node, sandbox, certs, users, audit, backup, model)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fedbench.errors import FedbenchError

MODULES = ("node", "sandbox", "certs", "users", "audit", "backup", "dashboards", "model")
"""The modules of `fedbench.cli` that register sub-commands, each the one of its name (`backup` `restore` too)."""
_MODULE_OF = {"restore": "backup"}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; each sub-command module registers itself through `add_parser`. With `only` (a
    sub-command's name) just that module is imported: `fedbench dashboards` need not load the database layer."""
    parser = argparse.ArgumentParser(prog="fedbench", description="Federated learning workbench.")
    sub = parser.add_subparsers(dest="command", required=True)
    module = _MODULE_OF.get(only or "", only)
    for name in (module,) if module in MODULES else MODULES:
        importlib.import_module(f"fedbench.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fedbench` console script; errors of ours print one line, not a traceback."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    try:
        return int(args.func(args) or 0)
    except FedbenchError as exc:
        print(f"fedbench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
