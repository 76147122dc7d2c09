"""`hetero_secureboost` in process: the federated trees are the plaintext booster's trees on the joined rows, the
host receives only ciphertexts, its key-free requests and row positions, and every ciphertext it returns is
rerandomized with its own randomness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedbench.components import RecordedMessage, RoleFailed, simulate, simulated_private_rng
from fedbench.components.builtin.hetero_secureboost import ROW_DRAWS
from fedbench.components.builtin.split import SplitParams, assign_by_id
from fedbench.crypto.paillier import EncryptedVector, PublicKey
from fedbench.datasets import breast_cancer_vertical, credit_vertical, make_credit, vertical_split
from fedbench.datasets.credit import HOST_FEATURES
from fedbench.ml.health import check_trees
from fedbench.ml.secureboost import SecureBoostError
from fedbench.ml.secureboost.host import bin_sums, pack_sums
from fedbench.ml.trees import Binner, Booster
from fedbench.ml.trees.sampling import round_rows

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

KEY = {"key_bits": 1024}


def _aligned(guest: pd.DataFrame, host: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two parties' rows of the IDs both hold, in the guest's order (what PSI would give)."""
    common = guest[guest["id"].isin(set(host["id"]))].reset_index(drop=True)
    return common, host.set_index("id").loc[common["id"]].reset_index()


def _plain(guest: pd.DataFrame, host: pd.DataFrame, label: str, params: dict[str, Any]) -> Booster:
    """The plaintext booster on the joined rows: the guest's features first, then the host's."""
    xg = guest.drop(columns=["id", label])
    x = np.hstack([xg.to_numpy(float), host.drop(columns=["id"]).to_numpy(float)])
    booster = Booster(params, row_seed=_guest_row_seed(params))
    return booster.fit(x, guest[label].to_numpy(float), guest_features=range(xg.shape[1]))


def _guest_row_seed(params: dict[str, Any]) -> int:
    """The row draws' seed the simulated guest derives from the public seed with its own key."""
    return int(simulated_private_rng("guest", ROW_DRAWS, params.get("seed", 0)).integers(1 << 62))


def _assert_same_trees(model: dict[str, Any], booster: Booster) -> None:
    trees = model["trees"]
    assert len(trees) == len(booster.trees)
    for ours, theirs in zip(trees, booster.trees, strict=True):
        a, b = ours[0], theirs[0].to_dict()
        for field in ("feature", "bin", "default_left", "left", "right", "count"):
            assert a[field] == b[field], field
        np.testing.assert_allclose(a["value"], b["value"], atol=1e-6)


def _run(guest, host, label, params, record=None):
    outputs = simulate(
        "hetero_secureboost", {"guest": guest, "host": host}, record=record, label=label, **KEY, **params
    )
    return outputs


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _aligned(*breast_cancer_vertical())


@pytest.fixture(scope="module")
def cancer_run(cancer) -> tuple[dict[str, Any], list[RecordedMessage], dict[str, Any]]:
    """One simulated training on breast cancer, its recorded messages and its params (shared by the tests)."""
    params = {"trees": 3, "max_depth": 3, "bins": 16, "learning_rate": 0.3, "complete_secure": True}
    record: list[RecordedMessage] = []
    outputs = _run(*cancer, "y", params, record)
    return outputs, record, params


def test_same_trees_as_the_plaintext_booster_on_breast_cancer(cancer, cancer_run):
    guest, host = cancer
    outputs, _, params = cancer_run
    booster = _plain(guest, host, "y", params)
    model = outputs["guest"]["model"]
    _assert_same_trees(model, booster)
    guest_features = guest.shape[1] - 2
    used = {f for trees in model["trees"] for f in trees[0]["feature"] if f >= 0}
    assert any(f >= guest_features for f in used), "some split is on a host feature"
    assert all(f < guest_features for f in model["trees"][0][0]["feature"]), "complete_secure: guest only"
    x = np.hstack(
        [guest.drop(columns=["id", "y"]).to_numpy(float), host.drop(columns=["id"]).to_numpy(float)]
    )
    np.testing.assert_allclose(outputs["guest"]["scores"]["score"], booster.predict(x), atol=1e-6)
    host_model = outputs["host"]["model"]
    assert host_model["model_id"] == model["model_id"]
    assert "trees" not in host_model and "label" not in host_model
    host_splits = {(s["tree"], s["node"]) for s in host_model["splits"]}
    expected = {
        (t, node)
        for t, trees in enumerate(model["trees"])
        for node, f in enumerate(trees[0]["feature"])
        if f >= guest_features
    }
    assert host_splits == expected
    binner = Binner.fit(host.drop(columns=["id"]).to_numpy(float), params["bins"])
    names = list(host.columns.drop("id"))
    for s in host_model["splits"]:
        joined = model["trees"][s["tree"]][0]
        f = joined["feature"][s["node"]] - guest_features
        assert s["feature"] == names[f]
        assert s["threshold"] == binner.threshold(f, joined["bin"][s["node"]])
    assert all(name.startswith("host:") for name in model["feature_names"][guest_features:])
    assert len(outputs["guest"]["metrics"]["train_loss"]) == params["trees"]
    assert outputs["guest"]["metrics"]["train_auc"] > 0.95


