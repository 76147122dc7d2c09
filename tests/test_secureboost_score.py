"""`score` with a `hetero_secureboost` model, in process: the federated walk gives the plaintext booster's
predictions on the joined rows (binary, regression, and multiclass parts cut from a plaintext booster), one
exchange per tree level; the host answers only at splits it recorded, for rows in range and released, and a
scorecard is refused for trees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedbench.components import RecordedMessage, RoleFailed, simulate
from fedbench.components.builtin.score import ScoreParams, score
from fedbench.components.spec import Component, Port
from fedbench.datasets import make_credit, vertical_split
from fedbench.datasets.credit import HOST_FEATURES
from fedbench.errors import Refused
from fedbench.federation import Context
from fedbench.ml.lr_model import ModelError, align_rows
from fedbench.ml.secureboost import SecureBoostError
from fedbench.ml.secureboost.predict import SIDES, WALK, GuestPart
from fedbench.ml.trees import Booster
from fedbench.ml.trees.objectives import sigmoid

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

BINARY = {"trees": 3, "max_depth": 3, "bins": 16, "learning_rate": 0.3, "seed": 2}
REGRESSION = {"objective": "regression", "trees": 3, "max_depth": 2, "bins": 8, "learning_rate": 0.5}


def _aligned(guest: pd.DataFrame, host: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    common = guest[guest["id"].isin(set(host["id"]))].reset_index(drop=True)
    return common, host.set_index("id").loc[common["id"]].reset_index()


def _joined(guest: pd.DataFrame, host: pd.DataFrame, label: str) -> np.ndarray:
    """The joined rows as the plaintext booster sees them: the guest's features first, then the host's."""
    return np.hstack(
        [guest.drop(columns=["id", label]).to_numpy(float), host.drop(columns=["id"]).to_numpy(float)]
    )


def _train(guest: pd.DataFrame, host: pd.DataFrame, label: str, params: dict[str, Any]) -> dict[str, Any]:
    return simulate(
        "hetero_secureboost", {"guest": guest, "host": host}, label=label, key_bits=1024, **params
    )


def _score(models: dict[str, Any], guest: pd.DataFrame, host: pd.DataFrame, **params: Any) -> Any:
    return simulate(
        "score",
        {
            "guest": {"model": models["guest"]["model"], "data": guest},
            "host": {"model": models["host"]["model"], "data": host},
        },
        **params,
    )


@pytest.fixture(scope="module")
def credit() -> dict[str, Any]:
    """Credit rows split vertically (missing values on both sides): 400 to train on, 200 new ones to score."""
    guest, host = _aligned(
        *vertical_split(make_credit(600, seed=5), host_features=HOST_FEATURES, overlap=1.0)
    )
    assert host.drop(columns=["id"]).isna().any().any(), "the host's new rows have missing values"
    train, new = slice(0, 400), slice(400, 600)
    parts = {
        "train": (guest[train], host[train]),
        "new": (guest[new].reset_index(drop=True), host[new].reset_index(drop=True)),
    }
    return {"parts": parts, "models": _train(*parts["train"], "default", BINARY)}


@pytest.fixture(scope="module")
def numbers() -> dict[str, Any]:
    """A regression target over both parties' features: 200 rows to train on, 100 new ones."""
    rng = np.random.default_rng(11)
    n = 300
    a, b = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    b[rng.random(n) < 0.1, 0] = np.nan
    target = np.sin(a[:, 0]) + np.nan_to_num(b[:, 0]) ** 2 + 0.3 * rng.normal(size=n)
    ids = [f"r{i}" for i in range(n)]
    guest = pd.DataFrame({"id": ids, "y": target, "a0": a[:, 0], "a1": a[:, 1]})
    host = pd.DataFrame({"id": ids, "b0": b[:, 0], "b1": b[:, 1]})
    train, new = slice(0, 200), slice(200, n)
    parts = {
        "train": (guest[train], host[train]),
        "new": (guest[new].reset_index(drop=True), host[new].reset_index(drop=True)),
    }
    return {"parts": parts, "models": _train(*parts["train"], "y", REGRESSION)}


