"""The sandbox: a real federation of party nodes on this machine, with nothing to configure.

`up` creates (once) a federation CA, a certificate per party, a node home per party with free loopback ports,
starts the nodes in the background (forked from one process that imported the node's modules once,
`fedbench.sandbox_zygote`), waits until each answers, and registers the demo data sets. It is
idempotent: running it again starts only what is not running. With `arbiter=True` a new sandbox gets a third
party, `arbiter`, that brings no data: it joins the demo project without datasets and plays the arbiter role
of the components that have one. With `horizontal=N` a new sandbox is horizontal instead: N data parties,
`branch-1` to `branch-N`, each with its own rows of the demo credit table (all columns, the label included),
and an `aggregator` with no data, in the accepted project `branches` (the `client` and `server` roles of
`homo_lr`). Layout of the sandbox home:

    <home>/sandbox.json   its parties (and arbiter, or aggregator)
    <home>/stopped        written by `down`, removed by `up`: the nodes were stopped on purpose
    <home>/ca/            the federation CA (its crl.pem is checked by every node)
    <home>/<party>/       one node home per party (node.json, tls/, api_token, fedbench.db, artifacts/, node.log)

`autostart` is what `fedbench.connect()` (and the Jupyter extension) may do on their own: create and start a
sandbox that does not exist yet (or finish a first `up` that was interrupted before any node ran), never
start a node that ran before: one `down` stopped or one stopped by hand, ours or a partner's, stays stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from fedbench import sandbox_zygote_server
from fedbench.client.control import NodeClient
from fedbench.errors import ConfigError, FedbenchError, NodeError
from fedbench.net.certs import init_ca, issue_party
from fedbench.net.ports import can_listen, free_ports
from fedbench.node.config import NodeConfig, NodeHome

__all__ = [
    "AGGREGATOR_PARTY",
    "ARBITER_PARTY",
    "HORIZONTAL_PROJECT",
    "DEFAULT_PARTIES",
    "DEMO_ROWS_ENV",
    "WARM_WORKERS_ENV",
    "NodeStatus",
    "autostart",
    "default_home",
    "down",
    "sandbox_of",
    "start_command",
    "status",
    "stopped_on_purpose",
    "up",
]

DEMO_CREDIT_ROWS = 30_000
"""Rows of the demo's synthetic credit table (about 24,000 of them matched by both parties)."""

DEFAULT_PARTIES = ("guest", "host")
ARBITER_PARTY = "arbiter"
"""The party `up(arbiter=True)` adds: a member of the demo project that brings no data."""
AGGREGATOR_PARTY = "aggregator"
"""The party a horizontal sandbox (`up(horizontal=N)`) adds to coordinate: it brings no data."""
HORIZONTAL_PROJECT = "branches"
"""The accepted project of a horizontal sandbox: every branch and the aggregator."""
DEMO_ROWS_ENV = "FEDBENCH_SANDBOX_DEMO_ROWS"
"""When set (a whole number of at least 1,000), the rows of the demo credit table a new sandbox registers,
unless `up` is given its own number. The test suite sets a fifth of the demo's (its flows do not need more)."""
WARM_WORKERS_ENV = "FEDBENCH_SANDBOX_WARM_WORKERS"
"""When set (a whole number), a new sandbox's nodes keep that many warm workers (node.json `warm_workers`)
unless `up` is given its own number. The test suite sets 0: its nodes then start no idle workers (and their
fork servers) that most tests never use."""
log = logging.getLogger("fedbench.sandbox")
_MANIFEST = "sandbox.json"
_STOPPED = "stopped"
_ZYGOTES: list[subprocess.Popen[bytes]] = []
"""The processes that started this process's sandbox nodes (`fedbench.sandbox_zygote`). Each stays its nodes'
parent and reaps them; it is polled here (and so reaped) once its last node has exited."""


@dataclass(frozen=True)
class NodeStatus:
    """One sandbox node: where it lives, where it listens, whether it runs."""

    party: str
    home: str
    running: bool
    pid: int | None
    federation_address: str
    control_address: str
    dask_scheduler: str | None = None
    """The party's own Dask cluster (`up(dask=True)`), where its heavy work runs."""
    dask_dashboard: str | None = None


def default_home() -> Path:
    """`$FEDBENCH_SANDBOX_HOME`, else `~/.fedbench/sandbox`."""
    return Path(os.environ.get("FEDBENCH_SANDBOX_HOME", "~/.fedbench/sandbox")).expanduser().resolve()