def test_same_trees_on_credit_with_missing_values_and_sampling():
    guest, host = _aligned(*vertical_split(make_credit(1500), host_features=HOST_FEATURES, overlap=1.0))
    assert host.drop(columns=["id"]).isna().any().any(), "the host's features have missing values"
    params = {"trees": 3, "max_depth": 3, "bins": 16, "subsample": 0.8, "colsample": 0.8, "seed": 3}
    outputs = _run(guest, host, "default", params)
    booster = _plain(guest, host, "default", params)
    _assert_same_trees(outputs["guest"]["model"], booster)
    x = np.hstack(
        [guest.drop(columns=["id", "default"]).to_numpy(float), host.drop(columns=["id"]).to_numpy(float)]
    )
    np.testing.assert_allclose(outputs["guest"]["scores"]["score"], booster.predict(x), atol=1e-6)
    splits = outputs["host"]["model"]["splits"]
    assert any(s["default_left"] for s in splits) or any(np.isnan(host[s["feature"]]).any() for s in splits)


@pytest.mark.parametrize("draw", [11, 28])
def test_same_trees_when_two_features_cut_a_node_alike(draw):
    """The training rows of the sandbox's demo credit table under two of the split's draws: in each, a host
    feature cuts some node's rows exactly as a lower feature does. The host's fixed-point sums put its gain
    about 1e-11 away from the other's; the tie must still go to the lower feature, as in the plaintext booster."""
    guest, host = _aligned(*credit_vertical(1500))
    params = SplitParams(validation=0.2, test=0.2, stratify=True, label="default")
    train = assign_by_id(guest, params, guest["default"], np.random.default_rng(draw)) == 0
    guest, host = guest[train].reset_index(drop=True), host[train].reset_index(drop=True)
    trees = {"trees": 3, "max_depth": 3, "bins": 16, "learning_rate": 0.3}
    _assert_same_trees(
        _run(guest, host, "default", trees)["guest"]["model"], _plain(guest, host, "default", trees)
    )


def _arrays(payload: Any) -> list[np.ndarray]:
    if isinstance(payload, np.ndarray):
        return [payload]
    if isinstance(payload, dict):
        return [a for v in payload.values() for a in _arrays(v)]
    if isinstance(payload, (list, tuple)):
        return [a for v in payload for a in _arrays(v)]
    return []


def test_the_host_receives_only_ciphertexts_the_key_and_requests_on_its_own_features(cancer, cancer_run):
    guest, host = cancer
    outputs, record, params = cancer_run
    received = [m for m in record if m.receiver == "host"]
    tags = {m.tag for m in received}
    assert tags <= {"sb.model_id", "lr.align", "sb.key", "sb.tree", "sb.has_validation", "sb.finish"}, tags
    assert [m.payload for m in received if m.tag == "sb.finish"] == [True], "one bare 'keep your part'"
    keys = [m.payload for m in received if m.tag == "sb.key"]
    assert len(keys) == 1 and set(keys[0]) == {"n", "g", "precision_bits", "proof"}
    public = PublicKey.from_dict(keys[0])
    labels = guest["y"].to_numpy()
    host_features = host.shape[1] - 1
    binner = Binner.fit(host.drop(columns=["id"]).to_numpy(float), params["bins"])
    starts = splits = 0
    for message in received:
        for array in _arrays(message.payload):
            assert array.dtype.kind in "iub", f"{message.tag} carries a {array.dtype} array"
            assert not (len(array) == len(labels) and np.array_equal(array, labels)), "labels in the clear"
        if message.tag != "sb.tree":
            continue
        command = message.payload
        if command["op"] == "start" and command.get("gh") is not None:
            starts += 1
            gh = EncryptedVector.from_dict(public, command["gh"])
            assert len(gh) == len(command["rows"])
            assert set(command) == {"op", "rows", "gh", "layout", "features"}
            assert set(command["layout"]) == {"count_bits", "hess_bits", "grad_bits"}
        if command["op"] == "split":
            for request in command["splits"]:
                splits += 1
                assert set(request) == {"node", "feature", "bin", "default_left", "rows"}
                assert 0 <= request["feature"] < host_features
                assert 0 <= request["bin"] < binner.bin_counts[request["feature"]]
    assert starts == params["trees"] - 1, "complete_secure: the first tree needs nothing from the host"
    assert splits == len(outputs["host"]["model"]["splits"])


