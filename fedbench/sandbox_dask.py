"""A sandbox party's own Dask cluster (`fedbench sandbox up --dask`): the Dask path exercised on one machine.

The party gets a CA of its own for its cluster (`<party home>/compute/ca`, made by the same code as `fedbench
certs`) and a certificate from it (`compute/tls`), so only its own node and workers can join; the cluster's
scheduler and workers run from `compute/run` (logs, scheduler file), recorded in `compute/cluster.json`, and
the party's node.json gets ``compute: {"scheduler", "tls_dir", "dashboard"}``: its next steps run their PSI
masking and Paillier operations there (each step's worker reads node.json afresh, so no node restart).
`stop` ends the cluster and removes `compute` from node.json, so the party is back on its local pool.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fedbench.compute.cluster import LocalCluster, start_cluster
from fedbench.compute.config import ComputeConfig
from fedbench.net.certs import init_ca, issue_party
from fedbench.node.config import NodeHome

__all__ = ["info", "start", "stop"]


def _dir(root: Path, party: str) -> Path:
    return root / party / "compute"


def info(root: Path, party: str) -> dict[str, Any] | None:
    """The party's running cluster (scheduler, dashboard, pids), or None."""
    record = _dir(root, party) / "cluster.json"
    if not record.exists():
        return None
    data = json.loads(record.read_text())
    if not all(_alive(pid) for pid in data.get("pids", [])):
        return None
    return dict(data)


def start(root: Path, party: str, *, workers: int = 1) -> dict[str, Any]:
    """Start the party's cluster unless it runs, and point the party's node.json at it; returns `info`."""
    running = info(root, party)
    base = _dir(root, party)
    tls = base / "tls"
    if running is None:
        stop(root, party)
        if not (base / "ca" / "ca.pem").exists():
            init_ca(base / "ca", name=f"{party} compute CA")
        if not (tls / "party.pem").exists():
            issue_party(base / "ca", tls, party)
        cluster = start_cluster(tls, base / "run", workers=workers)
        running = cluster.as_dict()
        (base / "cluster.json").write_text(json.dumps(running) + "\n")
    home = NodeHome(root / party)
    config = home.load_config()
    wanted = ComputeConfig(scheduler=running["scheduler"], tls_dir=str(tls), dashboard=running["dashboard"])
    if config.compute != wanted:
        home.save_config(config.model_copy(update={"compute": wanted}))
    return running


def stop(root: Path, party: str) -> bool:
    """Stop the party's cluster (if any) and remove `compute` from its node.json; whether one was running."""
    record = _dir(root, party) / "cluster.json"
    stopped = False
    if record.exists():
        data = json.loads(record.read_text())
        LocalCluster(scheduler=data["scheduler"], dashboard=data.get("dashboard"), pids=data["pids"]).stop()
        record.unlink()
        stopped = True
    home = NodeHome(root / party)
    if home.config_file.exists():
        config = home.load_config()
        if config.compute is not None:
            home.save_config(config.model_copy(update={"compute": None}))
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