def up(
    home: str | os.PathLike[str] | None = None,
    *,
    parties: tuple[str, ...] | None = None,
    demo_data: bool = True,
    timeout: float = 60.0,
    component_modules: list[str] | None = None,
    database_url: str | None = None,
    arbiter: bool = False,
    demo_rows: int | None = None,
    warm_workers: int | None = None,
    horizontal: int = 0,
    dask: bool = False,
    dask_workers: int = 1,
) -> list[NodeStatus]:
    """Create what is missing, start what is not running, register demo data; returns each node's status.

    For new sandboxes only: `component_modules` lists extra component modules every node imports;
    `database_url` puts each node's metadata in that database instead of SQLite, with `{party}` and
    `{sandbox}` (a short id of this sandbox home) replaced, e.g. `postgresql://localhost/fb_{sandbox}_{party}`;
    `arbiter` adds a last party, `arbiter`, with no data (an existing sandbox keeps the parties it has, and
    asking for an arbiter it lacks is a ConfigError). `demo_rows` sizes the demo's credit table when it is
    first registered (fewer rows: a quicker demo; at least 1,000; default `$FEDBENCH_SANDBOX_DEMO_ROWS`, else
    30,000). `warm_workers` sets node.json's pool of warm workers of new nodes (default:
    `$FEDBENCH_SANDBOX_WARM_WORKERS`, else the node's default). `horizontal=N` (at least 3) makes a new sandbox
    horizontal: N branches with their own rows of the demo credit table and an aggregator, in project
    `branches`. `dask` starts a local Dask cluster (scheduler and `dask_workers` worker processes, TLS with a CA
    of the party's own) for the first party, whose steps then run their heavy work there (`sandbox_dask`).
    """
    rows = _demo_rows(demo_rows)
    pool = _warm_workers(warm_workers)
    root = Path(home).expanduser().resolve() if home else default_home()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(root):
        _start(
            root,
            parties,
            demo_data,
            timeout,
            component_modules,
            database_url,
            arbiter,
            rows,
            pool,
            horizontal,
        )
        if dask:
            from fedbench import sandbox_dask

            sandbox_dask.start(root, _parties(root)[0], workers=dask_workers)
    return status(root)


def autostart(home: str | os.PathLike[str] | None = None, *, timeout: float = 60.0) -> list[NodeStatus]:
    """Create and start the sandbox if it never ran; returns every node's status.

    A sandbox that does not exist yet is created and started (the first-run convenience), and so is one
    whose first `up` was interrupted before any node ran. A node that ran before is never started here:
    stopped with `down` or by hand, ours or a partner's, it stays stopped, and the caller tells the user
    which and that `fedbench sandbox up` starts it.
    """
    rows, pool = _demo_rows(None), _warm_workers(None)
    root = Path(home).expanduser().resolve() if home else default_home()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(root):
        nodes = status(root)
        never_ran = not any(NodeHome(n.home).log_file.exists() for n in nodes)
        if not nodes or (never_ran and not stopped_on_purpose(root)):
            _start(root, None, True, timeout, None, None, False, rows, pool)
    return status(root)


def stopped_on_purpose(home: str | os.PathLike[str] | None = None) -> bool:
    """Whether `down` stopped this sandbox and no `up` ran since."""
    root = Path(home).expanduser().resolve() if home else default_home()
    return (root / _STOPPED).exists()


def start_command(node_home: NodeHome) -> str:
    """The command that starts the node of `node_home`: `fedbench sandbox up` for a sandbox's node.

    `--home` is named unless the sandbox is in the standard place, so the command works in any shell.
    """
    root = sandbox_of(node_home)
    if root is not None:
        return _command(root, "up")
    return f"fedbench node start --home {shlex.quote(str(node_home.root))}"


def _command(root: Path, verb: str) -> str:
    """`fedbench sandbox <verb>` for the sandbox at `root` (`--home` named unless it is the standard place)."""
    standard = Path("~/.fedbench/sandbox").expanduser().resolve()
    where = "" if root == standard else f" --home {shlex.quote(str(root))}"
    return f"fedbench sandbox {verb}{where}"


def sandbox_of(node_home: NodeHome) -> Path | None:
    """The sandbox home `node_home` is a node of, or None for a node of its own."""
    root = node_home.root.resolve().parent
    if not (root / _MANIFEST).exists():
        return None
    parties: list[str] = json.loads((root / _MANIFEST).read_text())["parties"]
    return root if node_home.root.resolve().name in parties else None


