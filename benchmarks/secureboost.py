"""Vertical SecureBoost (`hetero_secureboost`) on two sandbox nodes: seconds per tree, AUC, memory, baselines.

Two workloads (issue #17), each a PSI of its training and of its test rows, then `hetero_secureboost` (depth
3, 32 bins, learning rate 0.3, 2048-bit keys) run through the guest's client on a fresh two-node sandbox
(guest and host nodes on this machine, mutual TLS on loopback). The sandbox, not `simulate`: `simulate` runs
both parties as threads of one process, so their Python work shares one GIL and one Paillier worker pool, and
it cannot tell each party's memory; the nodes are what a deployment runs.

* **credit**: the UCI default-of-credit data in /work/shared/data (guest: 13 features and the label `y`,
  host: 10 features), split 80/20 stratified (seed 0): 24,000 training rows, 10 trees; the 6,000 test rows
  are the validation input (scored after each tree, no early stopping), whose AUC is compared with XGBoost's
  (`xgboost`, tree_method hist, the same depth, bins, rounds, learning rate, lambda and min_child_weight) on
  the joined rows. Goal: at most 10 s per tree, test AUC within 0.005 of XGBoost's.
* **scale**: generated data, 100,000 rows, 30 guest and 300 host features, 3 trees. Goal: at most 150 s per
  tree and at most 4 GB peak RSS per party.

Seconds per tree: the guest's `seconds_per_tree` metric (median over the trees: from its gradients to the
end of the tree's walk); the single trees from polling the run's `train_loss` metric every 0.5 s. Peak RSS
(and PSS): every 0.25 s, the summed RSS of each node's process tree (node, step worker, Paillier workers),
the largest sum kept (`hetero_lr.TreeSampler`).

Baselines measured in the same run, from each tree's own counts (the guest's model holds every node's row
count, so the histogram nodes, the root and the smaller child of each split above the last level, are known):
encryptions = the tree's rows, additions = the rows of each histogram node times the host's features.

* **floor**: (additions x one multiplication modulo n^2 + encryptions x one encryption) / cores, with one
  multiplication and one encryption (the owner's fixed-base CRT encryption from wide tables, our fastest)
  timed on this machine in this process. The host's grouped sums make fewer multiplications than one per
  row and feature (printed: the root's count from the host's own bins), so the run can beat this floor.
* **textbook phe**: python-paillier's `encrypt` and `EncryptedNumber + EncryptedNumber` timed on a sample
  (one core, the same packed plaintext per row), times the same counts (no decryption, packing or network
  counted for phe: favourable to it).

Run: `python benchmarks/secureboost.py` (credit and scale, about 20 minutes on a quiet 2-core machine);
`--only credit` or `--only scale`; `--quick` is a smoke run (small data, 1024-bit keys) that records nothing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import phe
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record  # noqa: E402
from hetero_lr import TreeSampler  # noqa: E402

import fedbench  # noqa: E402
from fedbench import sandbox  # noqa: E402
from fedbench.crypto.paillier import ObfuscatorPool, generate_keypair  # noqa: E402
from fedbench.crypto.paillier.buckets import group_cost, plan_groups  # noqa: E402
from fedbench.ml.trees import Binner, Booster  # noqa: E402

DATA = Path("/work/shared/data")
PROJECT = "secureboost-bench"
FATE = "FATE 2.2 on this machine: 111 s per tree at 1024-bit keys, test AUC 0.779 (reported in issue #17)"
GOALS = {"credit": 10.0, "scale": 150.0}
AUC_TOLERANCE = 0.005
MEMORY_GOAL_MB = 4096
PARAMS = {"max_depth": 3, "bins": 32, "learning_rate": 0.3, "reg_lambda": 1.0, "min_child_weight": 1.0}


# --- data ------------------------------------------------------------------------------------------------


def credit_tables(rows: int | None) -> dict[str, Any]:
    """The credit data, split 80/20 stratified: each party's full, train and test tables (ids as text)."""
    guest = pd.read_csv(DATA / "default_credit_hetero_guest.csv")
    host = pd.read_csv(DATA / "default_credit_hetero_host.csv")
    guest["id"], host["id"] = guest["id"].astype(str), host["id"].astype(str)
    host = host.set_index("id").loc[guest["id"]].reset_index()
    if rows:
        guest, host = guest.iloc[:rows].reset_index(drop=True), host.iloc[:rows].reset_index(drop=True)
    train, test = train_test_split(np.arange(len(guest)), test_size=0.2, stratify=guest["y"], random_state=0)
    return _tables(guest, host, np.sort(train), np.sort(test), "y")


