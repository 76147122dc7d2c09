"""ECDH-PSI between two party processes over a sandbox federation (mutual TLS), against its floor and a peer.

For each --rows N (default 100,000 and 1,000,000; 50% overlap): two party processes, each with a
`GrpcTransport` through its sandbox node, run `run_psi(release="both")` and report their time and peak memory
(`ru_maxrss` of the party process; its worker processes hold one chunk each). In the same run: (a) the floor,
the same group operations (per ID and side one hash-and-mask and one mask, both sides) on a pool of the same
number of processes, with no network and no bookkeeping; (b) the peer, `openmined-psi` on the same sets, as
two processes (server and client) exchanging its protobuf messages through pipes, with its exact (raw)
set encoding. openmined-psi pins protobuf==6.30.2, which conflicts with grpcio-tools, so it is installed by
this script into a cache folder of its own, never into the environment. CPU seconds of every process
involved are reported too: the machine is shared, and they do not depend on what else runs.
`--candidates` measures the group candidates instead (those importable; see docs/protocols/psi.md).
`--arbiter` measures the arbiter gate instead: on one three-node sandbox (guest, host, a data-less arbiter),
`psi` jobs with `release="both"` in a two-party project beside `count_only` counted by the arbiter in a
project of the three, alternating, on the same datasets (see docs/protocols/psi.md, "The arbiter gate").
Run: `python benchmarks/psi.py --rows 100000 1000000` (`--arbiter --rows 100000 1000000`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver
from multiprocessing.connection import Listener
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import Channel, markdown_table, median, record, start_channel  # noqa: E402

from fedbench import sandbox  # noqa: E402
from fedbench.client.control import NodeClient  # noqa: E402
from fedbench.net.certs import PartyCredentials  # noqa: E402
from fedbench.net.peer import PeerClient  # noqa: E402
from fedbench.net.tls import TlsMaterial  # noqa: E402
from fedbench.net.transport import GrpcTransport  # noqa: E402
from fedbench.node.config import NodeHome  # noqa: E402
from fedbench.psi import group, run_psi  # noqa: E402

PEER_DIR = (
    Path(os.environ.get("FEDBENCH_BENCH_CACHE", "~/.cache/fedbench-bench")).expanduser() / "openmined-psi"
)
DOMAIN_KEY = b"fedbench-benchmark-project-key"

PEER_SCRIPT = r"""
import json, resource, sys, time
from multiprocessing.connection import Client
import private_set_intersection.python as psi
role, n, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
start = n // 2 if role == "server" else 0
items = [f"user-{i:010d}@example.com" for i in range(start, start + n)]
conn = Client((host, port))
conn.send(role)
conn.recv()
began = time.perf_counter()
if role == "server":
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(1e-9, n, items, psi.DataStructure.RAW)
    conn.send_bytes(setup.SerializeToString())
    request = psi.Request()
    request.ParseFromString(conn.recv_bytes())
    conn.send_bytes(server.ProcessRequest(request).SerializeToString())
    size = -1
else:
    client = psi.client.CreateWithNewKey(True)
    conn.send_bytes(client.CreateRequest(items).SerializeToString())
    setup = psi.ServerSetup()
    setup.ParseFromString(conn.recv_bytes())
    response = psi.Response()
    response.ParseFromString(conn.recv_bytes())
    size = len(client.GetIntersection(setup, response))
usage = resource.getrusage(resource.RUSAGE_SELF)
conn.send(json.dumps({"seconds": time.perf_counter() - began, "size": size, "maxrss_kb": usage.ru_maxrss,
                      "cpu": usage.ru_utime + usage.ru_stime}))
