"""`binning`: quantile or equal-width bins per feature on each party, with WOE and IV against the guest's label.

Scorecards and feature selection need each feature's weight of evidence (WOE) per bin and its information
value (IV). The guest computes them in plaintext for its own features. For the host's features the labels
never leave the guest in the clear: the guest sends its label vector encrypted under a fresh Paillier key, the
host bins its features, merges adjacent bins holding fewer than `min_bin_count` rows, checks the guest's proof
that every label ciphertext encrypts 0 or 1 (a guest that encrypted 2^i as row i's label would otherwise read
each row's bin from one sum), sums the encrypted labels per bin (a one-hot bin matrix times the encrypted
vector) and returns only those per-bin sums with its per-bin counts. The guest decrypts the per-bin event
totals, computes WOE and IV, keeps the IV and sends the host the WOE of each of its bins so it can transform
its table. See docs/protocols/binning.md for what each party sees.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.alignment_protocol import exchange_row_counts
from fedbench.components.builtin.columns import LABEL_CANDIDATES, find_label
from fedbench.components.builtin.key_size import KeyBits, key_bits_field
from fedbench.components.spec import Component, Port, register
from fedbench.crypto.paillier import EncryptedVector, PublicKey, generate_keypair
from fedbench.crypto.paillier.proofs import BitProofError, BitProofs, encrypt_bits, verify_bits
from fedbench.errors import FedbenchError, Refused
from fedbench.federation import Context

__all__ = [
    "BinningError",
    "BinningParams",
    "BinningRefused",
    "FeatureBins",
    "apply_bins",
    "assign_bins",
    "binning",
    "cut_points",
    "fit_bins",
    "label_proof_context",
    "resolve_label",
    "transform_table",
    "woe_iv",
]

"""The label columns the guest looks for, in order, when `label` is not set."""

_SMOOTHING = 0.5


class BinningParams(BaseModel):
    """Parameters of `binning`."""

    model_config = {"extra": "forbid"}

    method: Literal["quantile", "equal_width"] = Field(
        default="quantile", description="bin edges at quantiles of each feature, or evenly spaced"
    )
    bins: int = Field(default=10, ge=2, le=100, description="bins per feature before small bins are merged")
    min_bin_count: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="fewest rows a bin may hold; smaller bins are merged with a neighbour",
    )
    label: str | None = Field(
        default=None,
        description="the guest's binary (0/1) label column; none: 'default' if present, else 'y'",
    )
    id_column: str = Field(default="id", description="the ID column, left out of the features")
    key_bits: KeyBits = key_bits_field("the encrypted labels")
    transform: Literal["none", "bin", "woe"] = Field(
        default="none", description="the data output: unchanged, each feature's bin index, or its WOE"
    )


binning = register(
    Component(
        name="binning",
        version="1",
        params=BinningParams,
        roles=("guest", "host"),
        use="train",
        inputs=(
            Port("data", "table", "each party's rows, aligned (e.g. by PSI); the guest's with the label"),
        ),
        outputs=(
            Port(
                "model", "model", "our bin edges and WOE per bin; on the guest also the IV of every feature"
            ),
            Port("data", "table", "our table unchanged, as bin indices or as WOE values (param transform)"),
            Port("metrics", "metrics", "guest: IV per feature, highest first; host: bins per feature"),
        ),
        description="Bin each party's features and compute WOE and IV, the host's through encrypted labels.",
    )
)


class BinningError(FedbenchError):
    """The tables do not align, the label is missing or not binary, or a party's bins break the rules."""

    code = "binning"


class BinningRefused(BinningError, Refused):
    """The host refuses the guest's labels (no valid 0/1 proofs) or a bin it would release breaks the rules."""

    code = "refused"


FeatureBins = dict[str, Any]
"""One feature's bins: ``{"cuts": [...], "missing_bin": int, "counts": [...]}`` (plus "woe" once known).

Regular bin i holds cuts[i-1] <= x < cuts[i]; rows with a missing value go to bin `missing_bin`, which is a
bin of their own (the last) when there were at least `min_bin_count` of them, else bin 0.
"""


