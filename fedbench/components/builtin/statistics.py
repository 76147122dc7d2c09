"""`statistics`: each party's summary of its own features, and a federated guest-by-host Pearson correlation.

Summaries (count, missing rate, mean, std, min, max, quantiles, distinct values) are computed by each party on
its own table and stay there. The correlation uses Paillier: the guest sends its standardised features
encrypted (several features packed in one ciphertext per row) with its public key; the host multiplies them
homomorphically by its own standardised features (`EncryptedVector.dot`), re-randomises the sums and returns
them; only the guest decrypts, and only the sums. The guest learns the correlation matrix; the host learns
nothing beyond the guest's row count, feature count and key (see docs/protocols/statistics.md). The host
bounds, from its own numbers, how many of its values the returned sums could carry (a guest running modified
code chooses its plaintexts freely), and refuses unless that leaves at least two rows more.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.columns import find_label
from fedbench.components.spec import Component, Port, register
from fedbench.crypto.paillier import EncryptedVector, PrivateKey, PublicKey, generate_keypair
from fedbench.errors import FedbenchError, Refused
from fedbench.federation import Context, PeerHandle

__all__ = [
    "FRAC_BITS",
    "StatisticsError",
    "StatisticsParams",
    "StatisticsRefused",
    "carried_values",
    "default_label",
    "feature_columns",
    "standardise",
    "statistics",
    "summarise",
]

FRAC_BITS = 20
"""Fixed-point bits of each standardised value in the correlation protocol (error about 1e-7 on a cell)."""

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class StatisticsError(FedbenchError):
    """The parties' tables do not align, or a message of the correlation protocol does not fit."""

    code = "statistics"


class StatisticsRefused(StatisticsError, Refused):
    """The host refuses the guest's encrypted vectors: their sums could carry too many of the host's values."""

    code = "refused"


class StatisticsParams(BaseModel):
    """Parameters of `statistics`."""

    model_config = {"extra": "forbid"}

    correlation: bool = Field(
        default=True,
        description="compute the guest-by-host Pearson correlation (Paillier; the guest learns it)",
    )
    key_bits: int = Field(
        default=2048,
        ge=1024,
        le=4096,
        description="Paillier key size in bits (an odd size is rounded up to the next even one)",
    )
    label: str | None = Field(
        default=None,
        description="the guest's label column, left out of its features; none: 'default' or 'y' if present",
    )
    id_column: str = Field(default="id", description="the ID column, left out of the features on every party")


statistics = register(
    Component(
        name="statistics",
        version="1",
        params=StatisticsParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table", "each party's rows, aligned (e.g. by PSI)"),),
        outputs=(
            Port(
                "metrics",
                "metrics",
                "a summary of our own features; on the guest also the guest-by-host correlation matrix",
            ),
        ),
        description="Summarise each party's features and correlate guest with host features under encryption.",
    )
)


def default_label(table: pd.DataFrame, label: str | None) -> str | None:
    """The label column: `label` if given (it must exist), else 'default' or 'y' when the table has one."""
    return find_label(table, label, StatisticsError)


def feature_columns(table: pd.DataFrame, exclude: list[str | None]) -> list[str]:
    """Every column except the ID and label columns, in table order."""
    return [str(c) for c in table.columns if c not in exclude]


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def summarise(table: pd.DataFrame, features: list[str]) -> dict[str, dict[str, Any]]:
    """Per feature: count, missing rate, mean, std, min, max, quantiles 5/25/50/75/95, distinct values."""
    rows = len(table)
    summary: dict[str, dict[str, Any]] = {}
    for name in features:
        column = table[name]
        count = int(column.notna().sum())
        entry: dict[str, Any] = {
            "count": count,
            "missing_rate": (rows - count) / rows if rows else 0.0,
            "unique": int(column.nunique(dropna=True)),
        }
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        values = column.astype(float) if numeric else None
        for stat in ("mean", "std", "min", "max"):
            entry[stat] = _number(getattr(values, stat)()) if values is not None and count else None
        for q in _QUANTILES:
            key = f"q{round(q * 100):02d}"
            entry[key] = _number(values.quantile(q)) if values is not None and count else None
        summary[name] = entry
    return summary


def _numeric(table: pd.DataFrame, features: list[str]) -> list[str]:
    return [
        name
        for name in features
        if pd.api.types.is_numeric_dtype(table[name]) and not pd.api.types.is_bool_dtype(table[name])
    ]


