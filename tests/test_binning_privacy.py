"""The host's per-bin sums go back to the guest under fresh randomness, not as bare products of the guest's
own ciphertexts (which would let the guest, who made their obfuscators, test which of its rows fall in a bin)."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import gmpy2
import numpy as np
import pandas as pd

from fedbench.components.builtin.binning import BinningParams, assign_bins, guest, host
from fedbench.components.context import Context, TaskIO
from fedbench.crypto.paillier import EncryptedVector, PublicKey
from fedbench.net.transport import InMemoryFederation


def _context(
    federation: InMemoryFederation, party: str, table: pd.DataFrame, outputs: dict[str, Any]
) -> Context:
    io = TaskIO(
        read_input=lambda name: table,
        write_output=outputs.__setitem__,
        emit=lambda event: None,
        is_cancelled=lambda: False,
    )
    roles = {"guest": ["guest"], "host": ["host"]}
    return Context(
        party=party,
        role=party,
        roles=roles,
        job_id="job",
        step="binning",
        params=None,
        transport=federation.transport(party),
        io=io,
        recv_timeout=60,
    )


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
    federation = InMemoryFederation(["guest", "host"])
    wire: dict[str, Any] = {}
    deliver = federation._deliver

    def recording(sender: str, receiver: str, key: str, payload: Any) -> None:
        wire[key.rsplit("/", 1)[-1]] = payload
        deliver(sender, receiver, key, payload)

    federation._deliver = recording  # type: ignore[method-assign]
    params = BinningParams(label="y", key_bits=1024, bins=4, min_bin_count=20)
    guest_out: dict[str, Any] = {}
    host_out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        worker = threading.Thread(
            target=host, args=(_context(federation, "host", host_table, host_out), params)
        )
        worker.start()
        guest(_context(federation, "guest", guest_table, guest_out), params)
        worker.join(timeout=60)

    public = PublicKey.from_dict(wire["labels"]["public_key"])
    labels = EncryptedVector.from_dict(public, wire["labels"]["labels"]).ciphertexts
    sums = EncryptedVector.from_dict(public, wire["sums"]["sums"]).ciphertexts
    bins = host_out["model"]["features"]["h"]
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
