"""`NodeClient`: the control-API client a kernel uses to talk to its own node.

The calls themselves are `ControlClient`'s (`fedbench/net/control_client.py`, shared with the node's workers);
this class adds what only a kernel knows: the node's home, so that `for_home` finds the node and its token, and
an error names the node's log and the command that starts it ("dataset 'x' not found", or "Your node (guest)
is not running ... Start it with `fedbench sandbox up`", rather than a gRPC traceback).
"""

from __future__ import annotations

from pathlib import Path

from fedbench.net.control_client import ControlClient
from fedbench.node.config import NodeHome

__all__ = ["NodeClient"]


class NodeClient(ControlClient):
    """A connection to a node's control API at `address`, authenticated with `token`.

    `home` and `party`, when known (as with `for_home`), let errors name the node and the command that starts it.
    """

    def __init__(
        self, address: str, token: str | None, *, home: NodeHome | None = None, party: str | None = None
    ) -> None:
        super().__init__(address, token, party=party)
        self.home = home

    @classmethod
    def for_home(cls, home: str | NodeHome, token: str | None = None) -> NodeClient:
        """The client of the node whose home is `home`: as the user of `token`, else as its admin."""
        node_home = home if isinstance(home, NodeHome) else NodeHome(home)
        config = node_home.load_config()
        return cls(config.control_address, token or node_home.api_token(), home=node_home, party=config.party)

    @property
    def start_command(self) -> str | None:
        """The command that starts this node (`fedbench sandbox up` for a sandbox's), if its home is known."""
        if self.home is None:
            return None
        from fedbench.sandbox import start_command

        return start_command(self.home)

    @property
    def log_file(self) -> Path | None:
        """The node's log file, if its home is known."""
        return None if self.home is None else self.home.log_file