def scale_tables(rows: int, guest_width: int, host_width: int, seed: int = 0) -> dict[str, Any]:
    """Generated rows: correlated normal features (float32), some missing, a label from a few of both sides'
    features through a logistic link; 80% train, 20% test."""
    rng = np.random.default_rng(seed)
    width = guest_width + host_width
    latent = rng.normal(size=(rows, 8)).astype(np.float32)
    mixing = rng.normal(size=(8, width)).astype(np.float32) * 0.5
    x = latent @ mixing + rng.normal(size=(rows, width)).astype(np.float32)
    x[rng.random((rows, width)) < 0.02] = np.nan
    signal_ = 0.8 * np.nan_to_num(x[:, 0]) - 0.6 * np.nan_to_num(x[:, guest_width]) + latent[:, 0]
    signal_ += 0.5 * np.nan_to_num(x[:, guest_width + 7]) * np.nan_to_num(x[:, 3])
    y = (rng.random(rows) < 1 / (1 + np.exp(-(signal_ - 1.0)))).astype(np.int64)
    ids = [f"c{i:07d}" for i in range(rows)]
    guest = pd.DataFrame(x[:, :guest_width], columns=[f"g{i}" for i in range(guest_width)])
    guest.insert(0, "y", y)
    guest.insert(0, "id", ids)
    host = pd.DataFrame(x[:, guest_width:], columns=[f"h{i}" for i in range(host_width)])
    host.insert(0, "id", ids)
    order = rng.permutation(rows)
    cut = int(rows * 0.8)
    return _tables(guest, host, np.sort(order[:cut]), np.sort(order[cut:]), "y")


def _tables(guest: pd.DataFrame, host: pd.DataFrame, train: np.ndarray, test: np.ndarray, label: str) -> dict:
    parts = {"train": train, "test": test}
    return {
        "label": label,
        "guest": {k: guest.iloc[v].reset_index(drop=True) for k, v in parts.items()},
        "host": {k: host.iloc[v].reset_index(drop=True) for k, v in parts.items()},
    }


def joined(tables: dict[str, Any], part: str) -> tuple[np.ndarray, np.ndarray]:
    """The joined features (guest's first) and labels of `part`."""
    guest, host = tables["guest"][part], tables["host"][part]
    x = np.hstack(
        [
            guest.drop(columns=["id", tables["label"]]).to_numpy(float),
            host.drop(columns=["id"]).to_numpy(float),
        ]
    )
    return x, guest[tables["label"]].to_numpy(float)


# --- baselines -------------------------------------------------------------------------------------------


def run_xgboost(tables: dict[str, Any], trees: int) -> dict[str, float]:
    """XGBoost with the same params on the joined rows: test AUC and fit seconds."""
    import xgboost

    x, y = joined(tables, "train")
    xt, yt = joined(tables, "test")
    model = xgboost.XGBClassifier(
        n_estimators=trees,
        max_depth=PARAMS["max_depth"],
        learning_rate=PARAMS["learning_rate"],
        max_bin=PARAMS["bins"],
        reg_lambda=PARAMS["reg_lambda"],
        min_child_weight=PARAMS["min_child_weight"],
        tree_method="hist",
        n_jobs=os.cpu_count(),
    )
    began = time.perf_counter()
    model.fit(x, y)
    seconds = time.perf_counter() - began
    return {"auc": float(roc_auc_score(yt, model.predict_proba(xt)[:, 1])), "seconds": seconds}


def run_plain(tables: dict[str, Any], trees: int) -> float:
    """Our plaintext booster on the joined rows (the trees SecureBoost must reproduce): its test AUC."""
    x, y = joined(tables, "train")
    xt, yt = joined(tables, "test")
    guest_width = tables["guest"]["train"].shape[1] - 2
    booster = Booster({**PARAMS, "trees": trees}).fit(x, y, guest_features=range(guest_width))
    return float(roc_auc_score(yt, booster.predict(xt)))