def test_binary_scores_are_the_plaintext_boosters_on_the_joined_rows_one_walk_per_level(credit):
    (guest_train, host_train), (guest_new, host_new) = credit["parts"]["train"], credit["parts"]["new"]
    booster = Booster(BINARY).fit(_joined(guest_train, host_train, "default"), guest_train["default"])
    record: list[RecordedMessage] = []
    outputs = simulate(
        "score",
        {
            "guest": {"model": credit["models"]["guest"]["model"], "data": guest_new},
            "host": {"model": credit["models"]["host"]["model"], "data": host_new},
        },
        record=record,
    )
    scores = outputs["guest"]["scores"]
    margin = booster.predict_margin(_joined(guest_new, host_new, "default"))
    assert list(scores.columns) == ["id", "y", "score", "pred"]
    assert scores["id"].tolist() == guest_new["id"].tolist()
    np.testing.assert_allclose(scores["score"], sigmoid(margin), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(scores["pred"], (sigmoid(margin) >= 0.5).astype(int))
    assert outputs["host"]["scores"]["id"].tolist() == host_new["id"].tolist()
    assert outputs["guest"]["metrics"]["rows"] == len(guest_new) == outputs["host"]["metrics"]["rows"]

    to_host = [m for m in record if m.receiver == "host"]
    assert {m.tag for m in to_host} == {"lr.align", WALK}
    walks = [m.payload for m in to_host if m.tag == WALK and m.payload["op"] == "walk"]
    assert 1 <= len(walks) <= BINARY["max_depth"], "one walk per tree level, for every tree and row at once"
    assert len({int(s[0]) for w in walks for s in w["splits"]}) > 1, "one walk serves several trees"
    assert [m.payload for m in to_host if m.tag == WALK][-1] == {"op": "end"}
    recorded = {
        (s["tree"], s.get("class", 0), s["node"]) for s in credit["models"]["host"]["model"]["splits"]
    }
    assert {tuple(int(v) for v in s) for w in walks for s in w["splits"]} <= recorded


def test_regression_scores_are_the_plaintext_boosters_values(numbers):
    (guest_train, host_train), (guest_new, host_new) = numbers["parts"]["train"], numbers["parts"]["new"]
    booster = Booster(REGRESSION).fit(_joined(guest_train, host_train, "y"), guest_train["y"])
    assert numbers["models"]["host"]["model"]["splits"], "the host's features take part"
    outputs = _score(numbers["models"], guest_new, host_new)
    scores = outputs["guest"]["scores"]
    assert list(scores.columns) == ["id", "y", "score"]
    expected = booster.predict_margin(_joined(guest_new, host_new, "y"))
    np.testing.assert_allclose(scores["score"], expected, rtol=0, atol=1e-9)
    assert "predicted_positive_rate" not in outputs["guest"]["metrics"]
    assert outputs["guest"]["metrics"]["score_quantiles"]["median"] == pytest.approx(np.median(expected))


def test_a_scorecard_with_a_tree_model_is_refused_with_the_fix(credit):
    guest_new, host_new = credit["parts"]["new"]
    with pytest.raises(RoleFailed) as failed:
        _score(credit["models"], guest_new, host_new, scorecard=True)
    for error in failed.value.errors.values():
        assert isinstance(error, ModelError) and "set scorecard to false" in str(error)


def test_the_host_scores_only_released_rows_with_a_tree_model(credit):
    guest_new, host_new = credit["parts"]["new"]
    with pytest.raises(RoleFailed) as failed:
        _score(credit["models"], guest_new, host_new, ids=["C9999999", *guest_new["id"][:3]])
    error = failed.value.errors["host"]
    assert isinstance(error, Refused) and "1 of the 4 given IDs were not released" in str(error)


def test_parts_of_two_models_are_refused(credit, numbers):
    guest_new, host_new = credit["parts"]["new"]
    mixed = {"guest": credit["models"]["guest"], "host": {"model": dict(credit["models"]["host"]["model"])}}
    mixed["host"]["model"]["model_id"] = numbers["models"]["host"]["model"]["model_id"]
    with pytest.raises(RoleFailed) as failed:
        _score(mixed, guest_new, host_new)
    assert any(isinstance(e, ModelError) and "another model" in str(e) for e in failed.value.errors.values())


# A guest that leaves the protocol: the real `score` host against a guest role that sends forged walks.
rogue = Component(
    name="rogue_score",
    version="1",
    params=ScoreParams,
    roles=("guest", "host"),
    use="score",
    inputs=(Port("model", "model", "model part"), Port("data", "table", "rows")),
    outputs=score.outputs,
)
rogue.role("host")(score.functions["host"])
FORGED: dict[str, Any] = {}


@rogue.role("guest")
def _forging_guest(ctx: Context, params: ScoreParams) -> None:
    model, table = ctx.input("model"), ctx.input("data")
    align_rows(ctx, "host", table, model["id_column"], None, model["model_id"])
    host = ctx.peer("host")
    for command in FORGED["walks"]:
        host.channel(WALK).send(command)
        host.channel(SIDES).recv()
    host.channel(WALK).send({"op": "end"})


def _walk(splits: list[tuple[int, int, int]], rows: list[list[int]]) -> dict[str, Any]:
    return {
        "op": "walk",
        "splits": np.asarray(splits, dtype=np.int64).reshape(-1, 3),
        "counts": np.asarray([len(r) for r in rows], dtype=np.int64),
        "rows": np.asarray([i for r in rows for i in r], dtype=np.int64),
    }


def _forged(credit: dict[str, Any], walks: list[dict[str, Any]]) -> BaseException:
    guest_new, host_new = credit["parts"]["new"]
    FORGED["walks"] = walks
    with pytest.raises(RoleFailed) as failed:
        simulate(
            rogue,
            {
                "guest": {"model": credit["models"]["guest"]["model"], "data": guest_new},
                "host": {"model": credit["models"]["host"]["model"], "data": host_new},
            },
        )
    return failed.value.errors["host"]


def test_the_host_refuses_walks_at_splits_it_never_recorded_or_of_rows_out_of_range(credit):
    splits = credit["models"]["host"]["model"]["splits"]
    known = (splits[0]["tree"], 0, splits[0]["node"])
    never = (known[0], 0, 10_000)
    rows = len(credit["parts"]["new"][1])

    error = _forged(credit, [_walk([never], [[0, 1]])])
    assert isinstance(error, SecureBoostError) and "not one of the splits of our part" in str(error)
    error = _forged(credit, [_walk([known], [[0, rows]])])
    assert isinstance(error, SecureBoostError) and f"outside the {rows} rows" in str(error)
    error = _forged(credit, [_walk([known], [[3, 3]])])
    assert isinstance(error, SecureBoostError) and "names a row twice in one tree" in str(error)
    error = _forged(credit, [_walk([known], [[0]])] * (BINARY["max_depth"] + 1))
    assert isinstance(error, SecureBoostError) and "at most 3 levels deep" in str(error)
    honest = GuestPart.from_model(credit["models"]["guest"]["model"])
    assert honest.trees and honest.objective == "binary"


def _parts_of(booster: Booster, guest_names: list[str], host_names: list[str], label: str) -> dict[str, Any]:
    """A plaintext booster cut into the two parts `hetero_secureboost` writes: the guest's trees and binner of
    its own features, the host's thresholds by (round, class, node) for the splits on its features."""
    whole = booster.to_dict()
    ours = len(guest_names)
    binner = {"bins": whole["binner"]["bins"], "edges": whole["binner"]["edges"][:ours]}
    common = {"component": "hetero_secureboost", "project": "simulation", "model_id": "m1", "id_column": "id"}
    guest = {
        **common,
        "role": "guest",
        "label": label,
        "objective": booster.params.objective,
        "classes": ["a", "b", "c"],
        "feature_names": [*guest_names, *(f"host:{i}" for i in range(len(host_names)))],
        "guest_features": ours,
        "binner": binner,
        "base_margin": whole["base_margin"],
        "trees": whole["trees"],
    }
    splits = [
        {
            "tree": r,
            "class": k,
            "node": node,
            "feature": host_names[f - ours],
            "threshold": booster.binner.threshold(f, tree.bin[node]),
            "default_left": bool(tree.default_left[node]),
        }
        for r, trees in enumerate(booster.trees)
        for k, tree in enumerate(trees)
        for node, f in enumerate(tree.feature.tolist())
        if f >= ours
    ]
    host = {
        **common,
        "role": "host",
        "features": host_names,
        "splits": splits,
        "card": {"params": booster.params.model_dump()},
    }
    return {"guest": {"model": guest}, "host": {"model": host}}


def test_multiclass_parts_walk_k_trees_a_round_and_give_the_boosters_softmax():
    """K trees per round, the host's splits named by (round, class, node), softmax over the K margins."""
    rng = np.random.default_rng(3)
    n = 300
    a, b = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    b[rng.random(n) < 0.1, 1] = np.nan
    y = np.digitize(a[:, 0] + np.nan_to_num(b[:, 1]), [-0.5, 0.5])
    guest = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "y": np.asarray(["a", "b", "c"])[y]})
    guest[["a0", "a1"]] = a
    host = pd.DataFrame({"id": guest["id"], "b0": b[:, 0], "b1": b[:, 1]})
    params = {"objective": "multiclass", "num_class": 3, "trees": 3, "max_depth": 3, "bins": 8}
    booster = Booster(params).fit(np.hstack([a, b])[:200], y[:200])
    models = _parts_of(booster, ["a0", "a1"], ["b0", "b1"], "y")
    assert any(s["class"] > 0 for s in models["host"]["model"]["splits"]), "host splits in several classes"
    outputs = _score(models, guest[200:].reset_index(drop=True), host[200:].reset_index(drop=True))
    scores = outputs["guest"]["scores"]
    expected = booster.predict(np.hstack([a, b])[200:])
    assert list(scores.columns) == ["id", "y", "score_a", "score_b", "score_c", "pred"]
    np.testing.assert_allclose(scores[["score_a", "score_b", "score_c"]], expected, rtol=0, atol=1e-9)
    assert scores["pred"].tolist() == np.asarray(["a", "b", "c"])[expected.argmax(axis=1)].tolist()