def _start(
    root: Path,
    parties: tuple[str, ...] | None,
    demo_data: bool,
    timeout: float,
    component_modules: list[str] | None,
    database_url: str | None,
    arbiter: bool,
    demo_rows: int = DEMO_CREDIT_ROWS,
    warm_workers: int | None = None,
    horizontal: int = 0,
) -> None:
    """`up`'s work, under the sandbox's lock; it clears the "stopped on purpose" mark first."""
    (root / _STOPPED).unlink(missing_ok=True)
    if horizontal:
        parties = _branches(root, horizontal, parties, arbiter)
    members, arbiter_party = _members(root, parties, arbiter=arbiter)
    for attempt in (1, 2):
        _ensure_federation(root, members, component_modules or [], database_url, warm_workers)
        if _start_nodes(root, members, timeout, last_try=attempt == 2):
            break
    if demo_data and _is_horizontal(root):
        _register_branch_data(root, members[:-1], demo_rows)
        _create_branches_project(root, members)
    elif demo_data:
        _register_demo_data(root, members, demo_rows)
        _create_demo_project(root, members, arbiter_party)


def _start_nodes(root: Path, members: list[str], timeout: float, last_try: bool) -> bool:
    """Start the members that do not answer and wait until each does; whether they all came up.

    Ports are picked when a node is made and held by nobody until it listens: another program may take one
    meanwhile. A node that stopped as it started because another program listens on its port returns False
    (unless `last_try`), once the nodes started here are stopped again: the next try gives it new ports.
    """
    spawned = _spawn(root, [party for party in members if not _answering(NodeHome(root / party))])
    try:
        for party in members:
            _wait_healthy(NodeHome(root / party), timeout, spawned.get(party))
        return True
    except NodeError:
        lost = [
            party
            for party, pid in spawned.items()
            if not _alive(pid) and _held(_listening(NodeHome(root / party).load_config()), grace=0.0)
        ]
        if last_try or not lost:
            raise
        log.warning(
            "sandbox: another program took a port of %s's node as it started; trying new ports",
            ", ".join(lost),
        )
        _terminate_all(list(spawned.values()), timeout=15.0)
        for party, pid in spawned.items():
            _forget_pid(NodeHome(root / party), pid)
        return False


def status(home: str | os.PathLike[str] | None = None) -> list[NodeStatus]:
    """The status of every node of the sandbox (empty if there is no sandbox there)."""
    root = Path(home).expanduser().resolve() if home else default_home()
    manifest = root / _MANIFEST
    if not manifest.exists():
        return []
    result = []
    for party in json.loads(manifest.read_text())["parties"]:
        node_home = NodeHome(root / party)
        config = node_home.load_config()
        pid = _running(node_home)
        compute = config.compute
        result.append(
            NodeStatus(
                party,
                str(node_home.root),
                pid is not None,
                pid,
                config.federation_address,
                config.control_address,
                compute.scheduler if compute else None,
                compute.dashboard if compute else None,
            )
        )
    return result


def _parties(root: Path) -> list[str]:
    return list(json.loads((root / _MANIFEST).read_text())["parties"])


def down(home: str | os.PathLike[str] | None = None, *, timeout: float = 15.0) -> list[str]:
    """Stop every running node of the sandbox (SIGTERM, then SIGKILL after `timeout`); returns who stopped.

    The sandbox is marked stopped on purpose, so `autostart` (`fedbench.connect()`) leaves it stopped
    until the next `up`.
    """
    root = Path(home).expanduser().resolve() if home else default_home()
    if not (root / _MANIFEST).exists():
        return []
    stopped = []
    with _locked(root):
        from fedbench import sandbox_dask

        for party in _parties(root):
            sandbox_dask.stop(root, party)
        (root / _STOPPED).write_text(
            "stopped with `fedbench sandbox down`; `fedbench sandbox up` starts it\n"
        )
        running = [node for node in status(root) if node.pid is not None]
        # every node is asked at once, then awaited: a sandbox stops in the time of its slowest node
        _terminate_all([node.pid for node in running if node.pid is not None], timeout)
        for node in running:
            with contextlib.suppress(FileNotFoundError):
                NodeHome(node.home).pid_file.unlink()
            stopped.append(node.party)
    return stopped


