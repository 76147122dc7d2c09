"""A rogue guest for `binning`: it encrypts 2^i as the label of row i, to read each row's host bin from the sums.

With the setting `label_powers`, the guest's binning role sends Enc(2^i) for row i (i below the key's plaintext
bits, 0 for later rows) instead of Enc(0/1), declares a bound of 1 so the host's overflow checks pass, and,
when the host asks for proofs that the labels are 0 or 1, sends proofs made by the honest algorithm on these
values (they cannot verify). Decrypting the host's per-bin sums bit by bit gives the set of rows in each host
bin; the guest writes them as its `model` output (`recovered`: per host feature, each probed row's bin), so
the test sees exactly what the host released.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from fb_rogue import rogue_setting

from fedbench.components.builtin import binning as binning_module
from fedbench.components.builtin.binning import BinningParams, binning
from fedbench.crypto.paillier import EncryptedVector, generate_keypair
from fedbench.federation import Context


def _labels_message(ctx: Context, public: Any, private: Any, values: list[int]) -> dict[str, Any]:
    """The labels message: Enc(values) declared with bound 1, plus proofs made on them if the host wants proofs."""
    context = getattr(binning_module, "label_proof_context", None)
    if context is None:
        labels = private.encrypt_encoded(values, 0).to_dict()
        labels["bound"] = 1
        return {"public_key": public.to_dict(), "labels": labels}
    from fedbench.crypto.paillier import proofs

    width = (int(public.n * public.n).bit_length() + 7) // 8
    cts, commitments, challenges, responses = proofs._prove_chunk(
        int(private.p), int(private.q), 2, context(ctx), 0, values
    )
    labels = EncryptedVector.from_ciphertexts(public, proofs.ciphertexts_from_bytes(cts, width)).to_dict()
    labels["bound"] = 1
    forged = proofs.BitProofs(2, proofs.ciphertexts_from_bytes(commitments, width), challenges, responses)
    return {"public_key": public.to_dict(), "labels": labels, "proofs": forged.to_dict(public)}


def _probing_guest(ctx: Context, params: BinningParams) -> None:
    table: pd.DataFrame = ctx.input("data")
    rows = len(table)
    host = ctx.peer("host")
    host.send("rows", rows)
    host.recv("rows")
    public, private = generate_keypair(bits=params.key_bits)
    probed = min(rows, public.n_bits - 8)
    values = [1 << i if i < probed else 0 for i in range(rows)]
    message = _labels_message(ctx, public, private, values)
    host.send("labels", message)
    reply = host.recv("sums")
    sums = private.decrypt_encoded(EncryptedVector.from_dict(public, reply["sums"]))
    recovered: dict[str, list[int]] = {}
    start = 0
    for name, counts in zip(reply["features"], reply["counts"], strict=True):
        bins = [-1] * probed
        for b in range(len(counts)):
            mask = int(sums[start + b])
            for i in range(probed):
                if mask >> i & 1:
                    bins[i] = b
        start += len(counts)
        recovered[str(name)] = bins
    host.send(
        "woe", {name: [0.0] * len(c) for name, c in zip(reply["features"], reply["counts"], strict=True)}
    )
    ctx.output("model", {"component": "binning", "role": "guest", "recovered": recovered, "probed": probed})
    ctx.output("data", table)
    ctx.output("metrics", {"probed": probed})


if rogue_setting("label_powers"):
    binning.role("guest")(_probing_guest)
