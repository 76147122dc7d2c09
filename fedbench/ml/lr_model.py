"""A party's part of a vertical logistic-regression model, and the joint scoring both parties run with it.

Each party stores only its own part: its design (features, standardisation), its coefficients per class and,
on the guest, the classes, the intercept and the label. Both parts carry the same random `model_id`, the
project they were trained in and a model card. Scoring: the host sends its partial scores X_h w_h of the
aligned rows to the guest, which adds its own and applies the sigmoid (the guest learns the score of each row,
which is the purpose of scoring; from it and its own part it could work out the host's partial score).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from fedbench.errors import FedbenchError
from fedbench.federation import Context
from fedbench.ml.design import Design, sigmoid

__all__ = [
    "ModelError",
    "align_rows",
    "check_model",
    "guest_probabilities",
    "host_send_scores",
    "model_card",
    "new_model_id",
    "scorecard_points",
    "table_fingerprint",
]


class ModelError(FedbenchError):
    """A model part does not fit this step: another project, another role, another model, unaligned rows."""

    code = "model"


def new_model_id() -> str:
    """A random id both parties' parts of one model share."""
    return secrets.token_hex(8)


def table_fingerprint(table: pd.DataFrame) -> str:
    """A SHA-256 of a table's contents (our data fingerprint in the model card)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    digest.update(",".join(map(str, table.columns)).encode())
    return digest.hexdigest()


def model_card(
    ctx: Context, params: dict[str, Any], protocol: str, fingerprint: str, rows: int, metrics: dict[str, Any]
) -> dict[str, Any]:
    """Who made the model, when, from what data, with which params and protocol, and how it did."""
    return {
        "params": params,
        "protocol": protocol,
        "data_fingerprint": fingerprint,
        "rows": rows,
        "metrics": metrics,
        "created_by": ctx.party,
        "job": ctx.job_id,
        "step": ctx.step,
        "project": ctx.project.get("name"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def check_model(model: Any, role: str, ctx: Context) -> dict[str, Any]:
    """The model part, checked: a hetero_lr model of our role, made in this project."""
    if not isinstance(model, dict) or model.get("component") != "hetero_lr":
        raise ModelError(
            "the model input is not a hetero_lr model; pass the model output of a hetero_lr step"
        )
    if model.get("role") != role:
        raise ModelError(f"the model part is the {model.get('role')}'s, but we play {role}")
    project = ctx.project.get("id")
    if model.get("project") != project:
        raise ModelError(
            "the model was trained in another project and cannot be used in this one; train it in "
            f"project {ctx.project.get('name')!r}"
        )
    return model


def align_rows(
    ctx: Context,
    peer_role: str,
    table: pd.DataFrame,
    id_column: str,
    ids: list[str] | None,
    model_id: str | None,
) -> pd.DataFrame:
    """Our rows in the agreed order: those of `ids` if given, else the table as is, checked to match the peer's.

    The parties compare the row count and a digest of the IDs keyed by the project's key, and the model id.
    """
    if id_column not in table.columns:
        raise ModelError(f"the table has no ID column {id_column!r}; set the param id_column")
    if ids is not None:
        index = pd.Index(table[id_column].astype(str))
        missing = [i for i in ids if i not in index]
        if missing:
            raise ModelError(f"{len(missing)} of the given IDs are not in our table, e.g. {missing[:3]}")
        if not index.is_unique:
            raise ModelError(f"the ID column {id_column!r} has duplicates; deduplicate or run PSI first")
        table = table.set_index(index).loc[list(ids)].reset_index(drop=True)
    digest = hmac.new(ctx.psi_key or b"fedbench", digestmod="sha256")
    for value in table[id_column].astype(str):
        digest.update(value.encode() + b"\0")
    peer = ctx.peer(peer_role)
    mine = {"rows": len(table), "ids": digest.hexdigest(), "model": model_id}
    peer.send("lr.align", mine)
    theirs = peer.recv("lr.align")
    if not isinstance(theirs, dict) or set(theirs) != set(mine):
        raise ModelError(f"the {peer_role}'s alignment message is malformed")
    if theirs["model"] != model_id:
        raise ModelError(
            f"the {peer_role} holds a part of another model; both parties must use the parts of one hetero_lr step"
        )
    fix = "use the outputs of the same PSI or split, or give both parties the same ID list"
    if theirs["rows"] != len(table):
        raise ModelError(
            f"the rows are not aligned: we hold {len(table)} rows, the {peer_role} {theirs['rows']}; {fix}"
        )
    if theirs["ids"] != mine["ids"]:
        raise ModelError(
            f"the rows are not aligned: both hold {len(table)} rows but the IDs or their order differ; {fix}"
        )
    return table


def host_send_scores(ctx: Context, tag: str, design: Design, coef: np.ndarray, table: pd.DataFrame) -> None:
    """Send our partial scores X_h w_h (one column per class) of the aligned rows to the guest."""
    partial = design.matrix(table) @ np.asarray(coef, dtype=np.float64).T
    ctx.peer("guest").send(tag, np.ascontiguousarray(partial, dtype=np.float64))


def guest_probabilities(
    ctx: Context, tag: str, design: Design, coef: np.ndarray, table: pd.DataFrame
) -> np.ndarray:
    """P(class) per row and class (one-vs-rest, or one column for binary) from both parties' partial scores."""
    ours = design.matrix(table) @ np.asarray(coef, dtype=np.float64).T
    theirs = ctx.peer("host").recv(tag)
    theirs = np.asarray(theirs, dtype=np.float64)
    if theirs.shape != ours.shape:
        raise ModelError(f"the host's partial scores have shape {theirs.shape}, ours {ours.shape}")
    return sigmoid(ours + theirs)


def scorecard_points(probability: np.ndarray, base_score: float, base_odds: float, pdo: float) -> np.ndarray:
    """Scorecard points: base_score at good:bad odds of base_odds, pdo more points each time the odds double."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-12, 1 - 1e-12)
    factor = pdo / np.log(2.0)
    offset = base_score - factor * np.log(base_odds)
    return offset + factor * np.log((1.0 - p) / p)