def as_json(nodes: list[NodeStatus]) -> str:
    """The status as JSON, for `fedbench sandbox status --json`."""
    return json.dumps({"nodes": [asdict(n) for n in nodes]}, indent=2)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _members(root: Path, parties: tuple[str, ...] | None, *, arbiter: bool) -> tuple[list[str], str | None]:
    """The sandbox's parties and its arbiter party (if any): from its manifest, or written there when new."""
    manifest = root / _MANIFEST
    wanted = [*(parties or DEFAULT_PARTIES), *([ARBITER_PARTY] if arbiter else [])]
    if manifest.exists():
        recorded = json.loads(manifest.read_text())
        existing: list[str] = recorded["parties"]
        existing_arbiter: str | None = recorded.get("arbiter")
        if arbiter and existing_arbiter is None:
            raise ConfigError(
                f"the sandbox at {root} has parties {existing} and no arbiter; for a sandbox with an arbiter use "
                f"another --home, or stop this one (`fedbench sandbox down --home {root}`), remove {root} and "
                "run `fedbench sandbox up --arbiter` again"
            )
        if parties and set(wanted) != set(existing):
            raise ConfigError(
                f"the sandbox at {root} has parties {existing}; use another --home for {wanted}"
            )
        return existing, existing_arbiter
    if len(set(wanted)) != len(wanted) or len(wanted) < 2:
        raise ConfigError(
            f"a sandbox needs two or more distinct parties, got {wanted}"
            + (f" (--arbiter adds {ARBITER_PARTY!r}: do not name it with --party)" if arbiter else "")
        )
    recorded = {"parties": wanted, **({"arbiter": ARBITER_PARTY} if arbiter else {})}
    manifest.write_text(json.dumps(recorded) + "\n")
    return wanted, recorded.get("arbiter")


def _demo_rows(given: int | None) -> int:
    """The demo credit table's rows: `given`, else `$FEDBENCH_SANDBOX_DEMO_ROWS`, else 30,000 (at least 1,000)."""
    if given is None:
        text = os.environ.get(DEMO_ROWS_ENV, "").strip()
        if not text:
            return DEMO_CREDIT_ROWS
        try:
            given = int(text)
        except ValueError:
            raise ConfigError(
                f"{DEMO_ROWS_ENV}={text!r} is not a whole number; set it to e.g. 6000, or unset it"
            ) from None
    if type(given) is not int or given < 1_000:
        raise ConfigError(f"demo_rows must be a whole number of at least 1000, got {given!r}")
    return given


def _warm_workers(given: int | None) -> int | None:
    """The pool size for new nodes: `given`, else `$FEDBENCH_SANDBOX_WARM_WORKERS`, else None (node default)."""
    if given is None:
        text = os.environ.get(WARM_WORKERS_ENV, "").strip()
        if not text:
            return None
        try:
            given = int(text)
        except ValueError:
            raise ConfigError(
                f"{WARM_WORKERS_ENV}={text!r} is not a whole number; set it to e.g. 0 or 2, or unset it"
            ) from None
    if type(given) is not int or not 0 <= given <= 32:
        raise ConfigError(f"warm_workers must be a whole number from 0 to 32, got {given!r}")
    return given


def _ensure_federation(
    root: Path,
    members: list[str],
    component_modules: list[str],
    database_url: str | None,
    warm_workers: int | None = None,
) -> None:
    """Make what is missing (the CA, certificates, node homes on free ports), give new ports to a stopped node
    another program took a port of, and make every node's peers name the others' current addresses."""
    ca_dir = root / "ca"
    if not (ca_dir / "ca.pem").exists():
        init_ca(ca_dir, name="fedbench sandbox CA")
    new = [p for p in members if not NodeHome(root / p).config_file.exists()]
    taken = _ports_taken(root, [p for p in members if p not in new])
    picked = iter(free_ports(2 * (len(new) + len(taken))))
    ports = {party: (next(picked), next(picked)) for party in [*new, *taken]}
    for party in taken:
        node_home = NodeHome(root / party)
        fed_port, control_port = ports[party]
        config = node_home.load_config()
        log.warning(
            "sandbox: another program listens on a port of %s's node (federation %s, control %s); "
            "it now listens on federation %s, control %s",
            party,
            config.federation_port,
            config.control_port,
            fed_port,
            control_port,
        )
        node_home.save_config(
            config.model_copy(update={"federation_port": fed_port, "control_port": control_port})
        )
    for party in members:
        node_home = NodeHome(root / party)
        if not (node_home.tls_dir / "party.pem").exists():
            issue_party(ca_dir, node_home.tls_dir, party)
        if party in new:
            fed_port, control_port = ports[party]
            config = NodeConfig(
                party=party,
                federation_port=fed_port,
                control_port=control_port,
                crl_path=str(ca_dir / "crl.pem"),
                component_modules=component_modules,
                database_url=_database_url(database_url, root, party),
            )
            if warm_workers is not None:
                config = config.model_copy(update={"warm_workers": warm_workers})
            node_home.save_config(config)
            node_home.api_token(create=True)
    addresses = {p: NodeHome(root / p).load_config().federation_address for p in members}
    for party in members:
        node_home = NodeHome(root / party)
        config = node_home.load_config()
        peers = {p: a for p, a in addresses.items() if p != party}
        if config.peers != peers:
            node_home.save_config(config.model_copy(update={"peers": peers}))


