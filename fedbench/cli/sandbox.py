"""`fedbench sandbox up|down|status`: a real federation on this machine (two parties, three with --arbiter, or
N branches and an aggregator with --parties N)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from fedbench import sandbox

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register `fedbench sandbox ...`."""
    parser = sub.add_parser("sandbox", help="run a local federation of party nodes")
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="create and start the sandbox nodes (idempotent)")
    up.add_argument("--party", action="append", dest="parties", help="party names (default: guest, host)")
    up.add_argument(
        "--parties",
        type=int,
        default=0,
        dest="horizontal",
        metavar="N",
        help="a horizontal sandbox: N branches (at least 3) with their own rows and an aggregator, project 'branches'",
    )
    up.add_argument("--no-demo-data", action="store_true", help="do not register the demo data sets")
    up.add_argument(
        "--demo-rows",
        type=int,
        default=None,
        help=(
            "rows of the demo credit table when first registered (fewer: a quicker demo; at least 1000; "
            f"default: ${sandbox.DEMO_ROWS_ENV}, else {sandbox.DEMO_CREDIT_ROWS})"
        ),
    )
    up.add_argument(
        "--warm-workers",
        type=int,
        default=None,
        help=(
            "worker processes each new node keeps started for the next steps (default: "
            f"${sandbox.WARM_WORKERS_ENV}, else the node's default); 0 starts each step's worker with it"
        ),
    )
    up.add_argument(
        "--arbiter",
        action="store_true",
        help="a new sandbox gets a third node, 'arbiter', that brings no data and joins the demo project",
    )
    up.add_argument(
        "--dask",
        action="store_true",
        help="start a local Dask cluster (scheduler and workers, TLS with its own CA) for the first party: its "
        "PSI masking and Paillier operations run there",
    )
    up.add_argument(
        "--dask-workers", type=int, default=1, help="worker processes of that cluster (default 1)"
    )
    up.set_defaults(func=_up)
    down = actions.add_parser("down", help="stop the sandbox nodes")
    down.set_defaults(func=_down)
    status = actions.add_parser("status", help="show each node's endpoints and home")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)
    for action in (up, down, status):
        action.add_argument("--home", default=None, help="sandbox home (default: ~/.fedbench/sandbox)")


def _print(nodes: list[sandbox.NodeStatus], home: str | None) -> None:
    if not nodes:
        print("no sandbox here; start one with `fedbench sandbox up`")
    for n in nodes:
        state = f"running (pid {n.pid})" if n.running else "stopped"
        print(
            f"{n.party:<10} {state:<22} federation {n.federation_address:<21} control {n.control_address:<21} "
            f"home {n.home}"
        )
        if n.dask_scheduler:
            print(f"{'':<10} dask scheduler {n.dask_scheduler}  dashboard {n.dask_dashboard or '-'}")
    if any(not n.running for n in nodes):
        why = "stopped with `fedbench sandbox down`; " if sandbox.stopped_on_purpose(home) else ""
        print(f"{why}`{_up_command(home)}` starts what is stopped")


def _up_command(home: str | None) -> str:
    """`fedbench sandbox up`, with the `--home` it was given."""
    return "fedbench sandbox up" if home is None else f"fedbench sandbox up --home {shlex.quote(home)}"


def _up(args: argparse.Namespace) -> int:
    parties = tuple(args.parties) if args.parties else None
    nodes = sandbox.up(
        args.home,
        parties=parties,
        demo_data=not args.no_demo_data,
        arbiter=args.arbiter,
        demo_rows=args.demo_rows,
        warm_workers=args.warm_workers,
        horizontal=args.horizontal,
        dask=args.dask,
        dask_workers=args.dask_workers,
    )
    _print(nodes, args.home)
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = sandbox.down(args.home)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    if sandbox.status(args.home):
        print(
            f"they stay stopped (fedbench.connect() will not restart them) until `{_up_command(args.home)}`"
        )
    return 0


def _status(args: argparse.Namespace) -> int:
    nodes = sandbox.status(args.home)
    if args.json:
        print(sandbox.as_json(nodes))
    else:
        _print(nodes, args.home)
    return 0
