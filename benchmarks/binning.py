"""WOE/IV of the host's features through encrypted labels, as `binning` computes it, against element-by-element phe.

The workload: the synthetic credit data (`make_credit`, all rows aligned as after PSI), the guest's 0/1
label `default` and 13 host features. Ours is the protocol of fedbench/components/builtin/binning.py run in
one process with the functions the component calls: a fresh keypair, the guest encrypts its labels, the
labels message goes through `to_dict`, the federation codec and `from_dict`, the host bins its features
(`fit_bins`, `apply_bins`), sums the encrypted labels per bin (`labels.dot(onehot)`) and rerandomizes, the
sums go back the same way, the guest checks and decrypts them and computes WOE and IV (`woe_iv`). The
baseline does the same with phe one element at a time (encrypt each label, add the encrypted labels of each
bin one by one, obfuscate each sum, JSON as in phe's documentation, decrypt each sum). phe runs on a sample
of the rows and is extrapolated stage by stage; ours runs on the full data and on the same sample. Both
must give the same per-bin event counts and IV as plaintext counting. Medians of repeats, interleaved.
With label proofs (hole 6 of issue #14): the same protocol where the guest encrypts its labels with a proof
that each encrypts 0 or 1 (`encrypt_bits`) and the host checks them all in one batch (`verify_bits`) before it
sums; timed beside today's path in the same run (target: at most 3x today's path, still at least 8x faster
than phe), in wall time and, on one process, in CPU time (the machine may be shared).
Run: `python benchmarks/binning.py` (2048 bits, 30,000 rows, 3 repeats; about 8 minutes on an idle 2-core
machine); `--quick` for a smoke run at 1024 bits that records nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import phe

sys.path.insert(0, str(Path(__file__).parent))
from _common import Stopwatch, markdown_table, median, record  # noqa: E402

from fedbench.components.builtin.binning import (  # noqa: E402
    BinningParams,
    _check_host_bins,  # what the guest runs on the host's reply
    apply_bins,
    fit_bins,
    woe_iv,
)
from fedbench.crypto.paillier import (  # noqa: E402
    EncryptedVector,
    PublicKey,
    WeakKeyWarning,
    generate_keypair,
    get_workers,
)
from fedbench.crypto.paillier.proofs import BitProofs, encrypt_bits, verify_bits  # noqa: E402
from fedbench.datasets.credit import HOST_FEATURES, LABEL_COLUMN, make_credit  # noqa: E402
from fedbench.net import codec  # noqa: E402

TARGET = 8.0
PROOF_TARGET = 3.0
CONTEXT = b"benchmark/binning/labels"
STAGES = (
    "keygen",
    "encrypt",
    "send labels",
    "verify",
    "bin",
    "sum",
    "rerandomize",
    "send sums",
    "decrypt + WOE/IV",
)
GROWS = {
    "keygen": "once",
    "encrypt": "rows",
    "send labels": "rows",
    "verify": "rows",
    "bin": "rows",
    "sum": "rows",
}
"""What each stage's work grows with; the stages not listed grow with the number of bins."""

Result = dict[str, tuple[list[int], list[int], float]]
"""Per host feature: events per bin, rows per bin, IV."""


def fit_all(table: pd.DataFrame, names: list[str], params: BinningParams) -> dict[str, Any]:
    """The host's bins of every feature, as the component's `_fit_all` makes them."""
    return {name: fit_bins(table[name], params.method, params.bins, params.min_bin_count) for name in names}


