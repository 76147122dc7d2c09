"""The host's per-bin sums go back to the guest under fresh randomness, not as bare products of the guest's
own ciphertexts (which would let the guest, who made their obfuscators, test which of its rows fall in a bin);
and the host sums only labels proved to be 0 or 1, over bins it recounted itself."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import gmpy2
import numpy as np
import pandas as pd
import pytest

from fedbench.components import RecordedMessage, RoleFailed, get, simulate
from fedbench.components.builtin.binning import (
    BinningRefused,
    _check_own_bins,
    assign_bins,
    fit_bins,
    label_proof_context,
)
from fedbench.crypto.paillier import EncryptedVector, PublicKey, generate_keypair
from fedbench.crypto.paillier.proofs import encrypt_bits
from fedbench.federation import Context

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")


def test_host_sums_are_rerandomized_before_they_go_back():
    rng = np.random.default_rng(0)
    rows = 200
    guest_table = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(rows)],
            "y": rng.integers(0, 2, rows).astype(float),
            "g": rng.normal(size=rows),
        }
    )
    host_table = pd.DataFrame({"id": guest_table["id"], "h": rng.normal(size=rows)})
    record: list[RecordedMessage] = []
    outputs = simulate(
        "binning",
        {"guest": guest_table, "host": host_table},
        record=record,
        label="y",
        key_bits=1024,
        bins=4,
        min_bin_count=20,
    )
    wire = {message.tag: message.payload for message in record}

    public = PublicKey.from_dict(wire["labels"]["public_key"])
    labels = EncryptedVector.from_dict(public, wire["labels"]["labels"]).ciphertexts
    sums = EncryptedVector.from_dict(public, wire["sums"]["sums"]).ciphertexts
    bins = outputs["host"]["model"]["features"]["h"]
    index = assign_bins(host_table["h"].to_numpy(), bins)
    nsq = gmpy2.mpz(public.n) ** 2
    assert len(sums) == len(bins["counts"]) >= 2
    for k in range(len(bins["counts"])):
        bare = gmpy2.mpz(1)
        for i in np.flatnonzero(index == k):
            bare = bare * labels[i] % nsq
        assert int(bare) != int(sums[k]), (
            f"bin {k}: the host returned the bare product of the guest's ciphertexts"
        )


def _host_against(message: Any, rows: int = 60) -> str:
    """Run the host role against a guest that sends `message` as its labels; the host's error."""
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"id": [f"u{i}" for i in range(rows)], "h": rng.normal(size=rows)})

    def rogue_guest(ctx: Context, params: Any) -> None:
        peer = ctx.peer("host")
        peer.send("rows", rows)
        peer.recv("rows")
        peer.send("labels", message(ctx) if callable(message) else message)

    binning = get("binning")
    rogue = replace(binning, functions={**binning.functions, "guest": rogue_guest})
    with pytest.raises(RoleFailed) as failed:
        simulate(rogue, {"guest": table, "host": table}, key_bits=1024, bins=3, min_bin_count=10)
    assert failed.value.party == "host", "the host summed the labels"
    error = failed.value.error
    return f"{type(error).__name__}: {error}"


@pytest.fixture(scope="module")
def keys():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_keypair(1024)


def test_the_host_refuses_labels_without_proofs_or_with_labels_that_are_not_0_or_1(keys):
    public, private = keys
    bare = {"public_key": public.to_dict(), "labels": private.encrypt(np.zeros(60, dtype=int)).to_dict()}
    assert "must come with proofs" in _host_against(bare)

    def crafted(ctx: Context) -> dict[str, Any]:
        """Honest proofs of 0/1 labels, sent with ciphertexts of 2^i (the attack of tests/test_rogue_labels.py)."""
        _, proofs = encrypt_bits(private, np.zeros(60, dtype=int), label_proof_context(ctx), workers=1)
        powers = private.encrypt_encoded([1 << i for i in range(60)], 0)
        return {"public_key": public.to_dict(), "labels": powers.to_dict(), "proofs": proofs.to_dict(public)}

    error = _host_against(crafted)
    assert error.startswith("BinningRefused") and "encrypt 0 or 1 do not verify" in error

    def replayed(ctx: Context) -> dict[str, Any]:
        """Valid proofs, but made for another job: the context binds them to this one."""
        vector, proofs = encrypt_bits(private, np.ones(60, dtype=int), b"another job", workers=1)
        return {"public_key": public.to_dict(), "labels": vector.to_dict(), "proofs": proofs.to_dict(public)}

    assert "do not verify" in _host_against(replayed)


def test_the_host_recounts_its_own_bins_before_any_sum_leaves():
    table = pd.DataFrame({"h": np.arange(100, dtype=float)})
    bins = {"h": fit_bins(table["h"], "quantile", 4, 20)}
    _check_own_bins(table, bins, 20)
    with pytest.raises(BinningRefused, match="at least min_bin_count 30"):
        _check_own_bins(table, bins, 30)
    forged = {"h": {**bins["h"], "counts": [50, 50, 0, 0]}}
    with pytest.raises(BinningRefused, match="do not each hold"):
        _check_own_bins(table, forged, 20)