def cut_points(values: np.ndarray, method: str, bins: int) -> np.ndarray:
    """The interior cut points of `bins` bins over the (non-missing) `values`, duplicates removed."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return np.empty(0)
    if method == "quantile":
        cuts = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    else:
        low, high = float(x.min()), float(x.max())
        if high <= low:
            return np.empty(0)
        cuts = np.linspace(low, high, bins + 1)[1:-1]
    cuts = np.unique(cuts)
    return cuts[(cuts > x.min()) & (cuts <= x.max())]


def assign_bins(values: Any, bins: FeatureBins) -> np.ndarray:
    """The bin index of each value under `bins` (missing values to `missing_bin`)."""
    x = np.asarray(values, dtype=np.float64)
    index = np.searchsorted(np.asarray(bins["cuts"], dtype=np.float64), x, side="right")
    index[np.isnan(x)] = int(bins["missing_bin"])
    return index.astype(np.int64)


def fit_bins(values: Any, method: str, bins: int, min_count: int) -> FeatureBins:
    """Bins of one feature, adjacent bins merged until each holds at least `min_count` rows (or one is left)."""
    x = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(x)
    n_missing = int((~present).sum())
    if not present.any():
        return {"cuts": [], "missing_bin": 0, "counts": [n_missing]}
    cuts = list(cut_points(x[present], method, bins))
    counts = list(
        np.bincount(np.searchsorted(np.asarray(cuts), x[present], side="right"), minlength=len(cuts) + 1)
    )
    while len(counts) > 1 and min(counts) < min_count:
        i = int(np.argmin(counts))
        if i == 0:
            j = 1
        elif i == len(counts) - 1:
            j = i - 1
        else:
            j = i - 1 if counts[i - 1] <= counts[i + 1] else i + 1
        low = min(i, j)
        counts[low] += counts[low + 1]
        del counts[low + 1]
        del cuts[low]
    missing_bin = 0
    if n_missing >= min_count:
        missing_bin = len(counts)
        counts.append(n_missing)
    else:
        counts[0] += n_missing
    return {"cuts": [float(c) for c in cuts], "missing_bin": missing_bin, "counts": [int(c) for c in counts]}


def woe_iv(events: Any, counts: Any) -> tuple[list[float], float]:
    """WOE per bin and the IV, from events and rows per bin.

    WOE_i = ln((e_i / E) / (ne_i / NE)) with ne_i = rows_i - e_i; a bin without events or without non-events
    uses e_i + 0.5 and ne_i + 0.5 instead. IV = sum((e_i / E - ne_i / NE) * WOE_i), with the same counts.
    """
    e = np.asarray(events, dtype=np.float64)
    ne = np.asarray(counts, dtype=np.float64) - e
    total_e, total_ne = e.sum(), ne.sum()
    if total_e <= 0 or total_ne <= 0:
        return [0.0] * len(e), 0.0
    zero = (e == 0) | (ne == 0)
    e = np.where(zero, e + _SMOOTHING, e)
    ne = np.where(zero, ne + _SMOOTHING, ne)
    share_e, share_ne = e / total_e, ne / total_ne
    woe = np.log(share_e / share_ne)
    return [float(w) for w in woe], float(((share_e - share_ne) * woe).sum())


def resolve_label(table: pd.DataFrame, label: str | None) -> str:
    """The guest's label column: `label`, or the first of LABEL_CANDIDATES the table has."""
    found = find_label(table, label, BinningError)
    if found is not None:
        return found
    raise BinningError(
        f"no label column named {' or '.join(map(repr, LABEL_CANDIDATES))}; set the param label "
        f"(the table has {list(table.columns)})"
    )


def _features(table: pd.DataFrame, exclude: set[str]) -> list[str]:
    """The numeric columns other than `exclude`."""
    return [
        str(c) for c in table.columns if c not in exclude and pd.api.types.is_numeric_dtype(table[c].dtype)
    ]


def _binary(values: pd.Series, label: str) -> np.ndarray:
    y = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
        raise BinningError(f"the label {label!r} must be 0 or 1 on every row")
    return y.astype(np.int64)


def apply_bins(table: pd.DataFrame, features: dict[str, FeatureBins]) -> dict[str, np.ndarray]:
    """The bin index of every row for each binned feature."""
    return {name: assign_bins(table[name], bins) for name, bins in features.items()}


def transform_table(table: pd.DataFrame, features: dict[str, FeatureBins], transform: str) -> pd.DataFrame:
    """`table` with each binned feature replaced by its bin index or WOE (`transform` "none" keeps it)."""
    if transform == "none":
        return table
    out = table.copy()
    for name, index in apply_bins(table, features).items():
        if transform == "bin":
            out[name] = index
        else:
            out[name] = np.asarray(features[name]["woe"], dtype=np.float64)[index]
    return out


def label_proof_context(ctx: Context) -> bytes:
    """What the guest's label proofs are bound to: this project, job and step (both parties know them)."""
    project = str(ctx.project.get("id", ""))
    return f"fedbench/binning/labels|project={project}|job={ctx.job_id}|step={ctx.step}".encode()