def run_ours(
    y: np.ndarray,
    table: pd.DataFrame,
    names: list[str],
    bits: int,
    params: BinningParams,
    workers: int | None,
    proofs: bool = False,
) -> tuple[Result, Stopwatch]:
    """The binning protocol for the host's features, both parties in this process (with label proofs or not)."""
    t = Stopwatch()
    rows = len(y)
    with t("keygen"):
        public, private = generate_keypair(bits=bits)
    with t("encrypt"):
        if proofs:
            encrypted, proved = encrypt_bits(private, y, CONTEXT, workers=workers)
        else:
            encrypted = private.encrypt(y, workers=workers)
    with t("send labels"):
        sent = {"public_key": public.to_dict(), "labels": encrypted.to_dict()}
        if proofs:
            sent["proofs"] = proved.to_dict(public)
        message = codec.decode(codec.encode(sent))
        host_public = PublicKey.from_dict(message["public_key"])
        labels = EncryptedVector.from_dict(host_public, message["labels"])
    with t("verify"):
        if proofs:
            checked = BitProofs.from_dict(host_public, message["proofs"], rows)
            verify_bits(host_public, labels, checked, CONTEXT, workers=workers)
    with t("bin"):
        ours = fit_all(table, names, params)
        widths = [len(ours[name]["counts"]) for name in names]
        onehot = np.zeros((rows, sum(widths)), dtype=np.int64)
        offset = 0
        for name, index in apply_bins(table, ours).items():
            onehot[np.arange(rows), offset + index] = 1
            offset += len(ours[name]["counts"])
    with t("sum"):
        sums = labels.dot(onehot, workers=workers)
    with t("rerandomize"):
        sums = sums.rerandomize(workers=workers)
    with t("send sums"):
        wire = codec.encode(
            {"features": names, "counts": [ours[name]["counts"] for name in names], "sums": sums.to_dict()}
        )
        reply = codec.decode(wire)
        host_names, host_counts = _check_host_bins(reply, rows, params.min_bin_count)
        received = EncryptedVector.from_dict(public, reply["sums"])
    with t("decrypt + WOE/IV"):
        totals = private.decrypt(received, workers=workers)
        result: Result = {}
        start = 0
        for name, counts in zip(host_names, host_counts, strict=True):
            events = [int(e) for e in totals[start : start + len(counts)]]
            start += len(counts)
            result[name] = (events, counts, woe_iv(events, counts)[1])
    return result, t


def run_phe(
    y: np.ndarray, table: pd.DataFrame, names: list[str], bits: int, params: BinningParams
) -> tuple[Result, Stopwatch]:
    """The same computation with phe, one element at a time."""
    t = Stopwatch()
    with t("keygen"):
        public, private = phe.paillier.generate_paillier_keypair(n_length=bits)
    with t("encrypt"):
        encrypted = [public.encrypt(int(v)) for v in y]
    with t("send labels"):
        wire = json.dumps(
            {
                "public_key": {"n": str(public.n)},
                "labels": [(str(c.ciphertext()), c.exponent) for c in encrypted],
            }
        )
        message = json.loads(wire)
        host_public = phe.PaillierPublicKey(int(message["public_key"]["n"]))
        labels = [phe.EncryptedNumber(host_public, int(c), int(e)) for c, e in message["labels"]]
    with t("bin"):
        ours = fit_all(table, names, params)
        indices = apply_bins(table, ours)
    with t("sum"):
        sums: list[Any] = []
        for name in names:
            acc: list[Any] = [None] * len(ours[name]["counts"])
            for b, c in zip(indices[name].tolist(), labels, strict=True):
                acc[b] = c if acc[b] is None else acc[b] + c
            sums += [host_public.encrypt(0) if s is None else s for s in acc]
    with t("rerandomize"):
        for s in sums:
            s.obfuscate()
    with t("send sums"):
        wire = json.dumps(
            {
                "features": names,
                "counts": [ours[name]["counts"] for name in names],
                "sums": [(str(s.ciphertext()), s.exponent) for s in sums],
            }
        )
        reply = json.loads(wire)
        received = [phe.EncryptedNumber(public, int(c), int(e)) for c, e in reply["sums"]]
    with t("decrypt + WOE/IV"):
        totals = [private.decrypt(s) for s in received]
        result: Result = {}
        start = 0
        for name, counts in zip(reply["features"], reply["counts"], strict=True):
            events = [int(e) for e in totals[start : start + len(counts)]]
            start += len(counts)
            result[name] = (events, counts, woe_iv(events, counts)[1])
    return result, t


def plaintext(y: np.ndarray, table: pd.DataFrame, names: list[str], params: BinningParams) -> Result:
    """The answer, by counting the labels per bin in the clear."""
    ours = fit_all(table, names, params)
    result: Result = {}
    for name, index in apply_bins(table, ours).items():
        counts = ours[name]["counts"]
        events = [int(e) for e in np.bincount(index, weights=y, minlength=len(counts))]
        result[name] = (events, counts, woe_iv(events, counts)[1])
    return result


