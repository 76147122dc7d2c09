"""`fedbench.connect()`: find the party's node (starting the sandbox if that is what is asked) and connect."""

from __future__ import annotations

import os
from pathlib import Path

from fedbench import sandbox
from fedbench.client.control import NodeClient
from fedbench.client.workbench import Workbench
from fedbench.errors import ConfigError
from fedbench.node.config import NodeHome

__all__ = ["connect"]


def connect(
    party: str | None = None, home: str | os.PathLike[str] | None = None, *, token: str | None = None
) -> Workbench:
    """A `Workbench` on a party's node.

    `home` may be a node home (it holds node.json) or a sandbox home (default: `$FEDBENCH_HOME`); with
    neither, the sandbox's first party (`guest`) in the default sandbox home, started if it is not running.
    `token` acts as a user made by `fedbench users add`; without it, as the node's admin (<home>/api_token).
    """
    if home is None and os.environ.get("FEDBENCH_HOME"):
        home = os.environ["FEDBENCH_HOME"]
    root = Path(home).expanduser().resolve() if home is not None else sandbox.default_home()
    if NodeHome(root).config_file.exists():
        node_home = NodeHome(root)
        if party is not None and node_home.load_config().party != party:
            raise ConfigError(f"the node at {root} is {node_home.load_config().party!r}, not {party!r}")
    else:
        nodes = {n.party: n for n in sandbox.status(root)}
        if not nodes or not all(n.running for n in nodes.values()):
            if home is not None and not nodes:
                raise ConfigError(
                    f"{root} is neither a node home nor a sandbox; start one with "
                    f"`fedbench sandbox up --home {root}` or pass the node's home"
                )
            nodes = {n.party: n for n in sandbox.up(root)}
        chosen = party or next(iter(nodes))
        if chosen not in nodes:
            raise ConfigError(f"the sandbox at {root} has parties {sorted(nodes)}, not {chosen!r}")
        node_home = NodeHome(nodes[chosen].home)
    return Workbench(NodeClient.for_home(node_home, token))