"""


def party_ids(role: str, n: int) -> list[str]:
    """The initiator holds IDs 0..n-1, the partner n/2..3n/2-1: half of each set is in the intersection."""
    start = n // 2 if role == "partner" else 0
    return [f"user-{i:010d}@example.com" for i in range(start, start + n)]


def party_main(args: argparse.Namespace) -> None:
    """One party process: wait for "go" on stdin, run the PSI over the sandbox, print a JSON line."""
    root = Path(args.home)
    home = NodeHome(root / args.party)
    key, cert, ca = PartyCredentials.from_dir(home.tls_dir).load()
    tls = TlsMaterial(key=key, cert=cert, ca=ca)

    @functools.cache
    def peer_client(peer: str) -> PeerClient:
        return PeerClient(args.party, peer, NodeHome(root / peer).load_config().federation_address, tls)

    transport = GrpcTransport(
        args.party,
        peer_client,
        NodeClient.for_home(home).recv,
        send_deadline=600,
        project=Channel(root).project(args.party),
    )
    ids = party_ids(args.role, args.rows[0])
    print("ready", flush=True)
    sys.stdin.readline()
    began, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    result = run_psi(
        transport,
        role=args.role,
        peer=args.peer,
        ids=ids,
        domain_key=DOMAIN_KEY,
        key_prefix=args.key,
        release="both",
        workers=args.workers,
        progress=(
            lambda f, m: print(f"{time.perf_counter() - began:7.2f} s {args.party}: {m}", file=sys.stderr)
        )
        if args.verbose
        else None,
    )
    seconds = time.perf_counter() - began
    assert result.indices is not None
    digest = hashlib.sha256("\n".join(ids[i] for i in result.indices).encode()).hexdigest()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    server_pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    workers_cpu = proc_cpu(server_pid, children=True) if server_pid else 0.0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "size": result.intersection_size,
                "digest": digest,
                "maxrss_kb": usage.ru_maxrss,
                "cpu": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime + workers_cpu,
                "workers_cpu": workers_cpu,
            }
        ),
        flush=True,
    )


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process from /proc (with its reaped children's when asked): the worker processes
    of a pool are children of the fork server, so they are counted there."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def run_ours(root: Path, rows: int, workers: int, verbose: bool = False) -> dict[str, Any]:
    """Both party processes, started together once each has built its IDs and transport."""
    key = f"{Channel(root).job_id}/psi-{uuid.uuid4().hex[:12]}"
    procs = {}
    for party, role, peer in (("guest", "initiator", "host"), ("host", "partner", "guest")):
        command = [sys.executable, __file__, "--party", party, "--role", role, "--peer", peer]
        command += ["--rows", str(rows), "--home", str(root), "--key", key, "--workers", str(workers)]
        command += ["--verbose"] if verbose else []
        procs[role] = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for proc in procs.values():
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    nodes = [node.pid for node in sandbox.status(root) if node.pid]
    nodes_cpu = sum(proc_cpu(pid) for pid in nodes)
    began = time.perf_counter()
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    out = {}
    for role, proc in procs.items():
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if proc.wait() != 0 or not line:
            raise SystemExit(f"the {role} party process failed")
        out[role] = json.loads(line)
    wall = time.perf_counter() - began
    nodes_cpu = sum(proc_cpu(pid) for pid in nodes) - nodes_cpu
    initiator, partner = out["initiator"], out["partner"]
    if not initiator["size"] == partner["size"] == rows // 2 or initiator["digest"] != partner["digest"]:
        raise SystemExit(f"wrong or misaligned intersection: {out}")
    cpu = initiator["cpu"] + partner["cpu"] + nodes_cpu
    print(
        f"  cpu: parties {initiator['cpu']:.1f} + {partner['cpu']:.1f} (workers and fork server "
        f"{initiator['workers_cpu']:.1f} + {partner['workers_cpu']:.1f}), nodes {nodes_cpu:.1f}",
        flush=True,
    )
    return {
        "wall": wall,
        "cpu": cpu,
        **{f"{role}_{k}": v for role, values in out.items() for k, v in values.items()},
    }


_BARRIER: Any = None


def _floor_init(barrier: Any) -> None:
    global _BARRIER
    _BARRIER = barrier


def _floor_share(ranges: list[tuple[int, int]]) -> tuple[float, float, float]:
    """One worker's share: build its IDs, wait for the others, then time only the group operations."""
    ids = [f"user-{i:010d}@example.com" for start, stop in ranges for i in range(start, stop)]
    first = group.Masker(group.new_secret(), DOMAIN_KEY)
    second = group.Masker(group.new_secret(), DOMAIN_KEY)
    _BARRIER.wait()
    began, cpu = time.perf_counter(), time.process_time()
    second.mask(first.hash_mask(ids))
    return began, time.perf_counter(), time.process_time() - cpu


