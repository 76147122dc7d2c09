"""Transport throughput between two sandbox nodes over mutual TLS, against raw grpcio with the same TLS.

Big payload: one message of --mb megabytes (default 100) pushed from a guest-credentialed client to the host
node, timed until the host has received, decoded and filed it; the baseline streams the same bytes in the same
chunk size to a bare grpcio server (separate process, same certificates) that only collects them.
Small messages: --small messages (default 100,000) of 100 bytes, one call each, sequentially, against the same
two servers (the baseline as plain unary calls). Medians over repeats. Run: `python benchmarks/transport.py`.
Our messages go into a long job running on both nodes, with its project's token, as every message must.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record, start_channel  # noqa: E402

from fedbench import sandbox  # noqa: E402
from fedbench.client.control import NodeClient  # noqa: E402
from fedbench.net.certs import PartyCredentials  # noqa: E402
from fedbench.net.peer import PeerClient  # noqa: E402
from fedbench.net.rpc import CHUNK_BYTES  # noqa: E402
from fedbench.net.tls import TlsMaterial, channel_options, client_credentials  # noqa: E402
from fedbench.node.config import NodeHome  # noqa: E402

RAW_SERVER = r"""
import sys, threading
from concurrent import futures
import grpc
key, cert, ca = (open(p, "rb").read() for p in sys.argv[1:4])
def collect(chunks, context):
    body = bytearray()
    for chunk in chunks:
        body += chunk
    return len(body).to_bytes(8, "big")
def echo(request, context):
    return b"ok"
server = grpc.server(futures.ThreadPoolExecutor(16))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("raw.Bench", {
    "Collect": grpc.stream_unary_rpc_method_handler(collect),
    "Small": grpc.unary_unary_rpc_method_handler(echo)}),))
creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
port = server.add_secure_port("127.0.0.1:0", creds)
server.start()
print(port, flush=True)
threading.Event().wait()
"""


def _chunks(data: bytes):
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_BYTES):
        yield bytes(view[start : start + CHUNK_BYTES])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small", type=int, default=100_000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="fedbench-bench-"))
    job = start_channel(root)
    host_home, guest_home = NodeHome(root / "host"), NodeHome(root / "guest")
    g_key, g_cert, ca = PartyCredentials.from_dir(guest_home.tls_dir).load()
    h_tls = PartyCredentials.from_dir(host_home.tls_dir)
    raw = subprocess.Popen(
        [sys.executable, "-c", RAW_SERVER, str(h_tls.key_path), str(h_tls.cert_path), str(h_tls.ca_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        raw_port = int(raw.stdout.readline())  # type: ignore[union-attr]
        guest_tls = TlsMaterial(key=g_key, cert=g_cert, ca=ca)
        ours = PeerClient("guest", "host", host_home.load_config().federation_address, guest_tls)
        host = NodeClient.for_home(host_home)
        channel = grpc.secure_channel(
            f"127.0.0.1:{raw_port}", client_credentials(guest_tls), options=channel_options("host")
        )
        collect = channel.stream_unary("/raw.Bench/Collect")
        small = channel.unary_unary("/raw.Bench/Small")

        raw_bytes = np.random.default_rng(0).integers(0, 256, args.mb << 20, dtype=np.uint8).tobytes()
        payloads = {"float64 array": np.frombuffer(raw_bytes, dtype=np.float64), "bytes": raw_bytes}
        mb = len(raw_bytes) / 2**20
        rows = []
        for label, payload in payloads.items():
            ours_s, ours_e2e, raw_s = [], [], []
            for _ in range(args.repeats):
                key = job.key(f"big-{uuid.uuid4().hex}")
                start = time.perf_counter()
                ours.push(key, payload, project=job.project("guest"))
                ours_s.append(time.perf_counter() - start)
                host.recv("guest", key, timeout=60)
                ours_e2e.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert int.from_bytes(collect(_chunks(raw_bytes)), "big") == len(raw_bytes)
                raw_s.append(time.perf_counter() - start)
            raw_rate = f"{mb / median(raw_s):.0f}"
            rows.append(
                [
                    f"one {args.mb} MB payload ({label}), MB/s",
                    f"{mb / median(ours_s):.0f}",
                    raw_rate,
                    f"{median(raw_s) / median(ours_s):.0%}",
                ]
            )
            rows.append(
                [
                    "  same, then received by a kernel via the control API",
                    f"{mb / median(ours_e2e):.0f}",
                    raw_rate,
                    f"{median(raw_s) / median(ours_e2e):.0%}",
                ]
            )

        message = b"x" * 100
        batch = max(1, args.small // 10)
        ours_rate, raw_rate_small = [], []
        key = job.key(f"small-{uuid.uuid4().hex}")
        for _ in range(max(1, args.small // batch)):
            start = time.perf_counter()
            for _ in range(batch):
                ours.push(key, message, project=job.project("guest"))
            ours_rate.append(batch / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(batch):
                small(message)
            raw_rate_small.append(batch / (time.perf_counter() - start))
        rows.append(
            [
                f"{args.small} messages of 100 B, msg/s",
                f"{median(ours_rate):.0f}",
                f"{median(raw_rate_small):.0f}",
                f"{median(ours_rate) / median(raw_rate_small):.0%}",
            ]
        )
        table = markdown_table(["case (median)", "fedbench", "raw grpcio, same TLS", "ratio"], rows)
        record(
            "transport.py: node-to-node over mutual TLS vs raw grpcio",
            table,
            f"{args.repeats} repeats of the big payload; small messages in 10 batches, sequential calls; "
            f"chunks of {CHUNK_BYTES >> 10} KiB. Target: big-payload ratio >= 70%.",
        )
    finally:
        raw.kill()
        sandbox.down(root)


if __name__ == "__main__":
    main()