def test_a_trained_multiclass_model_scores_as_the_boosters_softmax():
    """A model `hetero_secureboost` trained on three text classes scores new rows as its plaintext booster."""
    rng = np.random.default_rng(8)
    n = 300
    a, b = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    b[rng.random(n) < 0.1, 0] = np.nan
    y = np.digitize(a[:, 1] + np.nan_to_num(b[:, 0]), [-0.6, 0.6])
    guest = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "y": np.asarray(["lo", "mid", "hi"])[y]})
    guest[["a0", "a1"]] = a
    host = pd.DataFrame({"id": guest["id"], "b0": b[:, 0], "b1": b[:, 1]})
    params = {"objective": "multiclass", "trees": 3, "max_depth": 2, "bins": 8, "learning_rate": 0.5}
    models = _train(guest[:200], host[:200], "y", params)
    model = models["guest"]["model"]
    classes = model["classes"]
    assert sorted(classes) == ["hi", "lo", "mid"] and len(model["trees"][0]) == 3
    codes = np.asarray([classes.index(v) for v in guest["y"][:200]])
    booster = Booster({**params, "num_class": 3}).fit(np.hstack([a, b])[:200], codes)
    outputs = _score(models, guest[200:].reset_index(drop=True), host[200:].reset_index(drop=True))
    scores = outputs["guest"]["scores"]
    expected = booster.predict(np.hstack([a, b])[200:])
    columns = [f"score_{c}" for c in classes]
    np.testing.assert_allclose(scores[columns], expected, rtol=0, atol=1e-6)
    assert scores["pred"].tolist() == np.asarray(classes)[expected.argmax(axis=1)].tolist()
