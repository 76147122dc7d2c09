"""The worker process that runs one party's task of one step, started by the node (spawn, not fork).

It rebuilds what the step needs from the node home: its TLS identity to send to peers, the control API to
receive from the node's mailbox, the artifact files for inputs and outputs. Everything it has to say goes back
to the node as small dict events on a queue: progress, metrics, logs, outputs written, and how it ended.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import pandas as pd

from fedbench import components, compute
from fedbench.compute.config import backend_for
from fedbench.crypto.paillier import parallel as paillier_workers
from fedbench.errors import ConfigError, FedbenchError
from fedbench.federation import Context, TaskIO
from fedbench.net import codec
from fedbench.net.certs import PartyCredentials
from fedbench.net.control_client import ControlClient
from fedbench.net.peer import PeerClient
from fedbench.net.tls import TlsMaterial
from fedbench.net.transport import GrpcTransport
from fedbench.node.config import NodeHome
from fedbench.node.projects import psi_domain_key
from fedbench.node.releases import psi_releases
from fedbench.node.task_spec import TaskSpec
from fedbench.store import ArtifactFiles

__all__ = ["run_task"]


def run_task(task: TaskSpec, events: Queue[dict[str, Any]], cancel: Event) -> None:
    """Entry point of a worker process: run the role function, report everything as events."""
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    try:
        _run(task, events, cancel)
    except FedbenchError as exc:
        events.put({"type": "failed", "code": exc.code, "reason": str(exc)})
    except Exception as exc:
        detail = traceback.format_exc(limit=6)
        events.put(
            {"type": "failed", "code": "error", "reason": f"{type(exc).__name__}: {exc}", "trace": detail}
        )
    else:
        events.put({"type": "succeeded"})
    finally:
        # The Paillier engine's process pool must stop before the worker exits: multiprocessing joins a
        # process's children at exit, and idle pool workers would keep this worker (and so its node) waiting.
        paillier_workers.shutdown()


def _exit_with_parent(parent: int) -> None:
    """A worker whose node died (e.g. SIGKILL) stops at once instead of running on as an orphan."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(3)


def _run(task: TaskSpec, events: Queue[dict[str, Any]], cancel: Event) -> None:
    home = NodeHome(task.home)
    config = home.load_config()
    key, cert, ca = PartyCredentials.from_dir(home.tls_dir).load()
    tls = TlsMaterial(key=key, cert=cert, ca=ca)
    files = ArtifactFiles(home.artifacts_dir)
    components.load_modules(config.component_modules)
    component = components.get(task.component)
    params = component.validate_params(dict(task.params), step=task.step)
    control = ControlClient(config.control_address, home.api_token(), party=config.party)
    token = (home.secrets_dir / f"project-{task.project}.token").read_text().strip()
    peers: dict[str, PeerClient] = {}

    def peer(party: str) -> PeerClient:
        if party not in config.peers:
            raise ConfigError(f"{party!r} is not a peer of {config.party!r}")
        if party not in peers:
            peers[party] = PeerClient(
                config.party, party, config.peers[party], tls, is_cancelled=cancel.is_set
            )
        return peers[party]

    def read_input(name: str) -> Any:
        if name not in task.inputs:
            raise ConfigError(f"step {task.step!r} has no input {name!r}; it has {sorted(task.inputs)}")
        item = task.inputs[name]
        if item.kind == "table":
            return files.read_table(item.path)
        return codec.decode(files.read_bytes(item.path))

    def write_output(name: str, value: Any) -> None:
        port = component.port(name, output=True)
        if port.kind == "table":
            if not isinstance(value, pd.DataFrame):
                raise ConfigError(
                    f"output {name!r} is a table: write a DataFrame, not {type(value).__name__}"
                )
            stored = files.write_table(value)
        else:
            stored = files.write_bytes(codec.encode(value), suffix=".fbc")
        events.put(
            {
                "type": "output",
                "name": name,
                "kind": port.kind,
                "path": stored.path,
                "sha256": stored.sha256,
                "size": stored.size,
            }
        )

    backend = backend_for(config.compute, home.tls_dir)
    if backend is not None:
        compute.use(backend)
    context = Context(
        party=config.party,
        role=task.role,
        roles=dict(task.roles),
        job_id=task.job_id,
        step=task.step,
        params=params,
        transport=GrpcTransport(
            config.party,
            peer,
            control.recv,
            send_deadline=float(task.send_deadline),
            project=(task.project, token),
        ),
        project=dict(task.project_info),
        psi_key=psi_domain_key(task.project, token),
        private_key=home.party_key(task.project),
        io=TaskIO(
            read_input=read_input,
            write_output=write_output,
            emit=events.put,
            is_cancelled=cancel.is_set,
            psi_releases=lambda: psi_releases(home.database_url(config), files, task.project),
        ),
        recv_timeout=float(task.recv_timeout),
    )
    try:
        component.functions[task.role](context, params)
    finally:
        if backend is not None:
            compute.use(None)
            backend.close()
        control.close()
        for client in peers.values():
            client.close()