def standardise(table: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, list[bool]]:
    """Columns to mean 0, std 1 (ddof 1) over their present values, missing then 0; and which are usable.

    A column with fewer than two values or no spread is all zeros and not usable (its correlations are none).
    """
    z = np.zeros((len(table), len(features)), dtype=np.float64)
    usable = []
    for j, name in enumerate(features):
        values = table[name].astype(float)
        std = values.std()
        ok = bool(values.notna().sum() >= 2 and np.isfinite(std) and std > 0)
        if ok:
            z[:, j] = ((values - values.mean()) / std).fillna(0.0).to_numpy()
        usable.append(ok)
    return z, usable


def _quantise(z: np.ndarray) -> np.ndarray:
    return np.rint(z * float(1 << FRAC_BITS)).astype(np.int64)


def _slot_bits(rows: int, guest_max: int) -> int:
    """Bits per packed slot so that any sum over rows of guest value x host value fits, with its sign."""
    host_column = rows * (math.isqrt(max(rows - 1, 0) << (2 * FRAC_BITS)) + 2)
    return (max(guest_max, 1) * host_column).bit_length() + 2


def _pack(q: np.ndarray, width: int) -> list[int]:
    """One integer per row: sum_j q[i, j] * 2^(width j) (signed slots)."""
    packed = [0] * q.shape[0]
    for j in reversed(range(q.shape[1])):
        column = q[:, j].tolist()
        packed = [(m << width) + v for m, v in zip(packed, column, strict=True)]
    return packed


def _unpack(value: int, width: int, slots: int) -> list[int]:
    """The signed slots of a packed integer, lowest first."""
    out = []
    half, full = 1 << (width - 1), 1 << width
    for _ in range(slots):
        residue = value % full
        if residue >= half:
            residue -= full
        out.append(residue)
        value = (value - residue) >> width
    return out


def _check_rows(own: int, peer: int, peer_role: str) -> None:
    if own != peer:
        raise StatisticsError(
            f"the parties' tables are not aligned: we hold {own} rows, the {peer_role} {peer}; "
            "use the outputs of the same PSI"
        )