def _fit_all(ctx: Context, table: pd.DataFrame, names: list[str], params: BinningParams) -> dict[str, Any]:
    fitted = {}
    for name in names:
        fitted[name] = fit_bins(table[name], params.method, params.bins, params.min_bin_count)
        ctx.check_cancelled()
    return fitted


def _exchange_rows(ctx: Context, peer_role: str, rows: int) -> None:
    theirs = exchange_row_counts(ctx.peer(peer_role), rows)
    if theirs != rows:
        raise BinningError(
            f"the parties' tables are not aligned: we hold {rows} rows, the {peer_role} {theirs}; "
            "bin the outputs of the same PSI"
        )


def _check_host_bins(reply: Any, rows: int, min_count: int) -> tuple[list[str], list[list[int]]]:
    """The host's feature names and per-bin counts, checked: each bin big enough, every row counted once."""
    if not isinstance(reply, dict) or not {"features", "counts", "sums"} <= set(reply):
        raise BinningError("the host's per-bin sums are malformed")
    names = [str(n) for n in reply["features"]]
    counts = [[int(c) for c in feature] for feature in reply["counts"]]
    if len(names) != len(counts) or len(set(names)) != len(names):
        raise BinningError("the host's feature names and bin counts do not match")
    for name, feature in zip(names, counts, strict=True):
        if sum(feature) != rows or min(feature, default=0) < 0:
            raise BinningError(f"the host's bins of {name!r} do not count each of the {rows} rows once")
        if len(feature) > 1 and min(feature) < min_count:
            raise BinningError(
                f"the host's feature {name!r} has a bin of {min(feature)} rows, fewer than min_bin_count "
                f"{min_count}; its WOE would reveal labels, so it is not sent"
            )
    return names, counts


@binning.role("guest")
def guest(ctx: Context, params: BinningParams) -> None:
    """Encrypt the labels for the host, bin our features, decrypt the host's per-bin sums, compute WOE and IV."""
    table = ctx.input("data")
    label = resolve_label(table, params.label)
    y = _binary(table[label], label)
    rows = len(table)
    _exchange_rows(ctx, "host", rows)
    host = ctx.peer("host")
    public, private = generate_keypair(bits=params.key_bits)
    ctx.progress(0.05, "encrypting the labels, with a proof that each is 0 or 1")
    encrypted, proofs = encrypt_bits(private, y, label_proof_context(ctx))
    host.send(
        "labels",
        {"public_key": public.to_dict(), "labels": encrypted.to_dict(), "proofs": proofs.to_dict(public)},
    )
    ctx.progress(0.3, "binning our features")

    names = _features(table, {params.id_column, label})
    ours = _fit_all(ctx, table, names, params)
    iv: dict[str, dict[str, float]] = {"guest": {}, "host": {}}
    for name, index in apply_bins(table, ours).items():
        own_events = np.bincount(index, weights=y, minlength=len(ours[name]["counts"])).astype(np.int64)
        ours[name]["events"] = [int(e) for e in own_events]
        ours[name]["woe"], iv["guest"][name] = woe_iv(own_events, ours[name]["counts"])
        ours[name]["iv"] = iv["guest"][name]

    ctx.progress(0.4, "waiting for the host's per-bin sums")
    reply = host.recv("sums")
    host_names, host_counts = _check_host_bins(reply, rows, params.min_bin_count)
    sums = private.decrypt(EncryptedVector.from_dict(public, reply["sums"]))
    if len(sums) != sum(len(c) for c in host_counts):
        raise BinningError("the host sent a different number of per-bin sums than bins")
    theirs: dict[str, dict[str, Any]] = {}
    start = 0
    for name, counts in zip(host_names, host_counts, strict=True):
        events = [int(e) for e in sums[start : start + len(counts)]]
        start += len(counts)
        if any(not 0 <= e <= c for e, c in zip(events, counts, strict=True)):
            raise BinningError(f"the host's per-bin sums of {name!r} do not fit its counts")
        woe, iv["host"][name] = woe_iv(events, counts)
        theirs[name] = {"counts": counts, "events": events, "woe": woe, "iv": iv["host"][name]}
    host.send("woe", {name: theirs[name]["woe"] for name in host_names})

    order = sorted(
        ((value, party, name) for party in iv for name, value in iv[party].items()),
        key=lambda r: (-r[0], r[1], r[2]),
    )
    ranked = [{"party": party, "feature": name, "iv": value} for value, party, name in order]
    for value, party, name in order:
        ctx.metrics.log(f"iv_{party}_{name}", value)
    ctx.output(
        "model",
        {
            "component": "binning",
            "role": "guest",
            "method": params.method,
            "label": label,
            "id_column": params.id_column,
            "features": ours,
            "host_features": theirs,
            "iv": iv,
        },
    )
    ctx.output("data", transform_table(table, ours, params.transform))
    ctx.output("metrics", {"iv": ranked})
    ctx.progress(1.0, f"IV of {len(ranked)} features")