def _ports_taken(root: Path, parties: list[str]) -> list[str]:
    """Of these parties, the stopped ones another program has taken a port of (since the sandbox was made).

    They get new ports, and their peers' node.json follows; only while no node of the sandbox runs, since a
    running node keeps its peers' addresses in memory: else a ConfigError says to restart the sandbox.
    """
    running = [party for party in parties if _running(NodeHome(root / party)) is not None]
    taken = [
        party
        for party in parties
        if party not in running and _held(_listening(NodeHome(root / party).load_config()))
    ]
    if taken and running:
        raise ConfigError(
            f"another program listens on a port of {', '.join(taken)}'s node, while {', '.join(running)} "
            f"runs: stop the sandbox (`{_command(root, 'down')}`), then start it again (`{_command(root, 'up')}`): "
            "the stopped nodes then get new ports"
        )
    return taken


def _listening(config: NodeConfig) -> list[tuple[str, int]]:
    """Where a node listens: its federation and control addresses."""
    return [(config.federation_host, config.federation_port), (config.control_host, config.control_port)]


def _held(addresses: list[tuple[str, int]], grace: float = 2.0) -> bool:
    """Whether a server listens on one of these addresses, and still does after `grace` seconds: a node that
    was just killed keeps its sockets for some milliseconds after it is reported stopped."""
    give_up = time.monotonic() + grace
    while not all(can_listen(host, port) for host, port in addresses):
        if time.monotonic() > give_up:
            return True
        time.sleep(0.1)
    return False


def _database_url(template: str | None, root: Path, party: str) -> str | None:
    if template is None:
        return None
    sandbox_id = hashlib.sha256(str(root).encode()).hexdigest()[:10]
    return template.replace("{party}", party.replace("-", "_")).replace("{sandbox}", sandbox_id)


