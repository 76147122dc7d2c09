"""`fedbench node init|start`: set up and run one party node.

`start` logs as text for people by default; `--log-format json` writes one JSON object per line (ts, level,
logger, message, and exc for tracebacks) for log collectors.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from fedbench.node.config import NodeConfig, NodeHome

__all__ = ["JsonLinesFormatter", "add_parser"]


def add_parser(sub: Any) -> None:
    """Register `fedbench node ...`."""
    parser = sub.add_parser("node", help="run a party node")
    actions = parser.add_subparsers(dest="action", required=True)

    start = actions.add_parser("start", help="serve the federation and control APIs until SIGTERM")
    start.add_argument("--home", required=True, help="the node's home directory (holds node.json)")
    start.add_argument("--log-level", default="INFO")
    start.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="json: one JSON object per line"
    )
    start.add_argument(
        "--dask-scheduler",
        default=None,
        metavar="tls://HOST:PORT",
        help="run heavy work (PSI masking, Paillier vector operations) on the party's Dask cluster",
    )
    start.set_defaults(func=_start)

    init = actions.add_parser("init", help="write a node.json for a new party")
    init.add_argument("--home", required=True)
    init.add_argument("--party", required=True)
    init.add_argument("--federation-port", type=int, default=50051)
    init.add_argument("--control-port", type=int, default=50052)
    init.add_argument("--federation-host", default="0.0.0.0")
    init.add_argument("--advertised-address", default=None, help="host:port peers use to reach this node")
    init.add_argument("--peer", action="append", default=[], metavar="NAME=HOST:PORT")
    init.add_argument("--database-url", default=None)
    init.add_argument("--health-port", type=int, default=None, help="serve GET /healthz over plain HTTP")
    init.set_defaults(func=_init)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, message, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _start(args: argparse.Namespace) -> int:
    from fedbench.compute.config import SCHEDULER_ENV
    from fedbench.errors import ConfigError
    from fedbench.node import fork_server
    from fedbench.node.server import PartyNode
    from fedbench.node.worker_pool import WARM_MODULES

    if args.dask_scheduler:
        if not args.dask_scheduler.startswith("tls://"):
            raise ConfigError(
                f"--dask-scheduler must be tls://host:port (the party's keys travel only over TLS with its CA), "
                f"got {args.dask_scheduler!r}"
            )
        os.environ[SCHEDULER_ENV] = args.dask_scheduler

    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    fork_server.start_early(WARM_MODULES)
    PartyNode(args.home).serve_forever()
    _exit_now()
    return 0


def _exit_now() -> None:
    """Leave at once, the node having stopped cleanly (store closed, step workers ended, pid file removed).

    The interpreter's own teardown would only garbage-collect every loaded module (pandas, SQLAlchemy, gRPC):
    a second or more of CPU that keeps `fedbench sandbox down` and a deployment's restart waiting.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _init(args: argparse.Namespace) -> int:
    peers = dict(item.split("=", 1) for item in args.peer)
    config = NodeConfig(
        party=args.party,
        federation_host=args.federation_host,
        federation_port=args.federation_port,
        advertised_address=args.advertised_address,
        control_port=args.control_port,
        peers=peers,
        database_url=args.database_url,
        health_port=args.health_port,
    )
    home = NodeHome(args.home)
    home.save_config(config)
    home.api_token(create=True)
    print(f"wrote {home.config_file}; now put the party's TLS files in {home.tls_dir} (`fedbench certs ...`)")
    return 0
