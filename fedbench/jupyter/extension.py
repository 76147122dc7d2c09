"""The server extension's work: pick this Jupyter server's node, bring it up, serve the sidebar's API.

Which node: `c.Fedbench.home` (or `$FEDBENCH_HOME`) names a node home; `c.Fedbench.sandbox` (or
`$FEDBENCH_SANDBOX=1`), or no home at all, means the local sandbox federation in `c.Fedbench.sandbox_home`
(or `$FEDBENCH_SANDBOX_HOME`, default `~/.fedbench/sandbox`), working as its first party unless
`c.Fedbench.party` says otherwise. The node is brought up in a background thread, so JupyterLab starts at
once: the sandbox through `fedbench.sandbox.autostart` (made on a first run, never restarted after
`fedbench sandbox down`), a node home by starting `fedbench node start`
when its control API does not answer. With `c.Fedbench.start_node = False` (`$FEDBENCH_START_NODE=0`, as in
docker compose, where the node has its own container) the extension only looks for the node.

The status answer holds no secret: the party, the node's state and addresses, each peer's reachability
(pinged live over the federation channel), and the Voila links of the dashboards under the server's root.
The server acts on the node as the user of `c.Fedbench.token` (`$FEDBENCH_TOKEN`, made by `fedbench users
add`), else as the node's admin; the sidebar's handlers (`handlers.py`) read and act through one `Workbench`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from traitlets import Bool, Float, Unicode, default
from traitlets.config import Configurable

from fedbench import sandbox
from fedbench.client.control import NodeClient
from fedbench.client.workbench import Workbench
from fedbench.errors import ConfigError, FedbenchError, NodeError, NodeUnavailable
from fedbench.jupyter.cache import Snapshots
from fedbench.jupyter.handlers import routes
from fedbench.node.config import NodeHome

__all__ = ["Fedbench", "NodeWatch", "load"]

T = TypeVar("T")
_TRUE = ("1", "true", "yes", "on")


def _env_flag(name: str, fallback: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return fallback if not value else value in _TRUE


class Fedbench(Configurable):
    """Which node this Jupyter server works with: `c.Fedbench.<trait>` in a Jupyter config file."""

    home = Unicode(None, allow_none=True, config=True, help="A node home (holds node.json); $FEDBENCH_HOME.")
    sandbox = Bool(
        config=True, help="Use the local sandbox federation ($FEDBENCH_SANDBOX=1); also when no home is set."
    )
    sandbox_home = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The sandbox home; $FEDBENCH_SANDBOX_HOME, else ~/.fedbench/sandbox.",
    )
    party = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The sandbox party to work as ($FEDBENCH_PARTY; default: the first).",
    )
    start_node = Bool(
        config=True,
        help="Start the node or sandbox when it does not answer ($FEDBENCH_START_NODE, default 1).",
    )
    token = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The node user's API token the server acts with ($FEDBENCH_TOKEN; default: the node's admin).",
    )
    start_timeout = Float(120.0, config=True, help="Seconds to wait for a node started by the extension.")

    @default("home")
    def _default_home(self) -> str | None:
        return os.environ.get("FEDBENCH_HOME") or None

    @default("sandbox")
    def _default_sandbox(self) -> bool:
        return _env_flag("FEDBENCH_SANDBOX", False)

    @default("sandbox_home")
    def _default_sandbox_home(self) -> str | None:
        return os.environ.get("FEDBENCH_SANDBOX_HOME") or None

    @default("party")
    def _default_party(self) -> str | None:
        return os.environ.get("FEDBENCH_PARTY") or None

    @default("token")
    def _default_token(self) -> str | None:
        return os.environ.get("FEDBENCH_TOKEN") or None

    @default("start_node")
    def _default_start_node(self) -> bool:
        return _env_flag("FEDBENCH_START_NODE", True)


class NodeWatch:
    """The node of one Jupyter server: brought up in the background, asked for its status on demand."""

    def __init__(self, settings: Fedbench, log: logging.Logger) -> None:
        self.mode = "sandbox" if settings.sandbox or not settings.home else "node"
        if self.mode == "sandbox":
            self.root = (
                Path(settings.sandbox_home).expanduser() if settings.sandbox_home else sandbox.default_home()
            )
        else:
            self.root = Path(settings.home or "").expanduser()
        self.root = self.root.resolve()
        self.party: str | None = settings.party
        self.start_node = bool(settings.start_node)
        self.timeout = float(settings.start_timeout)
        self.state = "starting"
        self.error: str | None = None
        self._token: str | None = settings.token
        self._log = log
        self._thread: threading.Thread | None = None
        self._workbench: Workbench | None = None
        self._workbench_lock = threading.Lock()

    def describe(self) -> str:
        """One line for the server log."""
        what = "the sandbox federation" if self.mode == "sandbox" else "the node"
        verb = "finding or starting" if self.start_node else "looking for"
        return f"{verb} {what} at {self.root}"

    def start(self) -> None:
        """Bring the node up in a daemon thread (JupyterLab does not wait for it)."""
        self._thread = threading.Thread(target=self._bring_up, name="fedbench-node", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> str:
        """Wait for the background start to finish; returns the state (up or failed)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def node_home(self) -> NodeHome:
        """The home of the node this server works with."""
        if self.mode == "node":
            return NodeHome(self.root)
        nodes = sandbox.status(self.root)
        if not nodes:
            raise ConfigError(f"no sandbox at {self.root} yet; start one with `fedbench sandbox up`")
        chosen = self.party or nodes[0].party
        for node in nodes:
            if node.party == chosen:
                return NodeHome(node.home)
        raise ConfigError(
            f"the sandbox at {self.root} has parties {[n.party for n in nodes]}, not {chosen!r}"
        )

    def using(self, read: Callable[[Workbench], T]) -> T:
        """`read(workbench)` on the server's one connection to its node (made on first use); a connection that
        found the node down is dropped, so the next call connects again (the node may have moved or restarted)."""
        with self._workbench_lock:
            if self._workbench is None:
                self._workbench = Workbench(NodeClient.for_home(self.node_home(), self._token))
            workbench = self._workbench
        try:
            return read(workbench)
        except NodeUnavailable:
            with self._workbench_lock:
                if self._workbench is workbench:
                    self._workbench = None
            workbench.close()
            raise

    def status(self) -> dict[str, Any]:
        """The node's state, identity and addresses, and each peer's reachability (blocking: run it off the loop)."""
        node: dict[str, Any] = {"state": self.state, "ok": False, "error": self.error}
        body: dict[str, Any] = {
            "mode": self.mode,
            "home": str(self.root),
            "party": None,
            "node": node,
            "peers": [],
        }
        try:
            client = NodeClient.for_home(self.node_home())
        except FedbenchError as exc:
            node["error"] = self.error or str(exc)
            return body
        try:
            health = client.health(timeout=3.0)
            body["party"] = health["party"]
            node.update(
                state="up",
                ok=True,
                error=None,
                version=health.get("version"),
                federation_address=health.get("federation_address"),
                control_address=client.address,
            )
            body["peers"] = [asdict(peer) for peer in Workbench(client).peers(timeout=2.0)]
        except FedbenchError as exc:
            node["state"] = "starting" if self.state == "starting" else "down"
            node["error"] = str(exc)
        finally:
            client.close()
        return body

    def _bring_up(self) -> None:
        try:
            if self.mode == "sandbox":
                if self.start_node:
                    sandbox.autostart(self.root, timeout=self.timeout)
                self.node_home()
            else:
                self._node_up(NodeHome(self.root))
        except FedbenchError as exc:
            self.state, self.error = "failed", str(exc)
            self._log.error("fedbench: the node is not up: %s", exc)
            return
        except Exception as exc:  # a bug must show in the server log, not kill the server
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            self._log.exception("fedbench: bringing the node up failed")
            return
        self.state = "up"
        self._log.info("fedbench: node up (%s at %s)", self.mode, self.root)

    def _node_up(self, home: NodeHome) -> None:
        home.load_config()
        if _answers(home):
            return
        if not self.start_node:
            raise NodeError(f"the node at {home.root} does not answer (start_node is off: start it yourself)")
        with open(home.log_file, "ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "fedbench", "node", "start", "--home", str(home.root)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=home.root,
            )
        self._log.info("fedbench: started the node at %s (log %s)", home.root, home.log_file)
        give_up = time.monotonic() + self.timeout
        while not _answers(home):
            if time.monotonic() > give_up:
                raise NodeError(
                    f"the node at {home.root} did not answer within {self.timeout:g} s; see {home.log_file}"
                )
            time.sleep(0.3)


def _answers(home: NodeHome) -> bool:
    try:
        client = NodeClient.for_home(home)
    except FedbenchError:
        return False
    try:
        client.health(timeout=2.0)
        return True
    except FedbenchError:
        return False
    finally:
        client.close()


def load(serverapp: Any) -> NodeWatch:
    """Register the sidebar's API (`/fedbench/status`, projects, runs) and start bringing the node up."""
    settings = Fedbench(parent=serverapp)
    watch = NodeWatch(settings, serverapp.log)
    web_app = serverapp.web_app
    web_app.settings["fedbench_watch"] = watch
    web_app.settings["fedbench_snapshots"] = Snapshots()
    web_app.settings["fedbench_root_dir"] = serverapp.root_dir
    api = routes(web_app.settings.get("base_url", "/"))
    web_app.add_handlers(".*$", api)
    serverapp.log.info("fedbench: %s; status at %s", watch.describe(), api[0][0])
    watch.start()
    return watch