def unit_costs(bits: int, samples: int = 20_000) -> dict[str, float]:
    """Seconds of one multiplication modulo n^2 (a running product, as the host's sums) and of one of our
    encryptions (owner's fixed-base CRT from wide tables, in this process), on one core."""
    public, private = generate_keypair(bits)
    nsq = public.nsq
    values = [public.nsq - 1 - secrets.randbelow(1 << (bits - 8)) for _ in range(samples)]
    began = time.perf_counter()
    acc = values[0]
    for c in values:
        acc = acc * c % nsq
    mulmod = (time.perf_counter() - began) / samples
    with ObfuscatorPool(private, size=1, window=12, workers=1) as pool:
        private.encrypt_encoded([1], 0, pool=pool, workers=1)  # the tables, built once
        count = 400
        began = time.perf_counter()
        private.encrypt_encoded([secrets.randbits(128) for _ in range(count)], 0, pool=pool, workers=1)
        encrypt = (time.perf_counter() - began) / count
    return {"mulmod": mulmod, "encrypt": encrypt}


def phe_costs(bits: int, encryptions: int = 60, additions: int = 5000) -> dict[str, float]:
    """Seconds of one phe encryption (of a 128-bit packed plaintext) and one addition of two ciphertexts."""
    public, _ = phe.paillier.generate_paillier_keypair(n_length=bits)
    values = [secrets.randbits(128) for _ in range(encryptions)]
    began = time.perf_counter()
    encrypted = [public.encrypt(v) for v in values]
    encrypt = (time.perf_counter() - began) / encryptions
    pairs = [encrypted[i % encryptions] for i in range(additions)]
    began = time.perf_counter()
    acc = pairs[0]
    for c in pairs[1:]:
        acc = acc + c
    add = (time.perf_counter() - began) / (additions - 1)
    return {"encrypt": encrypt, "add": add}


def tree_counts(model: dict[str, Any], host_features: int, max_depth: int) -> list[dict[str, int]]:
    """Per tree: its rows (encryptions) and the host's additions (rows of each histogram node x features)."""
    out = []
    for trees in model["trees"]:
        tree = trees[0]
        count, left, right = tree["count"], tree["left"], tree["right"]
        depth = {0: 0}
        hist_rows = count[0]
        for node in range(len(count)):
            if left[node] < 0:
                continue
            depth[left[node]] = depth[right[node]] = depth[node] + 1
            if depth[node] + 1 < max_depth:
                hist_rows += min(count[left[node]], count[right[node]])
        out.append({"rows": count[0], "hist_rows": hist_rows, "additions": hist_rows * host_features})
    return out


def grouped_ratio(tables: dict[str, Any], bins: int) -> tuple[int, int]:
    """The host's multiplications for the root histogram, grouped as the engine does, against one per row and
    feature."""
    x = tables["host"]["train"].drop(columns=["id"]).to_numpy(float)
    binner = Binner.fit(x, bins)
    codes = binner.transform(x)
    buckets = int(codes.max()) + 1
    cost = sum(group_cost(codes, group, buckets) for group in plan_groups(codes, buckets))
    return cost, codes.size


# --- ours: the sandbox -----------------------------------------------------------------------------------


def bring_up(root: Path, tables: dict[str, Any]) -> dict[str, int]:
    """Two nodes, the datasets (train, test), the project (release both); each node's pid."""
    sandbox.up(root, demo_data=False)
    clients = {party: fedbench.connect(home=root / party) for party in ("guest", "host")}
    for party, client in clients.items():
        for part in ("train", "test"):
            frame = tables[party][part]
            label = tables["label"] if party == "guest" else None
            client.datasets.upload(frame, name=f"sb_{part}", id_column="id", label_column=label)
    names = ["sb_train", "sb_test"]
    clients["guest"].projects.propose(
        PROJECT, partners=["host"], datasets=names, purpose="benchmark", jobs_per_day=1000, release="both"
    )
    clients["host"].projects.accept(PROJECT, datasets=names)
    deadline = time.monotonic() + 60
    while clients["guest"].project(PROJECT).state != "active":
        if time.monotonic() > deadline:
            raise SystemExit("the benchmark project did not become active")
        time.sleep(0.2)
    return {node.party: node.pid for node in sandbox.status(root) if node.pid}