def run_floor(rows: int, workers: int) -> dict[str, float]:
    """Both parties' group operations (hash-and-mask, then mask, of every ID of each side) on `workers`
    processes started together; the wall time from the first start to the last end."""
    context = multiprocessing.get_context("forkserver")
    cuts = [rows * w // workers for w in range(workers + 1)]
    shares = [
        [(cuts[w], cuts[w + 1]), (rows // 2 + cuts[w], rows // 2 + cuts[w + 1])] for w in range(workers)
    ]
    barrier = context.Barrier(workers)
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_floor_init, initargs=(barrier,)
    ) as pool:
        spans = list(pool.map(_floor_share, shares))
    wall = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return {"wall": wall, "cpu": sum(cpu for _, _, cpu in spans)}


def ensure_peer() -> str | None:
    """The folder holding openmined-psi, installed there if needed; None (reason printed) if it cannot be."""
    probe = [sys.executable, "-c", "import private_set_intersection.python"]
    env = {**os.environ, "PYTHONPATH": str(PEER_DIR)}
    if subprocess.run(probe, env=env, capture_output=True).returncode == 0:
        return str(PEER_DIR)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(PEER_DIR), "openmined-psi"]
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode != 0 or subprocess.run(probe, env=env, capture_output=True).returncode != 0:
        print(f"openmined-psi could not be installed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return str(PEER_DIR)


def run_peer(path: str, rows: int) -> dict[str, Any]:
    """openmined-psi as a server and a client process; this process relays their messages through pipes."""
    env = {**os.environ, "PYTHONPATH": path}
    with Listener(("127.0.0.1", 0)) as listener:
        host, port = listener.address
        procs = [
            subprocess.Popen([sys.executable, "-c", PEER_SCRIPT, role, str(rows), host, str(port)], env=env)
            for role in ("server", "client")
        ]
        conns = [listener.accept() for _ in procs]
        by_role = {conn.recv(): conn for conn in conns}
        server, client = by_role["server"], by_role["client"]
        began = time.perf_counter()
        for conn in (server, client):
            conn.send("go")
        request = client.recv_bytes()
        setup = server.recv_bytes()
        server.send_bytes(request)
        response = server.recv_bytes()
        client.send_bytes(setup)
        client.send_bytes(response)
        client_result = json.loads(client.recv())
        wall = time.perf_counter() - began
        server_result = json.loads(server.recv())
        for proc in procs:
            proc.wait()
    if client_result["size"] != rows // 2:
        raise SystemExit(f"openmined-psi found {client_result['size']} rows, expected {rows // 2}")
    return {
        "wall": wall,
        "cpu": client_result["cpu"] + server_result["cpu"],
        "client_maxrss_kb": client_result["maxrss_kb"],
        "server_maxrss_kb": server_result["maxrss_kb"],
    }


def candidates(keep: bool) -> None:
    """Rates of the group candidates importable here, one core: hash to group is SHA-512 then the library's
    map (none for X25519: any 32 bytes are a u-coordinate); scalar mult includes decoding the element."""
    n = 20_000
    inputs = [b"user-%010d@example.com" % i for i in range(n)]
    rows = []

    def rate(fn: Any, items: list[Any]) -> float:
        began = time.perf_counter()
        for item in items:
            fn(item)
        return len(items) / (time.perf_counter() - began)

    def add(name: str, to_group: Any, mult: Any, note: str = "") -> None:
        points = [to_group(item) for item in inputs]
        rows.append([name, f"{rate(to_group, inputs):,.0f}", f"{rate(mult, points):,.0f}", note])

    def sha512(item: bytes) -> bytes:
        return hashlib.sha512(item).digest()

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    exchange = X25519PrivateKey.generate().exchange
    add(
        "X25519, OpenSSL (`cryptography`)",
        lambda item: sha512(item)[:32],
        lambda u: exchange(X25519PublicKey.from_public_bytes(u)),
        "chosen",
    )
    masker = group.Masker(group.new_secret(), DOMAIN_KEY)
    ids = [item.decode() for item in inputs]
    began = time.perf_counter()
    masker.hash_mask(ids)
    rows.append(
        [
            "  as run by fedbench.psi.group: hash and mask, per ID",
            "-",
            f"{n / (time.perf_counter() - began):,.0f}",
            "",
        ]
    )
    try:
        import nacl.bindings as nb

        scalar = nb.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        add(
            "edwards25519 prime-order subgroup, libsodium (PyNaCl)",
            lambda item: nb.crypto_core_ed25519_from_uniform(sha512(item)[:32]),
            lambda p: nb.crypto_scalarmult_ed25519_noclamp(scalar, p),
            "PyNaCl 1.6 has no ristretto255 bindings; its mult also checks subgroup membership",
        )
        add(
            "X25519, libsodium (PyNaCl)",
            lambda item: sha512(item)[:32],
            lambda u: nb.crypto_scalarmult(scalar, u),
        )
    except ImportError:
        rows.append(["PyNaCl", "-", "-", "not importable"])
    for module_name, label in (("pysodium", "system libsodium via ctypes"), ("rbcl", "bundled libsodium")):
        try:
            module = __import__(module_name)
        except (ImportError, OSError):
            rows.append([f"ristretto255, {module_name}", "-", "-", "not importable"])
            continue
        secret = module.crypto_core_ristretto255_scalar_random()
        add(
            f"ristretto255, {module_name} ({label})",
            lambda item, m=module: m.crypto_core_ristretto255_from_hash(sha512(item)),
            functools.partial(module.crypto_scalarmult_ristretto255, secret),
        )
    table = markdown_table(["candidate", "hash to group /s", "scalar mult /s", "notes"], rows)
    if not keep:
        print(table)
        return
    record(
        "psi.py --candidates: group operations per second, one core",
        table,
        f"{n:,} operations each, one process; load average (1 min) {os.getloadavg()[0]:.1f}.",
    )


def arbiter_gate(rows_list: list[int], repeats: int, keep: bool) -> None:
    """`both` two-party beside `count_only` through the arbiter, as jobs on a three-node sandbox (same run)."""
    import pandas as pd

    import fedbench

    root = Path(tempfile.mkdtemp(prefix="fedbench-psi-arbiter-bench-"))
    sandbox.up(root, arbiter=True, demo_data=False)
    guest, host, arbiter = (fedbench.connect(home=root / p) for p in ("guest", "host", "arbiter"))
    table, loads = [], []
    try:
        for rows in rows_list:
            data = {"guest": f"g{rows}", "host": f"h{rows}"}
            for side, role in ((guest, "initiator"), (host, "partner")):
                frame = pd.DataFrame({"id": party_ids(role, rows)})
                side.datasets.upload(frame, name=data["guest" if side is guest else "host"], id_column="id")
            terms = {"psi_runs": 1000, "jobs_per_day": 1000}
            guest.projects.propose(
                f"pair{rows}",
                partners="host",
                datasets=[data["guest"]],
                release="both",
                min_intersection=0,
                **terms,
            )
            host.projects.accept(f"pair{rows}", datasets=[data["host"]])
            guest.projects.propose(
                f"gate{rows}",
                partners=["host", "arbiter"],
                datasets=[data["guest"]],
                release="count_only",
                **terms,
            )
            arbiter.projects.accept(f"gate{rows}", datasets=[])
            host.projects.accept(f"gate{rows}", datasets=[data["host"]])
            timings: dict[str, list[tuple[float, float]]] = {"pair": [], "gate": []}
            for repeat in range(repeats):
                for name in ("pair", "gate") if repeat % 2 == 0 else ("gate", "pair"):
                    loads.append(os.getloadavg()[0])
                    project = guest.project(f"{name}{rows}")
                    began = time.perf_counter()
                    run = project.run("psi", data=data, id_column="id", force=True)
                    run.wait(timeout=3600, show_progress=False)
                    wall = time.perf_counter() - began
                    metrics = run.output("metrics").value()
                    if metrics["intersection_size"] != rows // 2:
                        raise SystemExit(f"{name}: wrong intersection {metrics['intersection_size']}")
                    timings[name].append((wall, float(metrics["seconds"])))
                    print(
                        f"  {rows:,} {name}: job {wall:.1f} s, protocol {metrics['seconds']:.1f} s",
                        flush=True,
                    )
            pair = median([w for w, _ in timings["pair"]]), median([s for _, s in timings["pair"]])
            gate = median([w for w, _ in timings["gate"]]), median([s for _, s in timings["gate"]])
            table.append(
                [
                    f"{rows:,}",
                    f"{pair[0]:.1f}",
                    f"{pair[1]:.1f}",
                    f"{gate[0]:.1f}",
                    f"{gate[1]:.1f}",
                    f"{gate[0] / pair[0]:.2f}x",
                    f"{gate[1] / pair[1]:.2f}x",
                ]
            )
            print(table[-1], flush=True)
    finally:
        sandbox.down(root)
        shutil.rmtree(root, ignore_errors=True)
    headers = [
        "rows per side",
        "`both`, two-party: job wall (s)",
        "its protocol (s)",
        "`count_only` via the arbiter: job wall (s)",
        "its protocol (s)",
        "job wall ratio",
        "protocol ratio",
    ]
    if not keep:
        print(markdown_table(headers, table))
        return
    record(
        "psi.py --arbiter: `count_only` counted by the arbiter beside `both` (two-party), as psi jobs",
        markdown_table(headers, table),
        f"One three-node sandbox (guest, host, data-less arbiter) on this machine; the same datasets (50% "
        f"overlap) in a two-party project (`both`, no minimum) and a project of the three (`count_only`); "
        f"median of {repeats} runs each, alternating which goes first. Job wall: from submitting the job to the "
        f"guest seeing it succeed (node scheduling, ID preparation, outputs included); protocol: the guest's "
        f"`run_psi` seconds (its metrics). Load average (1 min) before the runs: "
        f"{', '.join(f'{x:.1f}' for x in loads)} (the machine is shared).",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of fedbench and the floor, alternating")
    parser.add_argument("--peer-repeats", type=int, default=1, help="runs of openmined-psi (slow)")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--candidates", action="store_true")
    parser.add_argument("--arbiter", action="store_true", help="count_only via the arbiter beside both")
    parser.add_argument(
        "--no-record", action="store_true", help="print the table, do not append to RESULTS.md"
    )
    parser.add_argument("--verbose", action="store_true", help="the parties print their progress")
    parser.add_argument("--party")
    parser.add_argument("--role")
    parser.add_argument("--peer")
    parser.add_argument("--home")
    parser.add_argument("--key")
    args = parser.parse_args()
    if args.party:
        party_main(args)
        return
    if args.candidates:
        candidates(keep=not args.no_record)
        return
    if args.arbiter:
        arbiter_gate(args.rows, args.repeats, keep=not args.no_record)
        return
    peer_path = None if args.no_peer else ensure_peer()
    root = Path(tempfile.mkdtemp(prefix="fedbench-psi-bench-"))
    start_channel(root)  # the sandbox, with a job running on both nodes that the PSI messages go into
    table = []
    loads = []
    try:
        for rows in args.rows:
            ours, floors, peers = [], [], []
            for repeat in range(args.repeats):
                loads.append(os.getloadavg()[0])
                if repeat % 2:
                    floors.append(run_floor(rows, args.workers))
                ours.append(run_ours(root, rows, args.workers, args.verbose))
                if not repeat % 2:
                    floors.append(run_floor(rows, args.workers))
                if peer_path and repeat < args.peer_repeats:
                    peers.append(run_peer(peer_path, rows))
            wall, floor = median([o["wall"] for o in ours]), median([f["wall"] for f in floors])
            cpu, floor_cpu = median([o["cpu"] for o in ours]), median([f["cpu"] for f in floors])
            peer_wall = median([p["wall"] for p in peers]) if peers else None
            peer_cpu = median([p["cpu"] for p in peers]) if peers else None
            table.append(
                [
                    f"{rows:,}",
                    f"{wall:.1f}",
                    f"{floor:.1f}",
                    f"{wall / floor:.2f}x",
                    f"{cpu:.1f}",
                    f"{floor_cpu:.1f}",
                    f"{cpu / floor_cpu:.2f}x",
                    f"{peer_wall:.1f}" if peer_wall else "n/a",
                    f"{peer_wall / wall:.2f}x" if peer_wall else "n/a",
                    f"{peer_cpu:.1f}" if peer_cpu else "n/a",
                    f"{peer_cpu / cpu:.2f}x" if peer_cpu else "n/a",
                    f"{max(o['initiator_maxrss_kb'] for o in ours) / 1024:.0f} / "
                    f"{max(o['partner_maxrss_kb'] for o in ours) / 1024:.0f}",
                    f"{max(p['client_maxrss_kb'] for p in peers) / 1024:.0f} / "
                    f"{max(p['server_maxrss_kb'] for p in peers) / 1024:.0f}"
                    if peers
                    else "n/a",
                ]
            )
            print(table[-1], flush=True)
    finally:
        sandbox.down(root)
        shutil.rmtree(root, ignore_errors=True)
    headers = [
        "rows per side",
        "fedbench wall (s)",
        "floor wall (s)",
        "wall / floor",
        "fedbench CPU (s)",
        "floor CPU (s)",
        "CPU / floor",
        "openmined-psi wall (s)",
        "openmined / fedbench",
        "openmined CPU (s)",
        "openmined CPU / fedbench CPU",
        "peak RSS initiator / partner (MB)",
        "peak RSS openmined client / server (MB)",
    ]
    peer_note = (
        "openmined-psi 2.0.6 (P-256, raw set encoding, fpr 1e-9), server and client processes relaying through "
        "pipes (no network)"
        if peer_path
        else "openmined-psi could not be installed here: no peer figures"
    )
    if args.no_record:
        print(markdown_table(headers, table))
        return
    record(
        "psi.py: ECDH-PSI, two party processes over mutual-TLS gRPC vs floor and openmined-psi",
        markdown_table(headers, table),
        f"release='both', 50% overlap, {args.workers} worker processes per party, both parties on this machine; "
        f"median of {args.repeats} (fedbench and floor, alternating which goes first), "
        f"{args.peer_repeats} of the peer. Floor: the same group operations (X25519, per ID and side one "
        f"hash-and-mask and one mask) on {args.workers} processes, no network, no bookkeeping. Peer: "
        f"{peer_note}. fedbench CPU: both party processes with their worker processes and both nodes. "
        f"Load average (1 min) before the runs: {', '.join(f'{x:.1f}' for x in loads)} (the machine is shared). "
        "Targets: <= 1.3x the floor, >= 1.5x faster than the peer, <= 1.5 GB per party at 1M.",
    )


if __name__ == "__main__":
    main()