def _running(node_home: NodeHome) -> int | None:
    """The pid of the node if its process is alive (a stale pid file is removed)."""
    try:
        pid = int(node_home.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    _reap_zygotes()
    if not _alive(pid):
        _forget_pid(node_home, pid)
        return None
    return pid


def _reap_zygotes() -> None:
    """Reap the node-forking processes of this process whose nodes have all exited (each then exits too)."""
    _ZYGOTES[:] = [zygote for zygote in _ZYGOTES if zygote.poll() is None]


def _zombie(pid: int) -> bool:
    """Whether `pid` has exited but its parent has not reaped it yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state == "Z"


def _answering(node_home: NodeHome) -> bool:
    """Whether the node runs and answers; a process that is alive but mute (dying, hung) is stopped."""
    pid = _running(node_home)
    if pid is None:
        return False
    client = NodeClient.for_home(node_home)
    try:
        client.health(timeout=3.0)
        return True
    except FedbenchError:
        _terminate(pid, timeout=5.0)
        _forget_pid(node_home, pid)
        return False
    finally:
        client.close()


def _forget_pid(node_home: NodeHome, pid: int) -> None:
    """Remove the pid file only if it still names `pid` (a new node may have written its own meanwhile)."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        if int(node_home.pid_file.read_text().strip()) == pid:
            node_home.pid_file.unlink()


def _spawn(root: Path, parties: list[str]) -> dict[str, int]:
    """Start these parties' nodes, forked from one process that imports the node's modules once
    (`fedbench.sandbox_zygote`, or a fork of the zygote server `$FEDBENCH_SANDBOX_ZYGOTE` names when it
    answers); returns each node's pid."""
    if not parties:
        return {}
    homes = [NodeHome(root / party) for party in parties]
    for home in homes:
        home.pid_file.unlink(missing_ok=True)
    server = os.environ.get(sandbox_zygote_server.ENV)
    served = None
    if server:
        served = sandbox_zygote_server.request(server, [str(h.root) for h in homes], root, homes[0].log_file)
    pids = served or _start_zygote(root, homes)
    if len(pids) != len(parties):
        raise NodeError(f"the sandbox's nodes could not be started; log:\n{_log_tail(homes[0])}")
    return dict(zip(parties, pids, strict=True))


def _start_zygote(root: Path, homes: list[NodeHome]) -> list[int]:
    """Start a `fedbench.sandbox_zygote` of our own for `homes`; the pids of the nodes it forked."""
    with open(homes[0].log_file, "ab") as errors:
        zygote = subprocess.Popen(
            [sys.executable, "-m", "fedbench.sandbox_zygote", *(str(home.root) for home in homes)],
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=root,
        )
    _ZYGOTES.append(zygote)
    assert zygote.stdout is not None
    with zygote.stdout:
        return [int(line) for line in zygote.stdout if line.strip().isdigit()]


def _wait_healthy(node_home: NodeHome, timeout: float, pid: int | None = None) -> None:
    """Wait until the node answers; a node we just started that exits meanwhile fails at once, not at timeout.

    The node is asked only once it has written its pid file (once it serves): a call to a port no one listens
    on yet would hold the channel's next try back by gRPC's reconnect backoff, about a second.
    """
    client = NodeClient.for_home(node_home)
    give_up = time.monotonic() + timeout
    try:
        while True:
            if _running(node_home):
                with contextlib.suppress(FedbenchError):
                    client.health(timeout=2.0)
                    return
            if pid is not None and not _alive(pid):
                raise NodeError(
                    f"node {node_home.root.name} stopped as it started; log:\n{_log_tail(node_home)}"
                )
            if time.monotonic() > give_up:
                raise NodeError(
                    f"node {node_home.root.name} did not start within {timeout:g} s; log:\n{_log_tail(node_home)}"
                )
            time.sleep(0.05)
    finally:
        client.close()


def _log_tail(node_home: NodeHome) -> str:
    """The end of the node's log, where a failed start says why."""
    return node_home.log_file.read_text(errors="replace")[-2000:] if node_home.log_file.exists() else ""


def _terminate(pid: int, timeout: float) -> None:
    """Stop one process: SIGTERM, then SIGKILL if it still runs after `timeout` seconds."""
    _terminate_all([pid], timeout)


def _terminate_all(pids: list[int], timeout: float) -> None:
    """Stop these processes together: SIGTERM to each, then SIGKILL to those still running after `timeout`."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    give_up = time.monotonic() + timeout
    waiting = set(pids)
    while waiting and time.monotonic() < give_up:
        waiting = {pid for pid in waiting if _alive(pid)}
        if waiting:
            time.sleep(0.02)
    for pid in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (one that exited and is not reaped yet, a zombie, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return not _zombie(pid)


def _register_demo_data(root: Path, members: list[str], credit_rows: int) -> None:
    from fedbench.client.datasets import Datasets
    from fedbench.datasets import breast_cancer_vertical, credit_vertical

    credit = credit_vertical(credit_rows)
    cancer = breast_cancer_vertical()
    demo: dict[str, dict[str, tuple[pd.DataFrame, str | None]]] = {
        members[0]: {"credit": (credit[0], "default"), "breast_cancer": (cancer[0], "y")},
        members[1]: {"credit": (credit[1], None), "breast_cancer": (cancer[1], None)},
    }
    for party, tables in demo.items():
        client = NodeClient.for_home(NodeHome(root / party))
        try:
            datasets = Datasets(client)
            known = {d.name for d in datasets.list()}
            for name, (frame, label) in tables.items():
                if name not in known:
                    datasets.upload(frame, name=name, id_column="id", label_column=label)
        finally:
            client.close()


DEMO_PROJECT = "demo"


def _create_demo_project(root: Path, members: list[str], arbiter: str | None) -> None:
    """A ready, accepted project of the first two parties (and of the arbiter, without data): run a PSI at once.

    Idempotent: a member that has not accepted yet (an interrupted earlier `up`) accepts now.
    """
    from fedbench.client.projects import Projects

    initiator = NodeClient.for_home(NodeHome(root / members[0]))
    partner = NodeClient.for_home(NodeHome(root / members[1]))
    coordinator = NodeClient.for_home(NodeHome(root / arbiter)) if arbiter else None
    try:
        if not any(p.name == DEMO_PROJECT for p in Projects(initiator).list()):
            asks = {members[1]: "the host's side of the credit and breast-cancer tables"}
            if arbiter:
                asks[arbiter] = "no data: coordinate the steps that have an arbiter role"
            Projects(initiator).propose(
                DEMO_PROJECT,
                partners=[members[1], *([arbiter] if arbiter else [])],
                datasets=["credit", "breast_cancer"],
                purpose="sandbox demo: PSI, training and scoring on the generated credit data",
                asks=asks,
                jobs_per_day=1000,
                psi_runs=1000,
                min_intersection=10,
                release="both",
            )
        answers = [(partner, ["credit", "breast_cancer"])]
        if coordinator is not None:
            answers.append((coordinator, []))
        for client, datasets in answers:
            if any(p.name == DEMO_PROJECT and p.state == "pending" for p in Projects(client).list()):
                Projects(client).accept(DEMO_PROJECT, datasets=datasets)
    finally:
        initiator.close()
        partner.close()
        if coordinator is not None:
            coordinator.close()


def _branches(root: Path, count: int, parties: tuple[str, ...] | None, arbiter: bool) -> tuple[str, ...]:
    """A horizontal sandbox's parties (branches, then the aggregator), recorded as horizontal when new."""
    if count < 3:
        raise ConfigError(
            f"a horizontal sandbox needs at least 3 data parties (secure aggregation), not {count}"
        )
    if parties or arbiter:
        raise ConfigError(
            "a horizontal sandbox names its own parties: give --parties N without --party or --arbiter"
        )
    wanted = (*(f"branch-{i}" for i in range(1, count + 1)), AGGREGATOR_PARTY)
    manifest = root / _MANIFEST
    if manifest.exists():
        existing = json.loads(manifest.read_text())["parties"]
        if list(existing) != list(wanted):
            raise ConfigError(
                f"the sandbox at {root} has parties {existing}; use another --home for a horizontal one of {count}"
            )
        return wanted
    root.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"parties": list(wanted), "horizontal": count}) + "\n")
    return wanted


