"""The local process pool vs the party's Dask cluster (1 and 2 workers, TLS), same run: PSI masking and the
Paillier engine's encrypt and dot, plus the per-chunk costs `docs/scale.md` builds its model from.

PSI: one party's group work of an N x N PSI (hash and mask its N IDs, then mask N peer values), streamed in
the protocol's task sizes with its back-pressure, IDs generated chunk by chunk so memory stays bounded; every
configuration's output is hashed and must be identical. Paillier (2048-bit keys): encrypt M values with the
public key, then X^T [[v]] for X of M x 13. Configurations, interleaved per repeat so that other load falls on
all alike: the local pool with 1 process (in-process) and 2 processes, Dask with 1 and 2 single-threaded
workers (each cluster a scheduler and worker processes on this machine, TLS with a throwaway CA, started for
its turn and stopped after, so that no idle cluster takes CPU from the configuration being measured).

Run: `python benchmarks/scale.py` (about 5 minutes on an idle 2-core machine), `--psi-size 1000000` for the
1M x 1M workload, `--psi-size 10000000 --dask-only` for 10M x 10M through Dask with each worker's peak memory;
`--quick` for a smoke run that records nothing.
"""

from __future__ import annotations

import argparse
import contextlib
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
from fedbench.compute import DaskBackend, LocalBackend, start_cluster  # noqa: E402
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


def _peak_mb(dask_scheduler: Any = None) -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_peak_mb(backend: DaskBackend) -> list[float]:
    return sorted(round(v, 0) for v in backend.client.run(_peak_mb).values())


def scheduler_peak_mb(backend: DaskBackend) -> float:
    return float(backend.client.run_on_scheduler(_peak_mb))


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


@contextlib.contextmanager
def _backend(root: Path, kind: str, workers: int, repeat: int) -> Iterator[compute.ComputeBackend]:
    """The configuration's backend, alone on the machine: a Dask cluster is started for it and stopped after
    (an idle cluster's scheduler and nannies would take CPU from whichever configuration runs)."""
    if kind == "local":
        yield LocalBackend(workers)
        return
    cluster = start_cluster(
        root / "tls", root / f"cluster-{workers}-{repeat}", workers=workers, dashboard=False
    )
    backend = DaskBackend(cluster.scheduler, tls_dir=root / "tls")
    try:
        yield backend
    finally:
        backend.close()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--psi-size", type=int, default=100_000, help="N of the N x N PSI workload")
    parser.add_argument(
        "--paillier-size",
        type=int,
        default=5_000,
        help="values encrypted, rows of the dot (a batch of hetero_lr.py)",
    )
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--paillier-repeats", type=int, default=3, help="Paillier runs per configuration in each repeat"
    )
    parser.add_argument("--dask-only", action="store_true", help="only Dask with 2 workers (the 10M run)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, nothing recorded")
    args = parser.parse_args()
    if args.quick:
        args.psi_size, args.paillier_size, args.key_bits, args.repeats = 20_000, 200, 1024, 1
        args.paillier_repeats = 1
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    keys = generate_keypair(args.key_bits)
    configs: list[tuple[str, str, int]] = [("dask, 2 workers", "dask", 2)]
    if not args.dask_only:
        configs = [
            ("local pool, 1 process", "local", 1),
            ("local pool, 2 processes", "local", 2),
            ("dask, 1 worker", "dask", 1),
            *configs,
        ]
    psi: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    pai: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in configs}
    digests: set[str] = set()
    peaks: dict[int, list[float]] = {}
    scheduler_peaks: dict[int, float] = {}
    overhead = math.nan
    with tempfile.TemporaryDirectory(prefix="fb-scale-") as tmp:
        root = Path(tmp)
        init_ca(root / "ca")
        issue_party(root / "ca", root / "tls", "bench")
        for repeat in range(args.repeats):
            for name, kind, workers in configs:
                with _backend(root, kind, workers, repeat) as backend:
                    paillier_backend = backend if kind == "dask" else None
                    seconds, digest = psi_work(backend, workers, args.psi_size)
                    psi[name].append(seconds)
                    digests.add(digest)
                    if not args.dask_only:
                        # untimed: builds the key's tables in this configuration's processes
                        paillier_work(paillier_backend, workers, args.paillier_size, keys)
                    for _ in range(0 if args.dask_only else args.paillier_repeats):
                        pai[name].append(paillier_work(paillier_backend, workers, args.paillier_size, keys))
                    if isinstance(backend, DaskBackend):
                        peaks[workers] = max(peaks.get(workers, [0.0]), worker_peak_mb(backend), key=max)
                        scheduler_peaks[workers] = max(
                            scheduler_peaks.get(workers, 0.0), scheduler_peak_mb(backend)
                        )
                        if workers == 2 and repeat == args.repeats - 1:
                            overhead = task_overhead(backend)
    costs = one_core_costs(keys)
    if len(digests) != 1:
        raise SystemExit(f"the configurations' PSI outputs differ: {sorted(digests)}")
    baseline = {1: "local pool, 1 process", 2: "local pool, 2 processes"}
    rows = []
    for name, _, workers in configs:
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
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    largest = max([own_peak, *scheduler_peaks.values(), *(v for mb in peaks.values() for v in mb)])
    load_after = os.getloadavg()[0]
    wall = time.perf_counter() - began
    notes = [
        f"- Command: `python {' '.join(['benchmarks/scale.py', *sys.argv[1:]])}`; medians of {args.repeats} "
        f"interleaved repeats (Paillier: {args.paillier_repeats} runs in each); whole run {wall:.0f} s; 1-minute "
        f"load average {load_before:.1f} at the start and {load_after:.1f} at the end (2 cores; above 2, other "
        "work shared them).",
        "- PSI outputs identical in every configuration (sha256 of every masked value).",
        f"- Per element, one core: hash+mask {costs['hash_mask']:.1f} us, mask {costs['mask']:.1f} us; "
        f"Paillier ({args.key_bits} bits) public encrypt {costs['encrypt']:.0f} us, one multiplication mod n^2 "
        f"{costs['mulmod']:.2f} us.",
        f"- Dask: {overhead:.2f} ms per task carrying a 512 KiB chunk (the PSI's task size) over TLS on loopback; "
        "peak RSS per worker process, MB: "
        + "; ".join(f"{size} worker(s): {', '.join(f'{v:.0f}' for v in mb)}" for size, mb in peaks.items())
        + "; the scheduler: "
        + ", ".join(f"{mb:.0f} ({size} worker(s))" for size, mb in scheduler_peaks.items())
        + f"; the calling process (packing IDs, streaming results): {own_peak:.0f}. Largest "
        f"{largest:.0f} MB against the 1,536 MB bound: {'met' if largest <= 1536 else 'missed'}.",
        "- Local pool with 1 process runs in the calling process (as the engine does); Dask with 1 worker ships "
        "every chunk to that worker. Equal cores: the machine has 2; with 2 Dask workers the calling process "
        "also uses some CPU (packing IDs, unpacking results). Each configuration runs alone: a Dask cluster is "
        "started for it in each repeat and stopped after; one untimed Paillier run first builds the key's "
        "tables in its processes.",
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
