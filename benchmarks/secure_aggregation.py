"""Secure aggregation (SecAgg+) against plaintext FedAvg, one round through the in-process simulator.

100 clients x 1,000,000 parameters (float32 updates in [-1, 1]), real cryptography (X25519, HKDF, AES-GCM,
Shamir, ChaCha20): a plaintext FedAvg round (the server sums the updates and divides) and secure rounds with
10% and 30% of the clients dropping out after sending their shares, in the same run, interleaved, medians of
repeats. Each secure round's graph is the default for the dropout it must survive (`RoundConfig(dropout=)`).
Reported: the serial total (every party in this one process, one after another), and the critical path a
federation would see with clients working in parallel: the slowest client's seconds plus the server's.
A FedAvg round is more than the server's sum: each client first trains locally. The round baseline adds one
client's local epoch of a 1,001,001-parameter network (`homo_nn`'s PyTorch trainer, layers 999-1000-1, 256
rows, batch 32), measured in the same run, to both sides: the goal (issue #19) is a secure round at most 1.3x
the plaintext round at 10% dropout; the bare-sum ratio is reported beside it.
Run: `python benchmarks/secure_aggregation.py` (`--quick`: 20 clients x 100,000 parameters, nothing recorded).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record  # noqa: E402

from fedbench.ml.homo_nn import TorchTrainer, initial_weights  # noqa: E402
from fedbench.secagg import RoundConfig, simulate_round  # noqa: E402

GOAL = 1.3


def plaintext_round(updates: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """FedAvg without protection: the server's sum of the updates over their count, and its seconds."""
    start = time.perf_counter()
    total = np.zeros(updates[0].size, dtype=np.float64)
    for update in updates:
        total += update
    mean = total / len(updates)
    return mean, time.perf_counter() - start


def local_epoch_seconds(repeats: int) -> tuple[float, int]:
    """One client's local epoch of a network of about 1M weights (256 rows, batch 32): median seconds, size."""
    sizes = [999, 1000, 1]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, sizes[0]))
    codes = (rng.random(256) < 0.3).astype(np.int64)
    trainer = TorchTrainer(
        x, codes, sizes, "relu", epochs=1, batch_size=32, learning_rate=0.1, weight_decay=0.0, mu=0.0
    )
    weights = initial_weights(sizes, "relu", seed=0)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.train(weights, rng)
        seconds.append(time.perf_counter() - start)
    return median(seconds), weights.size


def secure_round(updates: list[np.ndarray], dropout: float, seed: int) -> dict[str, float]:
    """One secure round with `dropout` of the clients gone after their shares: seconds and facts."""
    clients = len(updates)
    config = RoundConfig(tuple(range(clients)), updates[0].size, dropout=max(dropout, 0.1))
    dropped = set(
        np.random.default_rng(seed).choice(clients, round(dropout * clients), replace=False).tolist()
    )
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    run = simulate_round(updates, config=config, dropped_after_shares=dropped, record=False, seconds=seconds)
    wall = time.perf_counter() - start
    survivors = sorted(run.result.survivors)
    plain = np.sum([updates[c].astype(np.float64) for c in survivors], axis=0)
    error = float(np.abs(run.result.total - plain).max())
    if error > config.quantizer.error_bound(len(survivors)):
        raise RuntimeError(f"the secure sum is off by {error}, beyond the stated bound")
    client_seconds = [value for party, value in seconds.items() if party.startswith("client")]
    return {
        "wall": wall,
        "server": seconds["server"],
        "client_max": max(client_seconds),
        "client_median": median(client_seconds),
        "degree": config.degree,
        "threshold": config.threshold,
        "survivors": len(survivors),
        "error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="20 clients x 100,000 parameters, nothing recorded"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    clients, length = (20, 100_000) if args.quick else (100, 1_000_000)
    repeats = 1 if args.quick else args.repeats
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    rng = np.random.default_rng(0)
    updates = [rng.uniform(-1, 1, length).astype(np.float32) for _ in range(clients)]

    plain_times: list[float] = []
    runs: dict[float, list[dict[str, float]]] = {0.1: [], 0.3: []}
    for repeat in range(repeats):
        plain_times.append(plaintext_round(updates)[1])
        for dropout in runs:
            runs[dropout].append(secure_round(updates, dropout, seed=repeat))
            print(f"repeat {repeat}, dropout {dropout:.0%}: {runs[dropout][-1]}", flush=True)
    plain = median(plain_times)
    local, weights = local_epoch_seconds(3 if args.quick else 5)
    rows = [
        [
            f"plaintext FedAvg, {clients} clients",
            "-",
            f"{plain:.2f}",
            f"{plain:.2f}",
            "1.0x",
            "1.0x",
            f"{local + plain:.2f} (1.0x)",
            "-",
            "-",
        ]
    ]
    for dropout, measured in runs.items():
        wall = median([m["wall"] for m in measured])
        path = median([m["server"] + m["client_max"] for m in measured])
        first = measured[0]
        ratio = (local + path) / (local + plain)
        verdict = ("met" if ratio <= GOAL else "missed") if dropout == 0.1 else "reported"
        rows.append(
            [
                f"SecAgg+, {dropout:.0%} dropped after shares ({first['survivors']:.0f} survivors)",
                f"{first['degree']:.0f} / {first['threshold']:.0f}",
                f"{wall:.2f}",
                f"{path:.2f} (server {median([m['server'] for m in measured]):.2f}, "
                f"slowest client {median([m['client_max'] for m in measured]):.2f})",
                f"{wall / plain:.1f}x",
                f"{path / plain:.1f}x",
                f"{local + path:.2f} ({(local + path) / (local + plain):.2f}x: {verdict})",
                f"{median([m['client_median'] for m in measured]):.2f}",
                f"{max(m['error'] for m in measured):.1e}",
            ]
        )
    table = markdown_table(
        [
            f"round, {length:,} parameters",
            "degree / threshold",
            "serial s (all parties, one process)",
            "critical path s (clients in parallel)",
            "serial / plaintext",
            "critical path / bare sum",
            f"round with local training, s (goal <= {GOAL}x at 10%)",
            "median client s",
            "max error vs float sum",
        ],
        rows,
    )
    notes = "\n".join(
        [
            f"- Command: `python benchmarks/secure_aggregation.py{' --quick' if args.quick else ''}`; "
            f"medians of {repeats} interleaved repeats; whole run {time.perf_counter() - started:.0f} s; "
            f"1-minute load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
            "(2 cores; above 2, other work shared them).",
            "- Plaintext: the server's float64 sum of the float32 updates and the division (clients do "
            "nothing beyond sending). Secure: `fedbench.secagg.simulate_round` with the real cryptography; "
            "a client expands one ChaCha20 mask per neighbour plus its self-mask (4 bytes per parameter "
            "each), the server one per survivor plus one per (dropped client, surviving neighbour) pair. "
            "Updates are made before timing; checking the sum against the float sum is not timed.",
            f"- Local training: one client's epoch of a {weights:,}-weight network (PyTorch, 1 thread), "
            f"median {local:.2f} s, added to both rounds' critical paths (clients train in parallel).",
            "- Degree: the default for the dropout the round must survive (at most a 2^-20 chance that a "
            "client keeps fewer than threshold neighbours); 30% dropout at N = 100 needs the complete graph.",
        ]
    )
    if args.quick:
        print(table)
        print(notes)
        return
    record("secure_aggregation.py: SecAgg+ round vs plaintext FedAvg, in-process simulator", table, notes)


if __name__ == "__main__":
    main()