def _is_horizontal(root: Path) -> bool:
    return bool(json.loads((root / _MANIFEST).read_text()).get("horizontal"))


def _register_branch_data(root: Path, branches: list[str], credit_rows: int) -> None:
    """Each branch's own rows of the demo credit table, as `credit` (the label `default` included)."""
    from fedbench.client.datasets import Datasets
    from fedbench.datasets.splits import credit_horizontal

    for party, frame in zip(branches, credit_horizontal(credit_rows, n_parties=len(branches)), strict=True):
        client = NodeClient.for_home(NodeHome(root / party))
        try:
            datasets = Datasets(client)
            if "credit" not in {d.name for d in datasets.list()}:
                datasets.upload(frame, name="credit", id_column="id", label_column="default")
        finally:
            client.close()


def _create_branches_project(root: Path, members: list[str]) -> None:
    """The accepted project of every branch (its `credit` rows) and the aggregator (no data); idempotent."""
    from fedbench.client.projects import Projects

    clients = {party: NodeClient.for_home(NodeHome(root / party)) for party in members}
    first, aggregator = members[0], members[-1]
    try:
        if not any(p.name == HORIZONTAL_PROJECT for p in Projects(clients[first]).list()):
            asks = {party: "its own customers' credit rows, same columns as ours" for party in members[1:-1]}
            asks[aggregator] = "no data: add up the branches' masked updates (secure aggregation)"
            Projects(clients[first]).propose(
                HORIZONTAL_PROJECT,
                partners=members[1:],
                datasets=["credit"],
                purpose="sandbox demo: horizontal training and scoring with secure aggregation",
                asks=asks,
                uses=["train", "score"],
                jobs_per_day=1000,
            )
        for party in members[1:]:
            projects = Projects(clients[party])
            if any(p.name == HORIZONTAL_PROJECT and p.state == "pending" for p in projects.list()):
                projects.accept(HORIZONTAL_PROJECT, datasets=[] if party == aggregator else ["credit"])
    finally:
        for client in clients.values():
            client.close()
