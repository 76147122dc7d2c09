"""Secure aggregation against plaintext FedAvg through real nodes: 10 clients x 1M parameters on the sandbox.

A horizontal sandbox (`sandbox.up(home, horizontal=10)`: ten branch nodes and an aggregator, mutual TLS over
loopback) runs one job of the benchmark-only component `bench_secagg_round` (benchmarks/plugins). Each repeat
is a plaintext round (every branch sends its float32 vector in the clear, the aggregator averages), a SecAgg+
round of the same vectors (`fedbench.secagg.federated`, the path `homo_lr` and `homo_nn` use), and one where a
client leaves after its shares (10% dropout), each timed on the aggregator from its first message to the
aggregate; medians of the interleaved repeats. A FedAvg round also includes each client's local training (in
parallel, one per branch): the same run measures one client's training as `secure_aggregation.py` does (600
rows, batch 10, 1 and 5 epochs, a 1,001,001-weight network) and adds it to both. All eleven nodes share this
machine's cores, so the clients' steps, parallel in a real federation, here take turns.
Run: `python benchmarks/secure_aggregation_sandbox.py` (`--quick`: 100,000 parameters, nothing recorded).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record  # noqa: E402
from secure_aggregation import EPOCHS, GOAL, ROWS, LocalTraining  # noqa: E402

import fedbench  # noqa: E402
from fedbench import sandbox  # noqa: E402

PLUGINS = Path(__file__).resolve().parent / "plugins"
CLIENTS = 10


def run_job(root: Path, length: int, repeats: int) -> dict:
    """Start the sandbox with the benchmark component, run its job once, return the aggregator's metrics.

    The job's first repeat warms up the channels between the nodes and is left out of the figures.
    """
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(PLUGINS) + (os.pathsep + old if old else "")
    try:
        sandbox.up(root, horizontal=CLIENTS, demo_rows=CLIENTS * 100, component_modules=["fb_bench_secagg"])
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    branches = [f"branch-{i}" for i in range(1, CLIENTS + 1)]
    project = fedbench.connect(home=root / sandbox.AGGREGATOR_PARTY).project(sandbox.HORIZONTAL_PROJECT)
    run = project.run(
        "bench_secagg_round",
        roles={"client": branches, "server": [sandbox.AGGREGATOR_PARTY]},
        force=True,
        length=length,
        repeats=repeats + 1,
    ).wait(show_progress=False)
    if run.info["state"] != "succeeded":
        raise RuntimeError(f"the benchmark job ended {run.info['state']}: {run.info}")
    metrics: dict = run.output("metrics").value()
    for kind in ("plain", "secure", "dropout"):
        metrics[f"{kind}_seconds"] = metrics[f"{kind}_seconds"][1:]
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 parameters, nothing recorded")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--home", type=Path, default=None, help="sandbox home (default: a temporary folder)")
    args = parser.parse_args()
    length = 100_000 if args.quick else 1_000_000
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fb-secagg-sandbox-") as scratch:
        root = args.home or Path(scratch) / "sandbox"
        try:
            up_started = time.perf_counter()
            metrics = run_job(root, length, args.repeats)
            job_seconds = time.perf_counter() - up_started
        finally:
            sandbox.down(root)
    local = {epochs: median([LocalTraining(epochs).seconds()[0] for _ in range(3)]) for epochs in EPOCHS}
    plain, secure = median(metrics["plain_seconds"]), median(metrics["secure_seconds"])

    def with_training(seconds: float, verdict: bool) -> list[str]:
        cells = []
        for epochs in EPOCHS:
            ratio = (local[epochs] + seconds) / (local[epochs] + plain)
            mark = (": met" if ratio <= GOAL else ": missed") if verdict else ""
            cells.append(f"{local[epochs] + seconds:.2f} ({ratio:.2f}x{mark})")
        return cells

    dropout = median(metrics["dropout_seconds"])
    rows = [
        [
            f"plaintext FedAvg round, {CLIENTS} branch nodes",
            "-",
            f"{plain:.2f}",
            "1.0x",
            *with_training(plain, False),
            "-",
        ],
        [
            "SecAgg+ round (`secagg.federated`), no dropout",
            f"{metrics['degree']} / {metrics['threshold']}",
            f"{secure:.2f}",
            f"{secure / plain:.1f}x",
            *with_training(secure, False),
            f"{metrics['max_error_of_mean']:.1e}",
        ],
        [
            f"SecAgg+ round, 10% dropped after shares ({metrics['survivors']['dropout']} survivors)",
            f"{metrics['degree']} / {metrics['threshold']}",
            f"{dropout:.2f}",
            f"{dropout / plain:.1f}x",
            *with_training(dropout, True),
            f"{metrics['max_error_of_mean']:.1e}",
        ],
    ]
    table = markdown_table(
        [
            f"round through the sandbox, {length:,} parameters",
            "degree / threshold",
            "aggregation s (aggregator's clock)",
            "secure / plaintext",
            *[
                f"round with {epochs} local epoch{'s' if epochs > 1 else ''} on {ROWS} rows, s "
                f"(goal <= {GOAL}x)"
                for epochs in EPOCHS
            ],
            "max error of the mean",
        ],
        rows,
    )
    notes = "\n".join(
        [
            f"- Command: `python benchmarks/secure_aggregation_sandbox.py{' --quick' if args.quick else ''}`; "
            f"medians of {args.repeats} interleaved repeats after one left out as a warm-up (plaintext "
            + ", ".join(f"{s:.2f}" for s in metrics["plain_seconds"])
            + " s; secure "
            + ", ".join(f"{s:.2f}" for s in metrics["secure_seconds"])
            + " s; with a dropout "
            + ", ".join(f"{s:.2f}" for s in metrics["dropout_seconds"])
            + f" s); sandbox start and job {job_seconds:.0f} s, whole run {time.perf_counter() - started:.0f} s;"
            f" 1-minute load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
            "(2 cores shared by the eleven nodes; above 2, other work shared them too).",
            f"- Plaintext: each branch sends its float32 vector ({length * 4 / 1e6:.1f} MB) to the aggregator "
            "over its mutual-TLS channel, the aggregator sums them in float64 and divides: the benchmark's "
            "baseline only, in a component no project can pick. Secure: the same vectors through `client_round` / "
            "`server_round`, 32-bit ring, clip 1, keys sent directly between neighbours. The dropped client "
            "sends its keys and shares, then withdraws (its update fails its check), so the aggregator "
            "rebuilds its mask key and removes its pairwise masks as for a silent dropout, without waiting "
            "out the stage deadline that detects a silent one.",
            "- Local training: one client's, measured in this process after the job "
            + ", ".join(f"{local[e]:.2f} s for {e} epoch(s)" for e in EPOCHS)
            + "; added to both rounds (branches train in parallel in a real federation).",
        ]
    )
    if args.quick:
        print(table)
        print(notes)
        return
    record(
        "secure_aggregation_sandbox.py: SecAgg+ round vs plaintext FedAvg through real nodes", table, notes
    )


if __name__ == "__main__":
    main()