def _correlation_guest(
    ctx: Context, params: StatisticsParams, table: pd.DataFrame, features: list[str], host: dict[str, Any]
) -> dict[str, Any]:
    peer = ctx.peer("host")
    rows = len(table)
    host_names = [str(n) for n in host["features"]]
    names = _numeric(table, features)
    if rows <= len(names) + 1:
        raise StatisticsError(
            f"{rows} rows for {len(names)} guest features: a correlation needs more rows than features"
        )
    z, usable = standardise(table, names)
    q = _quantise(z)
    key_bits = params.key_bits + params.key_bits % 2
    public, private = generate_keypair(bits=key_bits)
    width = _slot_bits(rows, int(np.abs(q).max(initial=0)))
    per_ciphertext = max(1, (key_bits - 4) // width)
    groups = [
        list(range(i, min(i + per_ciphertext, len(names)))) for i in range(0, len(names), per_ciphertext)
    ]
    if not host_names:
        groups = []
    vectors = []
    for number, group in enumerate(groups):
        ctx.check_cancelled()
        vectors.append(private.encrypt_encoded(_pack(q[:, group], width), 0).to_dict())
        ctx.progress(0.1 + 0.5 * (number + 1) / len(groups), "encrypting our standardised features")
    sums = exchange_encrypted_for_sums(peer, public, vectors)
    if len(sums) != len(groups):
        raise StatisticsError(f"the host returned {type(sums).__name__} instead of {len(groups)} vectors")
    matrix: list[list[float | None]] = [[None] * len(host_names) for _ in names]
    host_usable = [bool(u) for u in host["usable"]]
    for group, payload in zip(groups, sums, strict=True):
        vector = EncryptedVector.from_dict(public, payload)
        if len(vector) != len(host_names):
            raise StatisticsError(f"the host returned {len(vector)} sums for {len(host_names)} features")
        for h, value in enumerate(_decrypt(private, vector)):
            for g, total in zip(group, _unpack(value, width, len(group)), strict=True):
                if usable[g] and host_usable[h]:
                    matrix[g][h] = total / float(1 << (2 * FRAC_BITS)) / (rows - 1)
    return {"guest_features": names, "host_features": host_names, "matrix": matrix}


def _decrypt(private: PrivateKey, vector: EncryptedVector) -> list[int]:
    return [int(v) for v in private.decrypt_encoded(vector)]


def carried_values(key_bits: int, vectors: int, q: np.ndarray) -> int:
    """How many of our quantised values (`q`) the guest could read from each host feature's returned sums.

    Each sum is one plaintext of about `key_bits` bits, a combination of our column with coefficients the
    guest chose; laid out in slots as wide as our values' range, one sum holds key_bits // that width of them.
    """
    width = (2 * int(np.abs(q).max(initial=0)) + 1).bit_length()
    return vectors * (key_bits // width)


def _correlation_host(ctx: Context, table: pd.DataFrame, names: list[str]) -> None:
    peer = ctx.peer("guest")
    message = peer.recv("encrypted", dict)
    if set(message) != {"public_key", "vectors"}:
        raise StatisticsError("the guest's encrypted features are not in the expected form")
    if not isinstance(message["vectors"], list):
        raise StatisticsError("the guest's encrypted features must be a list of vectors")
    public = PublicKey.from_dict(message["public_key"])
    z, _ = standardise(table, names)
    q = _quantise(z)
    carried = carried_values(public.n_bits, len(message["vectors"]), q)
    if names and carried > len(table) - 2:
        raise StatisticsRefused(
            f"the guest sent {len(message['vectors'])} encrypted vectors under a {public.n_bits}-bit key: the "
            f"sums we would return could carry {carried} of our values per feature, and we hold {len(table)} "
            "rows; a correlation must leave at least 2 rows more than that. Refused: correlate fewer guest "
            "features, or use more rows"
        )
    sums = []
    for number, payload in enumerate(message["vectors"]):
        ctx.check_cancelled()
        vector = EncryptedVector.from_dict(public, payload)
        if len(vector) != len(table):
            raise StatisticsError(f"the guest sent {len(vector)} encrypted rows for our {len(table)}")
        sums.append(vector.dot(q).rerandomize().to_dict())
        ctx.progress(0.2 + 0.7 * (number + 1) / len(message["vectors"]), "multiplying under encryption")
    peer.send("sums", sums)


def exchange_encrypted_for_sums(peer: PeerHandle, public: PublicKey, vectors: list[Any]) -> list[Any]:
    """The guest's side of the correlation exchange: our key and encrypted packed columns (`encrypted`) go
    to the host, its encrypted sums per group (`sums`, a list) come back."""
    peer.send("encrypted", {"public_key": public.to_dict(), "vectors": vectors})
    return peer.recv("sums", list)


def exchange_rows_for_features(peer: PeerHandle, rows: int) -> dict[str, Any]:
    """The guest's side of the opening exchange: our row count (`rows`) for the host's feature list
    (`features`: its rows, feature names and which of them vary)."""
    peer.send("rows", rows)
    host = peer.recv("features", dict)
    if set(host) != {"rows", "features", "usable"}:
        raise StatisticsError("the host's feature list is not in the expected form")
    return host


def exchange_features_for_rows(peer: PeerHandle, rows: int, names: list[str], usable: list[bool]) -> int:
    """The host's side of the opening exchange: our feature list (`features`) for the guest's row count."""
    peer.send("features", {"rows": rows, "features": names, "usable": usable})
    return peer.recv("rows", int)


@statistics.role("guest")
def guest(ctx: Context, params: StatisticsParams) -> None:
    """Summarise our features; with `correlation`, run the encrypted correlation and learn the matrix."""
    table = ctx.input("data")
    label = default_label(table, params.label)
    features = feature_columns(table, [params.id_column, label])
    host = exchange_rows_for_features(ctx.peer("host"), len(table))
    _check_rows(len(table), int(host["rows"]), "host")
    result: dict[str, Any] = {"rows": len(table), "label": label, "features": summarise(table, features)}
    ctx.progress(0.1, f"summarised {len(features)} features")
    if params.correlation:
        result["correlation"] = _correlation_guest(ctx, params, table, features, host)
    ctx.metrics.log("features", float(len(features)))
    ctx.output("metrics", result)
    ctx.progress(1.0, "statistics done")


@statistics.role("host")
def host(ctx: Context, params: StatisticsParams) -> None:
    """Summarise our features; with `correlation`, multiply the guest's ciphertexts by ours and return them."""
    table = ctx.input("data")
    features = feature_columns(table, [params.id_column])
    names = _numeric(table, features)
    _, usable = standardise(table, names)
    guest_rows = exchange_features_for_rows(ctx.peer("guest"), len(table), names, usable)
    _check_rows(len(table), guest_rows, "guest")
    ctx.progress(0.1, f"summarised {len(features)} features")
    if params.correlation:
        _correlation_host(ctx, table, names)
    ctx.metrics.log("features", float(len(features)))
    ctx.output("metrics", {"rows": len(table), "features": summarise(table, features)})
    ctx.progress(1.0, "statistics done")
