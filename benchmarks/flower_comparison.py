"""Our secure aggregation beside Flower's SecAgg+ workflow: the same homo LR on the same credit split, one run.

Both sides train the same model (`fedbench.ml.homo_lr.local_update`: binary logistic regression, 1 epoch a
round, batch 64) on the same 5-client split of the synthetic credit data (25,000 training rows, 5,000 held
out), from the same zero start, with the same batch order (each client's generator seeded by its number and
the round), and aggregate by FedAvg weighted by rows under secure aggregation with 4 neighbours and a
threshold of 3: ours through `fedbench.secagg.simulate_round` (the real cryptography, one process), Flower's
through `SecAggPlusWorkflow` + `secaggplus_mod` in its own simulation engine (`flwr.simulation`, Ray).
Reported: held-out AUC and accuracy of each global model (equal within 0.005 is the issue's bar) and each
side's median seconds per round (a round = every client's local training + secure aggregation).
Needs the `bench` extra (flwr with its simulation engine). Its pins clash with the project's environment
(flwr 1.42 wants pycryptodome < 4 and a newer cryptography), so run it in a virtual environment that sees the
project's packages: `python -m venv --system-site-packages /tmp/venv-flwr &&
/tmp/venv-flwr/bin/pip install 'flwr[simulation]==1.42.0'`, then
`PYTHONPATH=. /tmp/venv-flwr/bin/python benchmarks/flower_comparison.py`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record  # noqa: E402

from fedbench.datasets.credit import ID_COLUMN, LABEL_COLUMN, make_credit  # noqa: E402
from fedbench.datasets.splits import horizontal_split  # noqa: E402
from fedbench.ml.homo_lr import LocalData, local_update, predict_proba  # noqa: E402
from fedbench.secagg import RoundConfig, simulate_round  # noqa: E402

CLIENTS, ROWS, HELD_OUT = 5, 30_000, 5_000
EPOCHS, BATCH, LEARNING_RATE = 1, 64, 0.1
DEGREE, THRESHOLD = 4, 3
TOLERANCE = 0.005


class Split:
    """The credit rows: 5 clients' standardised training rows and the held-out rows, one scaling for all."""

    def __init__(self) -> None:
        df = make_credit(ROWS, seed=0)
        features = [c for c in df.columns if c not in (ID_COLUMN, LABEL_COLUMN)]
        test, train = df.iloc[:HELD_OUT], df.iloc[HELD_OUT:]
        pooled = train[features].to_numpy(dtype=np.float64)
        mean, scale = np.nanmean(pooled, axis=0), np.nanstd(pooled, axis=0)
        parts = horizontal_split(train, n_parties=CLIENTS, seed=0)
        self.clients = [
            LocalData.build(p[features].to_numpy(), p[LABEL_COLUMN].to_numpy(), mean, scale, 1) for p in parts
        ]
        self.test = LocalData.build(test[features].to_numpy(), test[LABEL_COLUMN].to_numpy(), mean, scale, 1)
        self.shape = (len(features) + 1, 1)

    def train(self, client: int, weights: np.ndarray, round_number: int) -> np.ndarray:
        """Client `client`'s local model after this round's epochs from the global `weights`."""
        rng = np.random.default_rng([client, round_number])
        return local_update(
            weights,
            self.clients[client],
            epochs=EPOCHS,
            batch_size=BATCH,
            learning_rate=LEARNING_RATE,
            l2=0.0,
            mu=0.0,
            rng=rng,
        )

    def quality(self, weights: np.ndarray) -> tuple[float, float]:
        """Held-out AUC and accuracy."""
        p = predict_proba(weights, self.test.x)[:, 0]
        y = self.test.y[:, 0]
        return float(roc_auc_score(y, p)), float(((p >= 0.5) == (y == 1)).mean())


def ours(split: Split, rounds: int, secure: bool) -> tuple[np.ndarray, list[float]]:
    """FedAvg weighted by rows, through our SecAgg+ round or a plain sum: global weights, seconds a round."""
    weights = np.zeros(split.shape)
    total_rows = sum(len(c.x) for c in split.clients)
    seconds = []
    for r in range(1, rounds + 1):
        start = time.perf_counter()
        updates = []
        for c, data in enumerate(split.clients):
            share = len(data.x) / total_rows
            change = split.train(c, weights, r) - weights
            updates.append(np.concatenate([change.ravel() * share, [share]]))
        if secure:
            config = RoundConfig(
                tuple(range(CLIENTS)), updates[0].size, clip=10.0, degree=DEGREE, threshold=THRESHOLD
            )
            total = simulate_round(updates, config=config, record=False).result.total
        else:
            total = np.sum(updates, axis=0)
        weights = weights + (total[:-1] / total[-1]).reshape(split.shape)
        seconds.append(time.perf_counter() - start)
    return weights, seconds


