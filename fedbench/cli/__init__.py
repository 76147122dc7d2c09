"""The `fedbench` command: one sub-command module per noun (node, sandbox, certs, users, audit, backup, model)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fedbench.errors import FedbenchError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each sub-command module registers itself through `add_parser`."""
    from fedbench.cli import audit, backup, certs, dashboards, model, node, sandbox, users

    parser = argparse.ArgumentParser(prog="fedbench", description="Federated learning workbench.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (node, sandbox, certs, users, audit, backup, dashboards, model):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fedbench` console script; errors of ours print one line, not a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FedbenchError as exc:
        print(f"fedbench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
