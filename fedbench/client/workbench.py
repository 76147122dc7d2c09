"""`Workbench`: what `fedbench.connect()` returns, the analyst's handle on their party's node."""

from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass

import pandas as pd

from fedbench.client.control import NodeClient
from fedbench.client.datasets import Datasets
from fedbench.client.projects import Project, Projects
from fedbench.client.runs import Output, Run
from fedbench.errors import FedbenchError, NodeUnavailable, PeerUnavailable
from fedbench.node.config import NodeHome

__all__ = ["PeerStatus", "Workbench"]


@dataclass(frozen=True)
class PeerStatus:
    """One peer as seen from our node right now, through the real mutual-TLS channel.

    When it cannot be reached, `error` says so in plain words ("host is not reachable: ...") with what to do.
    """

    party: str
    address: str
    reachable: bool
    latency_ms: float | None
    version: str | None
    error: str | None


class Workbench:
    """A connection to our party's node: datasets, peers and (in later releases) projects and runs."""

    def __init__(self, node: NodeClient) -> None:
        self._node = node
        health = node.health()
        self.party: str = health["party"]
        self.datasets = Datasets(node)
        self.projects = Projects(node)

    def project(self, name: str) -> Project:
        """One project by name."""
        return self.projects.get(name)

    def audit(self, project: str | None = None) -> pd.DataFrame:
        """The audit trail on our node (of one project; the whole log needs the admin role)."""
        return pd.read_parquet(io.BytesIO(self._node.call("audit.events", project=project)))

    def whoami(self) -> dict[str, str]:
        """The user this connection acts as, with its role."""
        return dict(self._node.call("whoami"))

    def add_user(self, name: str, role: str) -> str:
        """Create a user of our node (admin only); returns its token, shown once."""
        return str(self._node.call("users.add", name=name, role=role)["token"])

    def run(self, job_id: str) -> Run:
        """One run on our node by its full id, whatever its project (`project.run_by_id` also takes a prefix)."""
        return Run(self._node, self._node.call("runs.get", job_id=job_id))

    def runs(self, project: str) -> list[Run]:
        """The runs of project `project` on our node, newest first."""
        return [Run(self._node, info) for info in self._node.call("runs.list", project=project)]

    def output(self, artifact_id: str, kind: str) -> Output:
        """An artifact our node holds (a run's output, `<step key>:<name>`) of kind table, model or metrics."""
        return Output(self._node, artifact_id, kind)

    def peer_names(self) -> list[str]:
        """The parties configured as our node's peers, without contacting them (`peers()` pings each)."""
        return [str(p["party"]) for p in self._node.call("peers")]

    @property
    def node(self) -> NodeClient:
        """The raw control-API client (for advanced use and tests)."""
        return self._node

    def health(self) -> dict[str, object]:
        """The node's health answer."""
        return self._node.health()

    def peers(self, timeout: float = 5.0) -> list[PeerStatus]:
        """Every configured peer, each pinged live through the federation channel.

        A peer that does not answer is listed as not reachable (with the command that starts it, on the
        sandbox); our own node not answering raises `NodeUnavailable`.
        """
        statuses = []
        for peer in self._node.call("peers"):
            party, address = peer["party"], peer["address"]
            started = time.perf_counter()
            try:
                answer = self._node.call("ping_peer", party=party, timeout=timeout)
            except NodeUnavailable:
                self._node.health()  # our node down raises here; else it waited for the peer past `timeout`
                error = self._unreachable(party, address, f"did not answer within {timeout:g} s")
                statuses.append(PeerStatus(party, address, False, None, None, error))
                continue
            except PeerUnavailable:
                error = self._unreachable(party, address, "does not answer")
                statuses.append(PeerStatus(party, address, False, None, None, error))
                continue
            except FedbenchError as exc:
                statuses.append(PeerStatus(party, address, False, None, None, str(exc)))
                continue
            latency = (time.perf_counter() - started) * 1000
            statuses.append(
                PeerStatus(peer["party"], peer["address"], True, round(latency, 1), answer["version"], None)
            )
        return statuses

    def _unreachable(self, party: str, address: str, what: str) -> str:
        """Why `party` cannot be reached and what to do, in words a business user reads."""
        from fedbench import sandbox

        root = sandbox.sandbox_of(self._node.home) if self._node.home is not None else None
        if root is not None and (root / party).is_dir():
            node = next((n for n in sandbox.status(root) if n.party == party), None)
            if node is not None and not node.running:
                command = sandbox.start_command(NodeHome(node.home))
                return f"{party} is not reachable: its node is stopped. Start it with `{command}`."
        return (
            f"{party} is not reachable: its node at {address} {what}. Ask {party} to check that their node is "
            "running and reachable from ours."
        )

    def close(self) -> None:
        """Close the connection to the node."""
        self._node.close()

    def __repr__(self) -> str:
        return f"Workbench(party={self.party!r}, node={self._node.address})"

    def _repr_html_(self) -> str:
        peers = pd.DataFrame([vars(p) for p in self.peers(timeout=2.0)])
        table = peers.to_html(index=False, border=0) if not peers.empty else "<i>no peers configured</i>"
        return (
            f'<div class="fb-workbench"><b>fedbench</b> party <code>{html.escape(self.party)}</code> '
            f"via {html.escape(self._node.address)}<br>{table}</div>"
        )