def _verified_labels(ctx: Context, message: Any, rows: int) -> EncryptedVector:
    """The guest's encrypted labels, once every proof that a label ciphertext encrypts 0 or 1 has verified."""
    if not isinstance(message, dict) or set(message) != {"public_key", "labels", "proofs"}:
        raise BinningRefused(
            "the guest's encrypted labels must come with proofs that each encrypts 0 or 1 "
            "(keys public_key, labels, proofs): refused; the guest needs a fedbench that sends them"
        )
    public = PublicKey.from_dict(message["public_key"])
    labels = EncryptedVector.from_dict(public, message["labels"])
    if len(labels) != rows:
        raise BinningError(f"the guest sent {len(labels)} encrypted labels for our {rows} rows")
    try:
        proofs = BitProofs.from_dict(public, message["proofs"], rows)
        verify_bits(public, labels, proofs, label_proof_context(ctx))
    except BitProofError as exc:
        raise BinningRefused(f"refused the guest's labels, nothing was summed: {exc}") from None
    # Our own bound: each label is 0 or 1, whatever bound the guest declared.
    return EncryptedVector.from_ciphertexts(public, labels.ciphertexts, frac_bits=0, bound=1)


def _check_own_bins(table: pd.DataFrame, features: dict[str, FeatureBins], min_count: int) -> None:
    """Before any sum goes out: every bin of ours, recounted on our own rows, holds at least `min_count` rows."""
    for name, index in apply_bins(table, features).items():
        counts = np.bincount(index, minlength=len(features[name]["counts"]))
        if counts.tolist() != list(features[name]["counts"]) or (
            len(counts) > 1 and counts.min() < min_count
        ):
            raise BinningRefused(
                f"our bins of {name!r} do not each hold at least min_bin_count {min_count} of our {len(table)} rows "
                f"(counts {counts.tolist()}): no per-bin sum is sent"
            )


@binning.role("host")
def host(ctx: Context, params: BinningParams) -> None:
    """Bin our features, sum the guest's encrypted labels per bin, receive our WOE per bin."""
    table = ctx.input("data")
    rows = len(table)
    _exchange_rows(ctx, "guest", rows)
    guest = ctx.peer("guest")
    names = _features(table, {params.id_column})
    ours = _fit_all(ctx, table, names, params)
    ctx.progress(0.2, "waiting for the encrypted labels")
    message = guest.recv("labels")
    labels = _verified_labels(ctx, message, rows)
    _check_own_bins(table, ours, params.min_bin_count)

    ctx.progress(0.4, "summing the encrypted labels per bin")
    widths = [len(ours[name]["counts"]) for name in names]
    onehot = np.zeros((rows, sum(widths)), dtype=np.int64)
    offset = 0
    for name, index in apply_bins(table, ours).items():
        onehot[np.arange(rows), offset + index] = 1
        offset += len(ours[name]["counts"])
    # Fresh randomness before the sums go back: a bare product of the guest's own ciphertexts would let the
    # guest, who made their obfuscators, test which of its rows fall in each of our bins.
    sums = labels.dot(onehot).rerandomize() if names else labels[:0]
    guest.send(
        "sums",
        {"features": names, "counts": [ours[name]["counts"] for name in names], "sums": sums.to_dict()},
    )
    woe = guest.recv("woe")
    if not isinstance(woe, dict) or set(woe) != set(names):
        raise BinningError("the guest's WOE does not name our features")
    for name in names:
        values = [float(v) for v in woe[name]]
        if len(values) != len(ours[name]["counts"]):
            raise BinningError(
                f"the guest's WOE of {name!r} does not fit our {len(ours[name]['counts'])} bins"
            )
        ours[name]["woe"] = values
    ctx.output(
        "model",
        {
            "component": "binning",
            "role": "host",
            "method": params.method,
            "id_column": params.id_column,
            "features": ours,
        },
    )
    ctx.output("data", transform_table(table, ours, params.transform))
    ctx.output("metrics", {"bins": {name: len(ours[name]["counts"]) for name in names}})
    ctx.progress(1.0, f"{len(names)} features binned")