def run_ours(root: Path, pids: dict[str, int], params: dict[str, Any]) -> dict[str, Any]:
    """A PSI of the training rows and one of the test rows, then hetero_secureboost on train (test as
    validation): times, AUC, memory, model."""
    project = fedbench.connect(home=root / "guest").project(PROJECT)
    began = time.perf_counter()
    for dataset in ("sb_train", "sb_test"):
        project.run("psi", data=dataset).wait(timeout=3600, show_progress=False)
    psi_seconds = time.perf_counter() - began
    load = os.getloadavg()[0]
    seen: dict[int, float] = {}
    with TreeSampler({p: pids[p] for p in ("guest", "host")}) as sampler:
        began = time.perf_counter()
        run = project.run("hetero_secureboost", train="sb_train", validation="sb_test", **params)
        while run.status in ("queued", "running"):
            metrics = run.metrics
            if len(metrics):
                losses = metrics[(metrics["party"] == "guest") & (metrics["name"] == "train_loss")]
                for step in losses["iteration"].tolist():
                    seen.setdefault(int(step), time.perf_counter() - began)
            time.sleep(0.5)
        run.wait(timeout=60, show_progress=False)
        wall = time.perf_counter() - began
    reported = run.output("metrics").value()
    marks = [seen[k] for k in sorted(seen)]
    valid = run.output("validation_scores").to_pandas()
    return {
        "psi_seconds": psi_seconds,
        "wall": wall,
        "seconds_per_tree": float(reported["seconds_per_tree"]),
        "tree_marks": marks,
        "auc_test": float(roc_auc_score(valid["y"], valid["score"])),
        "auc_train": float(reported.get("train_auc", float("nan"))),
        "peak_mb": {p: sampler.peak_kb[p] / 1024 for p in ("guest", "host")},
        "peak_pss_mb": {p: sampler.peak_pss_kb[p] / 1024 for p in ("guest", "host")},
        "cpu": {p: sampler.cpu(p) for p in ("guest", "host")},
        "processes": dict(sampler.processes),
        "load": (load, os.getloadavg()[0]),
        "model": run.output("model").value(),
    }


def workload(name: str, tables: dict[str, Any], trees: int, bits: int, quick: bool) -> dict[str, Any]:
    """One workload end to end: baselines, then ours on a fresh sandbox."""
    rows = len(tables["guest"]["train"])
    host_features = tables["host"]["train"].shape[1] - 1
    guest_features = tables["guest"]["train"].shape[1] - 2
    print(f"{name}: {rows:,} training rows, {guest_features} + {host_features} features", flush=True)
    out: dict[str, Any] = {"rows": rows, "host_features": host_features, "guest_features": guest_features}
    out["xgboost"] = run_xgboost(tables, trees)
    out["plain_auc"] = run_plain(tables, trees) if name == "credit" else float("nan")
    out["grouped"] = grouped_ratio(tables, PARAMS["bins"])
    params = {**PARAMS, "trees": trees, "key_bits": bits, "label": tables["label"]}
    root = Path(tempfile.mkdtemp(prefix=f"fedbench-sb-bench-{name}-"))
    try:
        began = time.perf_counter()
        pids = bring_up(root, tables)
        out["setup_seconds"] = time.perf_counter() - began
        out["ours"] = run_ours(root, pids, params)
    finally:
        sandbox.down(root)
        shutil.rmtree(root, ignore_errors=True)
    ours = out["ours"]
    out["counts"] = tree_counts(ours["model"], host_features, PARAMS["max_depth"])
    print(
        f"{name}: {ours['seconds_per_tree']:.1f} s per tree "
        f"(marks {', '.join(f'{m:.0f}' for m in ours['tree_marks'])}), "
        f"test AUC {ours['auc_test']:.4f} (XGBoost {out['xgboost']['auc']:.4f}), peak RSS "
        f"{ours['peak_mb']['guest']:.0f} / {ours['peak_mb']['host']:.0f} MB, load {ours['load'][0]:.1f} -> "
        f"{ours['load'][1]:.1f}",
        flush=True,
    )
    return out


