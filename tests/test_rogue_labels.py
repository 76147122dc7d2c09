"""Hole 6 of issue #14: `binning` must not trust the guest's label ciphertexts (real sandbox, rogue guest).

The rogue guest (`tests/plugins/fb_rogue_labels.py`) encrypts 2^i as the label of row i: one decrypted
per-bin sum would then be the set of rows in that host bin, for every host feature. The host checks a proof
that every label ciphertext encrypts 0 or 1 before it sums anything: it refuses, the refusal is in its audit
log, and an honest guest still bins afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from rogue import restart_rogue, rogue_sandbox, victim_run_ended

import fedbench
from fedbench import sandbox
from fedbench.client.runs import RunFailed
from fedbench.components.builtin.binning import BinningParams, apply_bins, fit_bins
from fedbench.datasets import breast_cancer_vertical

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A sandbox whose guest sends Enc(2^i) as the label of row i."""
    root = tmp_path_factory.mktemp("rogue_labels") / "sb"
    federation = rogue_sandbox(
        root, patches=["fb_rogue_labels"], settings={"label_powers": True}, rogue="guest"
    )
    try:
        yield {
            "root": root,
            "guest": fedbench.connect(home=federation.home("guest").root),
            "host": fedbench.connect(home=federation.home("host").root),
        }
    finally:
        sandbox.down(root)


def _host_bins() -> dict[str, list[int]]:
    """Each row's bin of every host feature, as the host computes them (the component's default params)."""
    table = breast_cancer_vertical()[1]
    params = BinningParams()
    names = [c for c in table.columns if c != params.id_column]
    fitted = {n: fit_bins(table[n], params.method, params.bins, params.min_bin_count) for n in names}
    return {name: index.tolist() for name, index in apply_bins(table, fitted).items()}


def _refusals(wb: Any) -> pd.DataFrame:
    audit = wb.project("demo").audit()
    return audit[~audit["allowed"].astype(bool) & audit["reason"].str.contains("0 or 1", na=False)]


def test_a_guest_sending_powers_of_two_learns_no_row_of_any_host_bin(labels):
    before = len(_refusals(labels["host"]))
    project = labels["guest"].project("demo")
    run = project.run("binning", data="breast_cancer", key_bits=1024, force=True)
    try:
        run.wait(show_progress=False)
    except RunFailed as exc:
        error = str(exc)
        victim_run_ended(labels["host"].project("demo"), run.job_id)
    else:
        model = run.output("model").value()
        truth = _host_bins()
        exposed = {
            name: sum(a == b for a, b in zip(bins, truth[name], strict=False))
            for name, bins in model["recovered"].items()
        }
        pytest.fail(
            f"the host summed crafted labels: the guest read the host bin of each of {model['probed']} rows "
            f"(correct for {min(exposed.values())} to {max(exposed.values())} rows per feature)"
        )
    assert "encrypt 0 or 1" in error, error
    refusals = _refusals(labels["host"])
    assert len(refusals) > before, "the host's refusal is not in its audit log"


def test_an_honest_guest_still_bins_with_the_host(labels):
    restart_rogue(labels["root"], {}, rogue="guest")
    project = labels["guest"].project("demo")
    run = project.run("binning", data="breast_cancer", key_bits=1024, force=True).wait(show_progress=False)
    ranked = run.output("metrics").value()["iv"]
    host_features = {r["feature"] for r in ranked if r["party"] == "host"}
    assert host_features == set(_host_bins())
    assert all(r["iv"] >= 0 for r in ranked)