def test_the_host_rerandomizes_every_histogram_it_returns(cancer, cancer_run):
    """The guest could compute the bare products of its own ciphertexts once it knows a node's rows (the host's
    bins are known to this test): what the host returns must be none of them."""
    guest, host = cancer
    _, record, params = cancer_run
    public = PublicKey.from_dict(next(m.payload for m in record if m.tag == "sb.key"))
    codes = Binner.fit(host.drop(columns=["id"]).to_numpy(float), params["bins"])
    bin_counts = codes.bin_counts
    codes_matrix = codes.transform(host.drop(columns=["id"]).to_numpy(float))
    tree = [m.payload for m in record if m.tag == "sb.tree" and m.receiver == "host"]
    replies = [m.payload for m in record if m.tag == "sb.hist" and m.receiver == "guest"]
    at = next(i for i, c in enumerate(tree) if c["op"] == "start" and c.get("gh") is not None)
    start = tree[at]
    gh = EncryptedVector.from_dict(public, start["gh"])
    by_row = dict(zip(start["rows"].tolist(), gh._ct, strict=True))
    hists = [i for i, c in enumerate(tree) if c["op"] == "hist"]
    first = next(i for i in hists if i > at)
    request, reply = tree[first], replies[hists.index(first)]
    width = sum(start["layout"].values())
    compared = 0
    for rows, returned in zip(request["nodes"], reply, strict=True):
        sums = bin_sums(
            [by_row[r] for r in rows.tolist()], codes_matrix[rows], start["features"], bin_counts, public
        )
        bare = pack_sums(sums, public, width)
        ours = EncryptedVector.from_dict(public, returned)
        assert len(ours) == len(bare)
        assert not set(ours._ct) & set(bare), "the host returned bare products of the guest's ciphertexts"
        compared += len(bare)
    assert compared > 0


def test_a_label_that_is_not_0_or_1_is_refused_with_the_fix(cancer):
    guest, host = cancer
    guest = guest.assign(y=guest["y"] * 2)
    with pytest.raises(RoleFailed) as failed:
        _run(guest, host, "y", {"trees": 1})
    error = failed.value.errors["guest"]
    assert isinstance(error, SecureBoostError)
    assert "0 and 1" in str(error) and "map" in str(error)


def test_regression_with_validation_and_early_stopping_matches_the_booster():
    rng = np.random.default_rng(7)
    n = 400
    a, b = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    b[rng.random(n) < 0.1, 0] = np.nan
    target = np.sin(a[:, 0]) + np.nan_to_num(b[:, 0]) ** 2 + 0.3 * rng.normal(size=n)
    ids = [f"r{i}" for i in range(n)]
    guest = pd.DataFrame({"id": ids, "y": target, "a0": a[:, 0], "a1": a[:, 1]})
    host = pd.DataFrame({"id": ids, "b0": b[:, 0], "b1": b[:, 1]})
    train, valid = slice(0, 300), slice(300, n)
    params = {"objective": "regression", "trees": 30, "max_depth": 2, "bins": 8, "learning_rate": 0.5}
    params["early_stopping_rounds"] = 2
    outputs = simulate(
        "hetero_secureboost",
        {
            "guest": {"train": guest[train], "validation": guest[valid].reset_index(drop=True)},
            "host": {"train": host[train], "validation": host[valid].reset_index(drop=True)},
        },
        **KEY,
        **params,
    )
    x = np.hstack([guest[["a0", "a1"]].to_numpy(), host[["b0", "b1"]].to_numpy()])
    booster = Booster(params).fit(x[train], target[train], validation=(x[valid], target[valid]))
    model = outputs["guest"]["model"]
    assert booster.best_round is not None and len(booster.history) < params["trees"], "early stopping stopped"
    _assert_same_trees(model, booster)
    assert model["best_round"] == booster.best_round
    np.testing.assert_allclose(model["history"], booster.history, atol=1e-9)
    np.testing.assert_allclose(
        outputs["guest"]["validation_scores"]["score"], booster.predict(x[valid]), atol=1e-6
    )
    np.testing.assert_allclose(outputs["guest"]["scores"]["score"], booster.predict(x[train]), atol=1e-6)
    kept = {s["tree"] for s in outputs["host"]["model"]["splits"]}
    assert kept and max(kept) < len(model["trees"]), "the host keeps only the splits of the trees kept"


