"""A plain-HTTP health endpoint for orchestrators: Docker healthchecks, Kubernetes probes, load balancers.

The control API is gRPC on loopback and the federation API wants a client certificate, so neither suits a
probe. When `health_port` is set in node.json, the node also serves `GET /healthz` over plain HTTP on its
federation host, from one small thread: 200 and a JSON body while the node serves and its database answers,
503 otherwise. The body tells nothing secret: party, version, uptime, addresses and a word per check.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from fedbench import __version__
from fedbench.errors import ConfigError

if TYPE_CHECKING:
    from fedbench.node.server import PartyNode

__all__ = ["HEALTH_PATH", "HealthServer", "report"]

HEALTH_PATH = "/healthz"
log = logging.getLogger("fedbench.node.health")


def report(node: PartyNode, started: float) -> dict[str, Any]:
    """The node's health as the endpoint answers it; `ok` is true when every check passed."""
    checks = {"serving": "ok" if node.serving else "stopped", "database": "ok"}
    try:
        with node.db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        log.warning("health check: database %s does not answer: %s", node.db.url, exc)
        checks["database"] = "unreachable"
    return {
        "ok": all(value == "ok" for value in checks.values()),
        "party": node.config.party,
        "version": __version__,
        "uptime_s": round(time.monotonic() - started, 1),
        "federation_address": node.config.federation_address,
        "checks": checks,
    }


class HealthServer:
    """Serves `GET /healthz` for one node on (host, port) from a daemon thread."""

    def __init__(self, node: PartyNode, host: str, port: int) -> None:
        self._started = time.monotonic()
        handler = _handler_for(node, self._started)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve the health endpoint on {host}:{port} ({exc.strerror}); "
                "pick a free health_port in node.json"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fedbench-health", daemon=True
        )

    @property
    def address(self) -> str:
        """host:port the endpoint listens on (the real port when 0 was asked for)."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


def _handler_for(node: PartyNode, started: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"fedbench/{__version__}"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != HEALTH_PATH:
                self._answer(404, {"ok": False, "error": f"not found; the health endpoint is {HEALTH_PATH}"})
                return
            body = report(node, started)
            self._answer(200 if body["ok"] else 503, body)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