def flower(split: Split, rounds: int, secure: bool) -> tuple[np.ndarray, list[float]]:
    """FedAvg in Flower's simulation engine, through its SecAgg+ workflow or its plain one: weights, seconds."""
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.default_workflows import default_fit_workflow
    from flwr.simulation import run_simulation

    # Under load Ray's raylet gives its metrics agent 15 s to start, then aborts the whole simulation.
    os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
    seconds: list[float] = []
    final: dict[str, np.ndarray] = {}

    class Client(NumPyClient):  # type: ignore[misc]
        def __init__(self, number: int) -> None:
            self.number = number

        def fit(
            self, parameters: list[np.ndarray], config: dict[str, Any]
        ) -> tuple[list[np.ndarray], int, dict]:
            new = split.train(self.number, parameters[0], int(config["round"]))
            return [new], len(split.clients[self.number].x), {}

    def client_fn(context: Context) -> Any:
        return Client(int(context.node_config["partition-id"])).to_client()

    def keep(server_round: int, parameters: list[np.ndarray], config: dict[str, Any]) -> None:
        final["weights"] = parameters[0]

    class Timed:
        def __init__(self, inner: Callable[[Grid, Context], None]) -> None:
            self.inner = inner

        def __call__(self, grid: Grid, context: Context) -> None:
            start = time.perf_counter()
            self.inner(grid, context)
            seconds.append(time.perf_counter() - start)

    strategy = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=CLIENTS,
        min_available_clients=CLIENTS,
        initial_parameters=ndarrays_to_parameters([np.zeros(split.shape)]),
        on_fit_config_fn=lambda r: {"round": r},
        evaluate_fn=keep,
    )
    server = ServerApp()

    @server.main()  # type: ignore[misc]
    def main(grid: Grid, context: Context) -> None:
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
        secagg = SecAggPlusWorkflow(
            num_shares=DEGREE + 1,
            reconstruction_threshold=THRESHOLD,
            max_weight=max(len(c.x) for c in split.clients),
        )
        workflow = DefaultWorkflow(fit_workflow=Timed(secagg if secure else default_fit_workflow))
        workflow(grid, legacy)

    run_simulation(
        server_app=server,
        client_app=ClientApp(client_fn=client_fn, mods=[secaggplus_mod] if secure else []),
        num_supernodes=CLIENTS,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    if "weights" not in final or len(seconds) != rounds:
        raise RuntimeError(f"Flower's run ended after {len(seconds)} of {rounds} rounds")
    return final["weights"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 rounds, nothing recorded")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    logging.getLogger("flwr").setLevel(logging.WARNING)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    split = Split()
    runs = {
        (side, secure): run(split, rounds, secure)
        for side, run in (("ours", ours), ("flower", flower))
        for secure in (False, True)
    }
    quality = {key: split.quality(weights) for key, (weights, _) in runs.items()}
    seconds = {key: median(times) for key, (_, times) in runs.items()}
    gaps = [abs(a - b) for a, b in zip(quality["ours", True], quality["flower", True], strict=True)]
    verdict = "met" if max(gaps) <= TOLERANCE else "missed"
    ratio = seconds["ours", True] / seconds["flower", True]
    names = {"ours": "fedbench (`simulate_round`)", "flower": f"Flower {metadata.version('flwr')}"}
    rows = []
    for (side, secure), (auc, accuracy) in quality.items():
        plain = seconds[side, False]
        label = f"{names[side]}, {'SecAgg+' if secure else 'plaintext FedAvg'}" + (
            " (`SecAggPlusWorkflow`, simulation engine)" if side == "flower" and secure else ""
        )
        rows.append(
            [
                label,
                f"{auc:.4f}",
                f"{accuracy:.4f}",
                f"{seconds[side, secure]:.3f}",
                f"{seconds[side, secure] / plain:.2f}x" if secure else "1.00x",
                f"ours / Flower: {ratio:.3f}x ({'met' if ratio <= 1 else 'missed'}: at most Flower's)"
                if side == "ours" and secure
                else "-",
            ]
        )
    table = markdown_table(
        [
            f"homo LR, credit data, {CLIENTS} clients, {rounds} rounds",
            "held-out AUC",
            "held-out accuracy",
            "median s per round",
            "secure / own plaintext",
            "secure round time",
        ],
        rows,
    )
    notes = "\n".join(
        [
            f"- Command: `PYTHONPATH=. /tmp/venv-flwr/bin/python benchmarks/flower_comparison.py"
            f"{' --quick' if args.quick else ''}` (a venv with the `bench` extra); whole run "
            f"{time.perf_counter() - started:.0f} s; 1-minute load average {load_before:.1f} at the start and "
            f"{os.getloadavg()[0]:.1f} at the end (2 cores; above 2, other work shared them). Libraries in "
            f"that run: pycryptodome {metadata.version('pycryptodome')}, cryptography "
            f"{metadata.version('cryptography')}, ray {metadata.version('ray')}.",
            f"- Accuracy, ours vs Flower under SecAgg+: AUC gap {gaps[0]:.4f}, accuracy gap {gaps[1]:.4f} "
            f"(bar {TOLERANCE}): {verdict}. Same "
            f"split ({ROWS - HELD_OUT:,} training rows over {CLIENTS} clients, {HELD_OUT:,} held out), same "
            f"local step (homo_lr.local_update, {EPOCHS} epoch, batch {BATCH}, learning rate {LEARNING_RATE}),"
            " same batch order; FedAvg weighted by rows on both sides.",
            f"- Secure aggregation: {DEGREE} neighbours, threshold {THRESHOLD} on both sides (Flower: "
            f"num_shares={DEGREE + 1}, its own share included). Ours sends each client's change times its "
            "share of the rows, and that share, in Z_2^32; Flower its parameters times its rows, quantized "
            "to 2^22 levels in [-8, 8], in Z_2^32 (its defaults), masks from a 32-bit seed of numpy's "
            "Mersenne Twister (docs/protocols/secure_aggregation.md).",
            "- Round time: every client's local training plus the (secure) aggregation, measured by each "
            "side in the same process (ours: serially in one process, function calls; Flower: its fit "
            "workflow, messages between its ServerApp and ClientApps in Ray actors of 1 CPU each). With "
            f"a {split.shape[0]}-weight model both are mostly overhead: Flower's of its message transport, ours of the "
            "protocol's key agreements and Shamir shares; 'secure / own plaintext' compares each with itself.",
        ]
    )
    if args.quick:
        print(table)
        print(notes)
        return
    record("flower_comparison.py: our SecAgg+ vs Flower's SecAgg+ workflow, homo LR", table, notes)


if __name__ == "__main__":
    main()