def test_same_trees_with_goss_weights(cancer):
    guest, host = cancer
    params = {"trees": 3, "max_depth": 2, "bins": 8, "goss": {"top_rate": 0.3, "other_rate": 0.2}, "seed": 1}
    outputs = _run(guest, host, "y", params)
    _assert_same_trees(outputs["guest"]["model"], _plain(guest, host, "y", params))
    assert outputs["host"]["model"]["splits"], "the host's features take part"


def test_the_host_cannot_replay_the_row_draws_from_the_public_seed(cancer):
    """GOSS keeps the rows of largest |g| and draws the others: the host sees each round's rows. Replaying the
    draw from the public seed would tell it which rows were drawn at random, so which are the top ones (those
    the model gets most wrong); the guest draws from a seed keyed with its own key instead."""
    guest, host = cancer
    params = {"trees": 2, "max_depth": 2, "bins": 8, "goss": {"top_rate": 0.2, "other_rate": 0.1}, "seed": 4}
    record: list[RecordedMessage] = []
    _run(guest, host, "y", params, record)
    starts = [
        m.payload["rows"]
        for m in record
        if m.receiver == "host" and m.tag == "sb.tree" and m.payload["op"] == "start"
    ]
    booster = _plain(guest, host, "y", params)
    labels = guest["y"].to_numpy(float)
    margin = np.full((len(guest), 1), booster.base_margin[0])
    grad, _ = booster.objective.gradients(labels, margin)
    tree_params = booster.params
    ours, _ = round_rows(tree_params, 0, grad, _guest_row_seed(params))
    replay, _ = round_rows(tree_params, 0, grad, params["seed"])
    np.testing.assert_array_equal(starts[0], ours)
    assert not np.array_equal(starts[0], replay), "the host could replay the draw from the public seed"


def test_the_guest_refuses_a_histogram_that_does_not_add_up(cancer, monkeypatch):
    """A host that leaves a row out of its sums is caught by the guest's own count of the node's rows."""
    from fedbench.ml.secureboost import host as host_side

    honest = host_side.bin_sums

    def one_row_short(ciphertexts, codes, features, bin_counts, public):
        return honest(ciphertexts[1:], codes[1:], features, bin_counts, public)

    monkeypatch.setattr(host_side, "bin_sums", one_row_short)
    with pytest.raises(RoleFailed) as failed:
        _run(*cancer, "y", {"trees": 1, "max_depth": 1, "bins": 4})
    error = failed.value.errors["guest"]
    assert isinstance(error, SecureBoostError) and "malformed" in str(error)


def test_trees_that_never_split_fail_the_step_and_the_host_keeps_no_part(cancer):
    """Trees without a split give every row the same score: the guest fails the step with the setting to
    change, and the host, told to keep its part only once the guest found the model sound, writes no model."""
    guest, host = cancer
    with pytest.raises(RoleFailed) as failed:
        _run(guest, host, "y", {"trees": 1, "max_depth": 2, "bins": 8, "gamma": 1e6})
    assert failed.value.party == "guest" and type(failed.value.error).__name__ == "ModelHealthError"
    assert "do not split on any feature" in str(failed.value.error) and "lower gamma" in str(
        failed.value.error
    )
    assert "model" not in failed.value.outputs.get("host", {}), "the host keeps no part of a failed model"


def test_a_model_barely_better_than_chance_succeeds_with_a_warning():
    health = check_trees(losses=[0.69, 0.68], splits=3, auc=0.53)
    assert health.ok and "barely better than chance" in health.warnings[0]
    assert not check_trees(losses=[0.69, float("nan")], splits=3).ok
    assert not check_trees(losses=[0.69], splits=3, auc=0.5).ok
