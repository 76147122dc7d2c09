"""`fedbench.connect()`: find the party's node (creating the sandbox on a first run) and connect.

It never starts a node someone stopped: a sandbox stopped with `fedbench sandbox down`, or a node stopped by
hand, stays stopped (our node stopped is a `NodeUnavailable` naming the command that starts it; a partner
stopped shows as "not reachable" in `Workbench.peers()`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from fedbench.client.control import NodeClient
from fedbench.errors import ConfigError, NodeUnavailable
from fedbench.node.config import NodeHome

if TYPE_CHECKING:
    from fedbench.client.workbench import Workbench

__all__ = ["connect"]


def connect(
    party: str | None = None, home: str | os.PathLike[str] | None = None, *, token: str | None = None
) -> Workbench:
    """A `Workbench` on a party's node.

    `home` may be a node home (it holds node.json) or a sandbox home (default: `$FEDBENCH_HOME`); with
    neither, the sandbox's first party (`guest`) in the default sandbox home, created and started if there is
    none yet. `token` acts as a user made by `fedbench users add`; without it, as the node's admin
    (<home>/api_token).
    """
    from fedbench import sandbox
    from fedbench.client.workbench import Workbench

    if home is None and os.environ.get("FEDBENCH_HOME"):
        home = os.environ["FEDBENCH_HOME"]
    root = Path(home).expanduser().resolve() if home is not None else sandbox.default_home()
    if NodeHome(root).config_file.exists():
        node_home = NodeHome(root)
        if party is not None and node_home.load_config().party != party:
            raise ConfigError(f"the node at {root} is {node_home.load_config().party!r}, not {party!r}")
    else:
        if home is not None and not sandbox.status(root):
            raise ConfigError(
                f"{root} is neither a node home nor a sandbox; start one with "
                f"`fedbench sandbox up --home {root}` or pass the node's home"
            )
        nodes = {n.party: n for n in sandbox.autostart(root)}
        chosen = party or next(iter(nodes))
        if chosen not in nodes:
            raise ConfigError(f"the sandbox at {root} has parties {sorted(nodes)}, not {chosen!r}")
        node_home = NodeHome(nodes[chosen].home)
        if not nodes[chosen].running:
            raise _stopped(root, node_home, chosen)
    return Workbench(NodeClient.for_home(node_home, token))


def _stopped(root: Path, node_home: NodeHome, party: str) -> NodeUnavailable:
    """Our sandbox node is stopped: say so, why if we know, and the command that starts it."""
    from fedbench import sandbox

    command = sandbox.start_command(node_home)
    why = ": the sandbox was stopped with `fedbench sandbox down`" if sandbox.stopped_on_purpose(root) else ""
    return NodeUnavailable(
        f"Your node ({party}) is not running{why}. Start it with `{command}`, then try again.",
        command=command,
    )
