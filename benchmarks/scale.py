"""The local process pool vs the party's Dask cluster (1 and 2 workers, TLS), same run: PSI masking and the
Paillier engine's encrypt and dot, plus the per-chunk costs `docs/scale.md` builds its model from.

PSI: one party's group work of an N x N PSI (hash and mask its N IDs, then mask N peer values), streamed in
the protocol's task sizes with its back-pressure, IDs generated chunk by chunk so memory stays bounded; every
configuration's output is hashed and must be identical. Paillier (2048-bit keys): encrypt M values with the
public key, then X^T [[v]] for X of M x 13. Configurations, interleaved per repeat so that other load falls on
all alike: the local pool with 1 process (in-process) and 2 processes, Dask with 1 and 2 single-threaded
workers (each cluster a scheduler and worker processes on this machine, TLS with a throwaway CA).

Run: `python benchmarks/scale.py` (about 4 minutes on an idle 2-core machine), `--psi-size 1000000` for the
1M x 1M workload, `--psi-size 10000000 --dask-only` for 10M x 10M through Dask with each worker's peak memory;
`--quick` for a smoke run that records nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record  # noqa: E402

from fedbench import compute  # noqa: E402
from fedbench.compute import DaskBackend, LocalBackend, LocalCluster, start_cluster  # noqa: E402
from fedbench.crypto.paillier import generate_keypair  # noqa: E402
from fedbench.net.certs import init_ca, issue_party  # noqa: E402
from fedbench.psi import group  # noqa: E402
from fedbench.psi.protocol import _MAX_TASK, _MIN_TASK, _ordered  # noqa: E402

KEY = b"scale-benchmark-domain-key"


def _ids(start: int, stop: int) -> list[str]:
    return [f"customer-{i:012d}" for i in range(start, stop)]


def psi_work(backend: compute.ComputeBackend, workers: int, n: int) -> tuple[float, str]:
    """Seconds for one party's group work of an n x n PSI on `backend`, and a digest of every output."""
    task = max(_MIN_TASK, min(_MAX_TASK, math.ceil(2 * n / (8 * workers))))
    inflight = 2 * workers + 1
    digest = hashlib.sha256()
    secret = hashlib.sha256(b"fixed secret for comparable outputs").digest()
    start = time.perf_counter()
    with group.MaskingPool(secret, KEY, workers, backend) as pool:
        chunks = (_ids(a, min(n, a + task)) for a in range(0, n, task))
        hashed = _ordered(pool.hash_mask, chunks, inflight)
        for masked in _ordered(pool.mask, hashed, inflight):
            digest.update(masked)
    return time.perf_counter() - start, digest.hexdigest()[:16]


def paillier_work(
    backend: compute.ComputeBackend | None, workers: int, m: int, keys: Any
) -> dict[str, float]:
    """Seconds of encrypt (m values) and dot (m x 13), and whether the dot's decryption is right."""
    public, private = keys
    rng = np.random.default_rng(5)
    values, matrix = rng.normal(size=m), rng.normal(size=(m, 13))
    previous = compute.use(backend)
    try:
        start = time.perf_counter()
        encrypted = public.encrypt(values, workers=workers)
        encrypt = time.perf_counter() - start
        start = time.perf_counter()
        product = encrypted.dot(matrix, workers=workers)
        dot = time.perf_counter() - start
    finally:
        compute.use(previous)
    right = np.allclose(private.decrypt(product, workers=1), matrix.T @ values, atol=1e-6)
    return {"encrypt": encrypt, "dot": dot, "right": float(right)}


def _noop(_state: Any, values: np.ndarray) -> np.ndarray:
    return values


def task_overhead(backend: DaskBackend, tasks: int = 400) -> float:
    """Milliseconds per task of a Dask job that does nothing with a 512 KiB chunk (one PSI task's bytes)."""
    chunk = (np.zeros(_MAX_TASK * 32, dtype=np.uint8),)
    with backend.job() as job:
        list(job.map(_noop, [chunk] * 20))
        start = time.perf_counter()
        for _ in job.map(_noop, [chunk] * tasks, inflight=5):
            pass
        return 1000 * (time.perf_counter() - start) / tasks


def worker_peak_mb(backend: DaskBackend) -> list[float]:
    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    return sorted(round(v, 0) for v in backend.client.run(peak).values())


def one_core_costs(keys: Any) -> dict[str, float]:
    """Per-element costs on one core, in microseconds: hash+mask, mask, encrypt, one mulmod n^2."""
    import gmpy2

    masker = group.Masker(hashlib.sha256(b"x").digest(), KEY)
    ids = _ids(0, 20_000)
    start = time.perf_counter()
    hashed = masker.hash_mask(ids)
    hash_mask = (time.perf_counter() - start) / len(ids)
    start = time.perf_counter()
    masker.mask(hashed)
    mask = (time.perf_counter() - start) / len(ids)
    public, _ = keys
    start = time.perf_counter()
    public.encrypt(np.ones(400), workers=1)
    encrypt = (time.perf_counter() - start) / 400
    a, b, nsq = gmpy2.mpz(public.nsq - 3), gmpy2.mpz(public.nsq - 5), gmpy2.mpz(public.nsq)
    start = time.perf_counter()
    for _ in range(50_000):
        a = a * b % nsq
    mulmod = (time.perf_counter() - start) / 50_000
    return {
        "hash_mask": 1e6 * hash_mask,
        "mask": 1e6 * mask,
        "encrypt": 1e6 * encrypt,
        "mulmod": 1e6 * mulmod,
    }