def check(result: Result, expected: Result, what: str) -> None:
    """Identical bins, per-bin events and IV (the same integers through the same `woe_iv`: exactly equal)."""
    assert list(result) == list(expected), f"{what}: features {list(result)} != {list(expected)}"
    for name, (events, counts, iv) in expected.items():
        assert result[name][1] == counts, f"{what}: bin counts of {name} differ"
        assert result[name][0] == events, f"{what}: events of {name} differ: {result[name][0]} != {events}"
        assert result[name][2] == iv, f"{what}: IV of {name} differs: {result[name][2]} != {iv}"


def extrapolate(seconds: dict[str, float], scale: tuple[float, float]) -> dict[str, float]:
    """Per-stage seconds at (rows factor, bins factor): each stage scaled by what it grows with."""
    factor = {"once": 1.0, "rows": scale[0], "bins": scale[1]}
    return {stage: s * factor[GROWS.get(stage, "bins")] for stage, s in seconds.items()}


def main() -> None:
    """Time ours (engine, 1 process, sample) and phe (sample) interleaved, check them, record the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="rows (default 30,000; --quick: 3,000)")
    parser.add_argument("--bits", type=int, default=None, help="key size (default 2048; --quick: 1024)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--features", type=int, default=13, help="host features (first of HOST_FEATURES)")
    parser.add_argument(
        "--phe-rows", type=int, default=None, help="phe's sample (default 1,000; --quick: 200)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat, nothing recorded")
    args = parser.parse_args()
    rows = args.rows or (3000 if args.quick else 30_000)
    bits = args.bits or (1024 if args.quick else 2048)
    sample = min(rows, args.phe_rows or (200 if args.quick else 1000))
    repeats = 1 if args.quick else args.repeats
    if bits < 2048:
        warnings.simplefilter("ignore", WeakKeyWarning)
    if not 1 <= args.features <= len(HOST_FEATURES):
        parser.error(f"--features must be 1..{len(HOST_FEATURES)}")
    started = time.perf_counter()
    load_before = os.getloadavg()[0]

    params = BinningParams()  # the component's defaults: quantile, 10 bins, min_bin_count 20
    names = HOST_FEATURES[: args.features]
    data = make_credit(rows, seed=0)
    y = data[LABEL_COLUMN].to_numpy(dtype=np.int64)
    table = data[["id", *names]]
    y_s, table_s = y[:sample], table.iloc[:sample].reset_index(drop=True)
    expected, expected_s = plaintext(y, table, names, params), plaintext(y_s, table_s, names, params)
    bins, bins_s = (
        sum(len(c) for _, c, _ in expected.values()),
        sum(len(c) for _, c, _ in expected_s.values()),
    )

    warm = time.perf_counter()  # start the worker processes (once per process, not per computation)
    run_ours(y[:2000], table.iloc[:2000].reset_index(drop=True), names, bits, params, None)
    warm = time.perf_counter() - warm

    runs: dict[str, Callable[[], tuple[Result, Stopwatch]]] = {
        "engine": lambda: run_ours(y, table, names, bits, params, None),
        "single": lambda: run_ours(y, table, names, bits, params, 1),
        "engine proofs": lambda: run_ours(y, table, names, bits, params, None, proofs=True),
        "single proofs": lambda: run_ours(y, table, names, bits, params, 1, proofs=True),
        "engine sample": lambda: run_ours(y_s, table_s, names, bits, params, None),
        "single sample": lambda: run_ours(y_s, table_s, names, bits, params, 1),
        "phe sample": lambda: run_phe(y_s, table_s, names, bits, params),
    }
    watches: dict[str, list[Stopwatch]] = {key: [] for key in runs}
    for repeat in range(repeats):
        for key, fn in runs.items():
            result, watch = fn()
            check(result, expected_s if "sample" in key else expected, key)
            watches[key].append(watch)
            print(f"repeat {repeat + 1}/{repeats} {key}: {sum(watch.wall.values()):.2f} s", flush=True)

    factor = (rows / sample, bins / bins_s)
    same = (1.0, 1.0)

    def total(key: str, cpu: bool = False, scale: tuple[float, float] = same) -> float:
        """Median over repeats of the run's total seconds (extrapolated per stage by `scale`)."""
        return median([sum(extrapolate(w.cpu if cpu else w.wall, scale).values()) for w in watches[key]])

    def stage(key: str, name: str, scale: tuple[float, float] = same) -> float:
        return median([extrapolate(w.wall, scale).get(name, 0.0) for w in watches[key]])

    workers = get_workers()
    verdict = "met" if total("phe sample", scale=factor) / total("engine") >= TARGET else "missed"

    def line(
        label: str, engine: float, single: float, baseline: float, cpu1: float, cpu_phe: float
    ) -> list[Any]:
        return [
            bits,
            label,
            f"{engine:.2f}",
            f"{single:.2f}",
            f"{baseline:.1f}",
            f"{baseline / engine:.1f}x",
            f"{baseline / single:.1f}x",
            f"{cpu1:.2f}",
            f"{cpu_phe:.1f}",
            f"{cpu_phe / cpu1:.1f}x",
        ]

    headline = line(
        f"{rows:,} rows, {len(names)} features, {bins} bins (phe extrapolated from {sample:,} rows)",
        total("engine"),
        total("single"),
        total("phe sample", scale=factor),
        total("single", cpu=True),
        total("phe sample", cpu=True, scale=factor),
    )
    headline.insert(7, f">= {TARGET:g}x: {verdict}")
    measured = line(
        f"{sample:,}-row sample, {bins_s} bins (both measured)",
        total("engine sample"),
        total("single sample"),
        total("phe sample"),
        total("single sample", cpu=True),
        total("phe sample", cpu=True),
    )
    measured.insert(7, "")
    both = line(
        f"{rows:,} rows, both extrapolated from the {sample:,}-row sample",
        total("engine sample", scale=factor),
        total("single sample", scale=factor),
        total("phe sample", scale=factor),
        total("single sample", cpu=True, scale=factor),
        total("phe sample", cpu=True, scale=factor),
    )
    both.insert(7, "")
    main_table = markdown_table(
        [
            "bits",
            "WOE/IV of the host's features",
            f"ours s (engine, {workers} processes, wall)",
            "ours s (1 process, wall)",
            "phe s (wall)",
            "speed-up (engine)",
            "speed-up (1 process)",
            "target (2 cores)",
            "ours 1 process, CPU s",
            "phe CPU s",
            "speed-up on one core, CPU time",
        ],
        [headline, measured, both],
    )
    stage_rows = [
        [
            name,
            GROWS.get(name, "bins"),
            f"{stage('engine', name):.3f}",
            f"{stage('single', name):.3f}",
            f"{stage('engine proofs', name):.3f}",
            f"{stage('single proofs', name):.3f}",
            f"{stage('engine sample', name):.3f}",
            f"{stage('phe sample', name):.3f}",
            f"{stage('phe sample', name, factor):.2f}",
        ]
        for name in STAGES
    ]
    stage_table = markdown_table(
        [
            "stage",
            "grows with",
            f"ours {rows:,} rows, engine s",
            f"ours {rows:,} rows, 1 process s",
            f"with label proofs {rows:,} rows, engine s",
            f"with label proofs {rows:,} rows, 1 process s",
            f"ours {sample:,} rows, engine s",
            f"phe {sample:,} rows s",
            f"phe {rows:,} rows s (extrapolated)",
        ],
        stage_rows,
    )
    notes = "\n".join(
        [
            f"- Data: `make_credit({rows})`, every row aligned (as after PSI); label `default` "
            f"({y.mean():.1%} events); host features: the first {len(names)} of `HOST_FEATURES` "
            f"({', '.join(names)}; the split gives the host {len(HOST_FEATURES)}, the rest left out). "
            f"Binning: the component's defaults ({params.method}, {params.bins} bins, min_bin_count "
            f"{params.min_bin_count}): {bins} bins over {rows:,} rows, {bins_s} over the {sample:,}-row sample.",
            "- Checked every run: per-bin row counts, event counts and IV of ours (engine and 1 process) and of "
            "phe equal those of counting the labels in the clear (asserted; IV exactly equal).",
            "- Ours: the functions `binning` calls, both parties in one process (no nodes, no network): a fresh "
            "keypair per run (`generate_keypair`), `private.encrypt(y)` (fixed-base + CRT; the fixed-base tables "
            "of the fresh key are built inside this stage), messages as `to_dict` -> federation codec "
            "encode/decode -> `from_dict` (with its validation), `labels.dot(onehot)`, `.rerandomize()`, "
            "`_check_host_bins`, `private.decrypt`, `woe_iv`. 'engine' uses the engine's default workers "
            f"(cap {workers}); '1 process' passes workers=1.",
            f"- phe baseline: phe {phe.__version__} with gmpy2, `generate_paillier_keypair(n_length={bits})`, "
            "one `encrypt` per label, per feature each row's encrypted label added to its bin's sum one at a "
            "time, `obfuscate()` on each sum (the rerandomization), JSON of (str(ciphertext), exponent) pairs as "
            "phe's README does it, one `decrypt` per bin.",
            f"- phe ran on the first {sample:,} rows (bins fitted on those rows) and is extrapolated stage by "
            f"stage: the stages growing with the rows (encrypt, send labels, bin, sum) x {factor[0]:g}, the ones "
            f"growing with the bins (rerandomize, send sums, decrypt + WOE/IV) x {factor[1]:.2f} ({bins} bins "
            f"over all rows, {bins_s} over the sample), key generation as measured. The third row extrapolates "
            "ours from the same sample the same way: compare it with the measured first row to judge the "
            "extrapolation.",
            "- With label proofs: the guest's `encrypt` stage is `encrypt_bits` (its own DJN-style encryption "
            "under a fresh base h plus one OR-proof per label: three fixed-base powers modulo p^2 and q^2 per "
            "row), `send labels` carries the proofs too (about 1.2 KB per row at 2048 bits), and the host's "
            "`verify` stage parses them (`BitProofs.from_dict`) and checks all of them in one batch "
            "(`verify_bits`: a SHA-256 challenge per row, secret 63-bit weights, two bucket multi-exponentiations "
            "and one full exponentiation). The ratios divide by today's path of the same run.",
            "- CPU columns count this process's CPU seconds, so they apply to single-process runs only (ours "
            "pinned to 1 process, phe) and do not move with other load on the machine.",
            f"- Medians of {repeats} repeats, the seven runs interleaved (ours engine, ours 1 process, both with "
            "label proofs, ours and ours 1 process on the sample, phe on the sample); worker start-up before "
            f"timing {warm:.2f} s; whole run {time.perf_counter() - started:.0f} s; 1-minute load average "
            f"{load_before:.1f} at the start "
            f"and {os.getloadavg()[0]:.1f} at the end (above 2: other processes shared the 2 cores).",
        ]
    )
    phe_total = total("phe sample", scale=factor)
    proof_rows = []
    for label, key in (("today's path", ""), ("with label proofs (encrypt_bits, verify_bits)", " proofs")):
        engine, single = total("engine" + key), total("single" + key)
        cpu = total("single" + key, cpu=True)
        ratios = (engine / total("engine"), single / total("single"), cpu / total("single", cpu=True))
        proof_rows.append(
            [
                bits,
                label,
                f"{engine:.2f}",
                f"{single:.2f}",
                f"{cpu:.2f}",
                f"{ratios[0]:.2f}x",
                f"{ratios[1]:.2f}x",
                f"{ratios[2]:.2f}x",
                ("met" if max(ratios) <= PROOF_TARGET else "missed") if key else "",
                f"{phe_total / engine:.1f}x",
                f"{total('phe sample', cpu=True, scale=factor) / cpu:.1f}x",
                "met" if phe_total / engine >= TARGET else "missed",
            ]
        )
    proof_table = markdown_table(
        [
            "bits",
            f"{rows:,} rows, {len(names)} host features",
            f"s (engine, {workers} processes, wall)",
            "s (1 process, wall)",
            "s (1 process, CPU)",
            "x today's path (engine, wall)",
            "x today's path (1 process, wall)",
            "x today's path (1 process, CPU)",
            f"target <= {PROOF_TARGET:g}x",
            "phe / this (engine, wall)",
            "phe / this (1 process, CPU)",
            f"target >= {TARGET:g}x",
        ],
        proof_rows,
    )
    table_md = main_table + "\n\n" + proof_table + "\n\n" + stage_table
    if args.quick:
        print(table_md + "\n\n" + notes)
    else:
        record(
            f"binning.py: WOE/IV of {len(names)} host features, ours vs phe, with and without label proofs",
            table_md,
            notes,
        )


if __name__ == "__main__":
    main()