# --- main -----------------------------------------------------------------------------------------------


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # so that `finally` stops the sandbox


def _row(name: str, result: dict[str, Any], units: dict[str, float], phe_units: dict[str, float]) -> dict:
    """The figures of one workload: per-tree medians of the floor and phe estimates from each tree's counts."""
    cores = os.cpu_count() or 1
    counts = result["counts"]
    floors = [(c["additions"] * units["mulmod"] + c["rows"] * units["encrypt"]) / cores for c in counts]
    phes = [c["additions"] * phe_units["add"] + c["rows"] * phe_units["encrypt"] for c in counts]
    ours = result["ours"]
    return {
        "floor": median(floors),
        "phe": median(phes),
        "additions": median([c["additions"] for c in counts]),
        "encryptions": median([c["rows"] for c in counts]),
        "per_tree": ours["seconds_per_tree"],
        "goal": GOALS[name],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["credit", "scale"], default=None)
    parser.add_argument("--bits", type=int, default=None, help="key size (default 2048; --quick 1024)")
    parser.add_argument(
        "--scale-rows", type=int, default=None, help="generated rows (default 100,000 + 25%%)"
    )
    parser.add_argument("--scale-trees", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, nothing recorded")
    args = parser.parse_args()
    bits = args.bits or (1024 if args.quick else 2048)
    if bits < 2048:
        from fedbench.crypto.paillier import WeakKeyWarning

        warnings.simplefilter("ignore", WeakKeyWarning)
    signal.signal(signal.SIGTERM, _terminated)
    started = time.perf_counter()
    loads = {"start": os.getloadavg()[0]}
    units = unit_costs(bits)
    phe_units = phe_costs(bits)
    print(
        f"one multiplication mod n^2 {units['mulmod'] * 1e6:.2f} us, one encryption {units['encrypt'] * 1e3:.3f} ms; "
        f"phe: encryption {phe_units['encrypt'] * 1e3:.2f} ms, addition {phe_units['add'] * 1e6:.2f} us",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    if args.only in (None, "credit"):
        tables = credit_tables(3000 if args.quick else None)
        results["credit"] = workload("credit", tables, 3 if args.quick else 10, bits, args.quick)
    if args.only in (None, "scale"):
        train_rows = 3000 if args.quick else 100_000
        generated = args.scale_rows or round(train_rows / 0.8)
        tables = scale_tables(generated, 5 if args.quick else 30, 30 if args.quick else 300)
        results["scale"] = workload("scale", tables, 1 if args.quick else args.scale_trees, bits, args.quick)
    loads["end"] = os.getloadavg()[0]

    table = []
    cores = os.cpu_count() or 1
    for name, result in results.items():
        fig = _row(name, result, units, phe_units)
        ours = result["ours"]
        gap = ours["auc_test"] - result["xgboost"]["auc"]
        memory = max(ours["peak_mb"].values())
        table.append(
            [
                f"{name}: {result['rows']:,} rows, {result['guest_features']} + {result['host_features']} features, "
                f"{len(ours['model']['trees'])} trees",
                f"{fig['per_tree']:.1f}",
                f"<= {fig['goal']:g} s: {'met' if fig['per_tree'] <= fig['goal'] else 'missed'}",
                f"{fig['floor']:.1f} ({fig['per_tree'] / fig['floor']:.2f}x)",
                f"{fig['phe']:.0f} ({fig['phe'] / fig['per_tree']:.1f}x)",
                f"{ours['auc_test']:.4f}",
                f"{result['xgboost']['auc']:.4f} ({gap:+.4f}, {'met' if abs(gap) <= AUC_TOLERANCE else 'missed'})",
                " / ".join(
                    f"{ours['peak_mb'][p]:.0f} ({ours['peak_pss_mb'][p]:.0f})" for p in ("guest", "host")
                )
                + f" ({'met' if memory <= MEMORY_GOAL_MB else 'missed'})",
                " / ".join(f"{ours['cpu'][p]:.0f}" for p in ("guest", "host"))
                + f" ({sum(ours['cpu'].values()) / len(ours['model']['trees']) / cores:.1f})",
                f"{ours['load'][0]:.1f} -> {ours['load'][1]:.1f}",
            ]
        )
    headers = [
        "workload (2048-bit keys, depth 3, 32 bins)" if bits == 2048 else f"workload ({bits}-bit keys)",
        "s per tree (median)",
        "goal (2 cores)",
        "floor s per tree (ours / floor)",
        "textbook phe s per tree (phe / ours)",
        "test AUC",
        "XGBoost test AUC (gap, goal 0.005)",
        "peak RSS (PSS) MB guest / host (goal 4 GB)",
        "CPU s guest / host (all CPU s per tree / cores)",
        "load avg before -> after",
    ]
    body = markdown_table(headers, table)
    lines = [
        f"- Command: `python benchmarks/secureboost.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`; "
        f"whole run {time.perf_counter() - started:.0f} s; 1-minute load average {loads['start']:.1f} at the "
        f"start and {loads['end']:.1f} at the end (above 2: other work shared the 2 cores, and the seconds "
        "per tree grow with it).",
        f"- Measured in this run, one core: one multiplication modulo n^2 {units['mulmod'] * 1e6:.2f} us, one "
        f"encryption (ours) {units['encrypt'] * 1e3:.3f} ms; phe {phe.__version__}: one encryption "
        f"{phe_units['encrypt'] * 1e3:.2f} ms, one addition {phe_units['add'] * 1e6:.2f} us.",
        f"- {FATE}.",
        "- Ours: a fresh two-node sandbox per workload (guest and host nodes on this machine, mutual TLS on "
        "loopback), the training and test rows registered on each node, a PSI of each (release both), then "
        "`hetero_secureboost` on the training rows with the test rows as its validation input, learning rate "
        "0.3, lambda 1, min_child_weight 1, no sampling, default warm workers. Not `simulate`: it runs both "
        "parties as threads of one process (one GIL, one Paillier worker pool) and cannot tell each party's "
        "memory. Seconds per tree: the guest's `seconds_per_tree` metric (median). Peak RSS: the largest sum, "
        "sampled every 0.25 s, of the RSS of the party's node and its descendants (step worker, Paillier "
        "workers); in parentheses the same for PSS (shared pages split among processes). CPU: the same "
        "processes' user + system seconds during the training step (key generation, alignment, binning and "
        "scoring included); divided by the trees and the cores, it is about what a tree would take with the "
        "cores to itself (if the parties kept both cores busy), whatever the load.",
    ]
    for name, result in results.items():
        fig = _row(name, result, units, phe_units)
        ours = result["ours"]
        cost, naive = result["grouped"]
        lines.append(
            f"- {name}: trees at {', '.join(f'{m:.0f}' for m in ours['tree_marks'])} s after submitting (polled); "
            f"wall {ours['wall']:.0f} s (PSIs before it {ours['psi_seconds']:.0f} s, datasets and sandbox "
            f"{result['setup_seconds']:.0f} s); per tree (median) {fig['encryptions']:,.0f} encryptions and "
            f"{fig['additions']:,.0f} additions (histogram rows x {result['host_features']} host features); the "
            f"host's root histogram grouped: {cost:,} multiplications instead of {naive:,} "
            f"({cost / naive:.2f}); train AUC {ours['auc_train']:.4f}"
            + (
                f"; our plaintext booster on the joined rows: test AUC {result['plain_auc']:.4f}"
                if name == "credit"
                else ""
            )
            + f"; XGBoost fit {result['xgboost']['seconds']:.2f} s; up to {max(ours['processes'].values())} "
            "processes per party."
        )
    lines.append(
        "- Floor: (additions x one multiplication + encryptions x one encryption) / "
        f"{os.cpu_count()} cores per tree, from each tree's counts. phe: the same counts on one core "
        "(encryptions and additions only)."
    )
    notes = "\n".join(lines)
    if args.quick:
        print("\n" + body + "\n\n" + notes)
        return
    record(
        "secureboost.py: hetero_secureboost seconds per tree, AUC and memory, vs floor, phe, XGBoost",
        body,
        notes,
    )


if __name__ == "__main__":
    main()