def _clusters(root: Path, sizes: tuple[int, ...]) -> Iterator[tuple[int, LocalCluster]]:
    init_ca(root / "ca")
    issue_party(root / "ca", root / "tls", "bench")
    for size in sizes:
        yield size, start_cluster(root / "tls", root / f"cluster-{size}", workers=size, dashboard=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--psi-size", type=int, default=100_000, help="N of the N x N PSI workload")
    parser.add_argument("--paillier-size", type=int, default=2_000, help="values encrypted, rows of the dot")
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dask-only", action="store_true", help="only Dask with 2 workers (the 10M run)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, nothing recorded")
    args = parser.parse_args()
    if args.quick:
        args.psi_size, args.paillier_size, args.key_bits, args.repeats = 20_000, 200, 1024, 1
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    keys = generate_keypair(args.key_bits)
    with tempfile.TemporaryDirectory(prefix="fb-scale-") as tmp:
        clusters = dict(_clusters(Path(tmp), (2,) if args.dask_only else (1, 2)))
        try:
            backends = {
                size: DaskBackend(c.scheduler, tls_dir=Path(tmp) / "tls") for size, c in clusters.items()
            }
            configs: dict[str, tuple[compute.ComputeBackend, compute.ComputeBackend | None, int]] = {}
            if not args.dask_only:
                configs["local pool, 1 process"] = (LocalBackend(1), None, 1)
                configs["local pool, 2 processes"] = (LocalBackend(2), None, 2)
            for size, backend in backends.items():
                configs[f"dask, {size} worker{'s' if size > 1 else ''}"] = (backend, backend, size)
            psi: dict[str, list[float]] = {name: [] for name in configs}
            pai: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
            digests: set[str] = set()
            for _ in range(args.repeats):
                for name, (backend, paillier_backend, workers) in configs.items():
                    seconds, digest = psi_work(backend, workers, args.psi_size)
                    psi[name].append(seconds)
                    digests.add(digest)
                    if not args.dask_only:
                        pai[name].append(paillier_work(paillier_backend, workers, args.paillier_size, keys))
            peaks = {size: worker_peak_mb(backend) for size, backend in backends.items()}
            overhead = task_overhead(backends[max(backends)])
            costs = one_core_costs(keys)
            for backend in backends.values():
                backend.close()
        finally:
            for cluster in clusters.values():
                cluster.stop()
    if len(digests) != 1:
        raise SystemExit(f"the configurations' PSI outputs differ: {sorted(digests)}")
    baseline = {1: "local pool, 1 process", 2: "local pool, 2 processes"}
    rows = []
    for name, (_, _, workers) in configs.items():
        base = baseline[workers] if not args.dask_only else None
        psi_s = median(psi[name])
        cells: list[object] = [name, f"{psi_s:.2f}", f"{2 * args.psi_size / psi_s / 1000:.1f}"]
        cells.append(f"{psi_s / median(psi[base]):.2f}x" if base else "-")
        if not args.dask_only:
            enc = median([r["encrypt"] for r in pai[name]])
            dot = median([r["dot"] for r in pai[name]])
            base_enc = median([r["encrypt"] for r in pai[base]])  # type: ignore[index]
            base_dot = median([r["dot"] for r in pai[base]])  # type: ignore[index]
            right = all(r["right"] for r in pai[name])
            cells += [f"{enc:.2f} ({enc / base_enc:.2f}x)", f"{dot:.2f} ({dot / base_dot:.2f}x)"]
            cells.append("yes" if right else "NO")
        rows.append(cells)
    headers = [
        "configuration",
        f"PSI {args.psi_size:,} x {args.psi_size:,}: one party's group work, s",
        "thousand group ops/s",
        "PSI vs local at equal cores",
    ]
    if not args.dask_only:
        headers += [
            f"encrypt {args.paillier_size:,} ({args.key_bits} bits), s (vs local)",
            f"dot {args.paillier_size:,} x 13, s (vs local)",
            "dot decrypts right",
        ]
    load_after = os.getloadavg()[0]
    wall = time.perf_counter() - began
    notes = [
        f"- Command: `python {' '.join(['benchmarks/scale.py', *sys.argv[1:]])}`; medians of {args.repeats} "
        f"interleaved repeats; whole run {wall:.0f} s; 1-minute load average {load_before:.1f} at the start and "
        f"{load_after:.1f} at the end (2 cores; above 2, other work shared them).",
        "- PSI outputs identical in every configuration (sha256 of every masked value).",
        f"- Per element, one core: hash+mask {costs['hash_mask']:.1f} us, mask {costs['mask']:.1f} us; "
        f"Paillier ({args.key_bits} bits) public encrypt {costs['encrypt']:.0f} us, one multiplication mod n^2 "
        f"{costs['mulmod']:.2f} us.",
        f"- Dask: {overhead:.2f} ms per task carrying a 512 KiB chunk (the PSI's task size) over TLS on loopback; "
        "peak RSS per worker process, MB: "
        + "; ".join(f"{size} worker(s): {', '.join(f'{v:.0f}' for v in mb)}" for size, mb in peaks.items())
        + ".",
        "- Local pool with 1 process runs in the calling process (as the engine does); Dask with 1 worker ships "
        "every chunk to that worker. Equal cores: the machine has 2; with 2 Dask workers the calling process "
        "also uses some CPU (packing IDs, unpacking results).",
    ]
    title = f"scale.py: local pool vs Dask (1 and 2 workers), PSI {args.psi_size:,} and Paillier"
    if args.dask_only:
        title = f"scale.py --dask-only: PSI {args.psi_size:,} through Dask (2 workers), memory per worker"
    if args.quick:
        print(markdown_table(headers, rows))
        print("\n".join(notes))
        return
    record(title, markdown_table(headers, rows), "\n".join(notes))


if __name__ == "__main__":
    main()
