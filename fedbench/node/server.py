"""The party node: one long-running process per organisation, serving its peers and its local kernels.

It owns the party's store (metadata database, artifact files, dataset registry), its TLS identity, a mailbox
for messages from peers, and two gRPC servers: the federation server (mutual TLS, reachable by peers) and the
control server (loopback, token-guarded, for kernels). SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from sqlmodel import col, select

from fedbench import components
from fedbench.errors import CertificateError, ConfigError
from fedbench.net import codec
from fedbench.net.certs import PartyCredentials, RevocationList, peer_identity
from fedbench.net.federation import FederationService, PushHeader
from fedbench.net.mailbox import Mailbox
from fedbench.net.peer import PeerClient
from fedbench.net.rpc import CHUNK_BYTES
from fedbench.net.tls import TlsMaterial, server_credentials
from fedbench.node.audit import AuditLog
from fedbench.node.audit_anchor import AuditAnchors
from fedbench.node.config import NodeHome
from fedbench.node.control import ControlService
from fedbench.node.health import HealthServer
from fedbench.node.jobs import JobService
from fedbench.node.models import ModelService
from fedbench.node.projects import ProjectService
from fedbench.node.users import Users
from fedbench.node.worker_pool import WorkerPool
from fedbench.store import ArtifactFiles, Database, DatasetRegistry, Job

__all__ = ["PartyNode"]

log = logging.getLogger("fedbench.node")

RECEIVING = frozenset({"queued", "running"})
"""The states in which a job of this node takes messages from its parties."""

_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 4 * CHUNK_BYTES),
    ("grpc.max_send_message_length", 4 * CHUNK_BYTES),
    ("grpc.so_reuseport", 0),
]


class PartyNode:
    """A party node bound to one home directory; `start()` serves, `stop()` shuts down."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = NodeHome(home)
        self.config = self.home.load_config()
        components.load_modules(self.config.component_modules)
        self.tls = _load_tls(self.home, self.config.party)
        self.api_token = self.home.api_token(create=True)
        self.db = Database(self.home.database_url(self.config))
        self.files = ArtifactFiles(self.home.artifacts_dir)
        self.datasets = DatasetRegistry(self.db, self.files)
        self.mailbox = Mailbox(max_pending_bytes=self.config.max_pending_mb << 20, reclaim=self._ended_jobs)
        self.audit = AuditLog.for_home(self.db, self.home)
        self.users = Users(self.db)
        self.users.ensure_admin(self.api_token)
        self.projects = ProjectService(
            self.config.party,
            self.db,
            self.datasets,
            self.audit,
            self.home.secrets_dir,
            self._peer_request,
        )
        self.workers = WorkerPool(self.config.warm_workers, preload=self.config.component_modules)
        self.jobs = JobService(
            self.config.party,
            self.home.root,
            self.db,
            self.datasets,
            self.projects,
            self._peer_request,
            workers=self.workers,
        )
        self.models = ModelService(self.config.party, self.db, self.files, self.projects, self.audit)
        self.anchors = AuditAnchors(self.config.party, self.db, self.audit, self.projects, self._peer_request)
        self.jobs.on_finished = self._job_ended
        self.jobs.task_settings = {
            "send_deadline": self.config.send_deadline,
            "recv_timeout": self.config.recv_timeout,
        }
        self.jobs.watch_peers(self.ping_peer)
        self.limits = codec.CodecLimits(max_bytes=self.config.max_message_mb << 20)
        self._peers: dict[str, PeerClient] = {}
        self._peers_lock = threading.Lock()
        self._servers: list[grpc.Server] = []
        self._health: HealthServer | None = None
        self._stopped = threading.Event()

    def revocations(self) -> RevocationList | None:
        """The revocation list the node checks on every peer call, if one is configured or installed."""
        path = Path(self.config.crl_path) if self.config.crl_path else self.home.tls_dir / "crl.pem"
        if not path.exists():
            if self.config.crl_path:
                raise ConfigError(f"crl_path {path} does not exist; fix node.json or copy the CA's crl.pem")
            return None
        return RevocationList(path, self.tls.ca)

    def peer(self, party: str) -> PeerClient:
        """The channel to a configured peer (opened on first use)."""
        address = self.config.peers.get(party)
        if address is None:
            raise ConfigError(
                f"{party!r} is not a peer of {self.config.party!r}; known: {sorted(self.config.peers)}"
            )
        with self._peers_lock:
            if party not in self._peers:
                self._peers[party] = PeerClient(self.config.party, party, address, self.tls)
            return self._peers[party]

    def _peer_request(
        self, party: str, action: str, project: str | None, token: str | None, body: Any
    ) -> Any:
        return self.peer(party).request(action, body, project=project, token=token)

    def ping_peer(self, party: str, timeout: float = 5.0) -> dict[str, Any]:
        """Ping a peer through the mutual-TLS channel and check it is who we think."""
        answer = self.peer(party).ping(timeout)
        if answer.get("party") != party:
            raise CertificateError(f"peer at {self.config.peers[party]} answered as {answer.get('party')!r}")
        return answer

    def start(self) -> None:
        """Bind both servers and start serving; raises ConfigError when a port is taken."""
        federation = FederationService(
            self.config.party,
            lambda: self.config.peers,
            self.mailbox,
            self.revocations(),
            self.limits,
            admit_push=self._admit_push,
            on_refusal=self._refused,
            on_request=self.projects.handle,
        )
        fed_server = self._server(federation.handler())
        _bind(fed_server, f"{self.config.federation_host}:{self.config.federation_port}", self.tls)
        control_server = self._server(ControlService(self).handler())
        _bind(control_server, self.config.control_address, None)
        if self.config.health_port is not None:
            self._health = HealthServer(self, self.config.federation_host, self.config.health_port)
        for server in (fed_server, control_server):
            server.start()
        self.workers.start()
        self._servers = [fed_server, control_server]
        threading.Thread(target=self.jobs.announce_recovery, name="announce-recovery", daemon=True).start()
        if self._health is not None:
            self._health.start()
            log.info("node %s health endpoint on http://%s/healthz", self.config.party, self._health.address)
        self.home.pid_file.write_text(str(os.getpid()))
        log.info(
            "node %s serving federation on %s, control on %s",
            self.config.party,
            self.config.federation_address,
            self.config.control_address,
        )

    def stop(self, grace: float = 5.0) -> None:
        """Stop serving (letting calls in flight finish for `grace` seconds) and release the store.

        Jobs running here fail first and their step workers end: a worker waiting on a partner that is gone
        would otherwise keep the node's process from exiting (multiprocessing joins its children at exit)."""
        self.jobs.stop_all(
            f"node {self.config.party} was stopped while the job ran; run it again once the node is back "
            "(the steps that finished are reused)",
            timeout=grace + 10.0,
        )
        if self._health is not None:
            self._health.stop()
            self._health = None
        self.workers.close()
        for server in self._servers:
            server.stop(grace).wait()
        self._servers = []
        if self.jobs.heartbeat is not None:
            self.jobs.heartbeat.close()
        with self._peers_lock:
            for client in self._peers.values():
                client.close()
            self._peers.clear()
        self.db.close()
        if self.home.pid_file.exists() and self.home.pid_file.read_text().strip() == str(os.getpid()):
            self.home.pid_file.unlink()
        self._stopped.set()

    @property
    def serving(self) -> bool:
        """Whether the federation and control servers are running."""
        return bool(self._servers)

    def serve_forever(self) -> None:
        """Start, then block until SIGTERM or SIGINT, then stop cleanly."""
        self.start()
        _wait_for_stop_signal()
        log.info("node %s stopping", self.config.party)
        self.stop()

    def _admit_push(self, sender: str, header: PushHeader) -> None:
        """A message goes only into a job this node runs, with that job's project token (refusals audited).

        Checked from our own records before a byte of the payload is read: the key's job is queued or running
        here, the message names its project with a right token (the project is active, the sender a member),
        and the sender is one of the job's parties.
        """
        job_id = header.key.split("/", 1)[0]
        if not header.project or not header.token:
            raise self.projects.refusal(
                sender,
                "job.message",
                None,
                f"message {header.key!r} names no project: every message belongs to a job and must carry "
                "its project's token",
            )
        with self.db.session() as session:
            job = session.get(Job, job_id)
        if job is None or not job.spec:
            raise self.projects.refusal(
                sender,
                "job.message",
                None,
                f"no job {job_id!r} on {self.config.party!r}: messages go only into jobs this node runs",
            )
        if job.state not in RECEIVING:
            raise self.projects.refusal(
                sender,
                "job.message",
                job.project,
                f"job {job_id} is {job.state} here: it takes messages only while queued or running",
            )
        if header.project != job.project:
            raise self.projects.refusal(
                sender, "job.message", job.project, f"messages of job {job_id} must carry its project's token"
            )
        self.projects.check(sender, "job.message", header.project, header.token)
        if sender not in {party for members in job.spec.get("roles", {}).values() for party in members}:
            raise self.projects.refusal(
                sender, "job.message", job.project, f"{sender} is not a party of job {job_id}"
            )

    def _job_ended(self, spec: dict[str, Any], state: str) -> None:
        """A job ended here: its waiting messages go, then its audit head is anchored with its parties."""
        self.mailbox.close(str(spec["job_id"]))
        self.anchors.job_ended(spec, state)

    def _ended_jobs(self, jobs: Iterable[str]) -> set[str]:
        """Of these jobs, those no longer running here (their waiting messages can go)."""
        wanted = set(jobs)
        with self.db.session() as session:
            found = session.exec(select(Job).where(col(Job.id).in_(wanted))).all()
        return wanted - {job.id for job in found if job.state in RECEIVING}

    def _refused(self, claimed: str, reason: str) -> None:
        log.warning("refused a call claiming to come from %s: %s", claimed, reason)
        self.audit.record(actor=claimed, peer=claimed, action="federation.call", allowed=False, reason=reason)

    def _server(self, handler: grpc.GenericRpcHandler) -> grpc.Server:
        pool = futures.ThreadPoolExecutor(max_workers=self.config.workers)
        server = grpc.server(pool, options=_SERVER_OPTIONS)
        server.add_generic_rpc_handlers((handler,))
        return server


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _wait_for_stop_signal() -> None:
    """Block until SIGTERM or SIGINT, waking the moment one arrives, whichever thread the kernel gave it to.

    The signal's number is written to a socket this thread reads (`signal.set_wakeup_fd`): no polling interval
    is waited out, so `fedbench sandbox down` does not wait on it. The read is timed (a safety net only).
    """
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    wake_r.settimeout(5.0)
    stop_requested = threading.Event()
    for sig in _STOP_SIGNALS:
        # kept after the wait: a second SIGTERM while the node stops cleanly does not cut the stop short
        signal.signal(sig, lambda *_: stop_requested.set())
    previous = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    try:
        while not stop_requested.is_set():
            with contextlib.suppress(TimeoutError):
                if any(sig in _STOP_SIGNALS for sig in wake_r.recv(64)):
                    return
    finally:
        signal.set_wakeup_fd(previous)
        wake_r.close()
        wake_w.close()


def _load_tls(home: NodeHome, party: str) -> TlsMaterial:
    key, cert, ca = PartyCredentials.from_dir(home.tls_dir).load()
    named = peer_identity(cert)
    if named != party:
        raise CertificateError(
            f"the certificate in {home.tls_dir} is for {named!r}, but this node is {party!r}"
        )
    return TlsMaterial(key=key, cert=cert, ca=ca)


def _bind(server: grpc.Server, address: str, tls: TlsMaterial | None) -> None:
    try:
        port = (
            server.add_secure_port(address, server_credentials(tls))
            if tls is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError as exc:
        port = 0
        reason = str(exc)
    else:
        reason = "address in use?"
    if port == 0:
        raise ConfigError(f"cannot listen on {address} ({reason}); pick a free port in node.json")
