"""`hetero_lr` and `score` in process: both protocols reproduce a plaintext computation of the same updates,
refuse unsafe or unsupported setups, and send the other party nothing in the clear (messages inspected)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from fedbench import components
from fedbench.components import RecordedMessage, RoleFailed, simulate
from fedbench.components.spec import ParamsError
from fedbench.crypto.paillier import generate_keypair
from fedbench.datasets import breast_cancer_vertical
from fedbench.ml import he_ops, ring
from fedbench.ml.approximation import replica_of
from fedbench.ml.design import sigmoid

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")


def _aligned(guest: pd.DataFrame, host: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two parties' rows of the IDs both hold, in the guest's order (what PSI would give)."""
    common = guest[guest["id"].isin(set(host["id"]))].reset_index(drop=True)
    return common, host.set_index("id").loc[common["id"]].reset_index()


def _cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _aligned(*breast_cancer_vertical())


Events = list[tuple[str, dict[str, Any]]]


def _losses(events: Events, party: str = "guest", name: str = "loss") -> list[float]:
    """The values of one metric a party logged during a simulation, in order."""
    return [e["value"] for p, e in events if p == party and e["type"] == "metric" and e["name"] == name]


def _standardised(table: pd.DataFrame) -> np.ndarray:
    x = table.to_numpy(dtype=float)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _plain_taylor_sgd(xg, xh, y, epochs, batch, lr, alpha, seed):
    """The updates both protocols compute, in plaintext: residual 0.25 z + 0.5 - y, L2 but not on the intercept."""
    xg = np.hstack([xg, np.ones((len(xg), 1))])
    wg, wh = np.zeros(xg.shape[1]), np.zeros(xh.shape[1])
    order = np.random.default_rng(seed).permutation(len(y))
    size = len(y) if batch <= 0 else batch
    parts = [np.sort(order[i : i + size]) for i in range(0, len(y), size)]
    losses = []
    for _ in range(epochs):
        total = 0.0
        for rows in parts:
            z = xg[rows] @ wg + xh[rows] @ wh
            ypm = 2 * y[rows] - 1
            total += float(np.sum(np.log(2) - 0.5 * ypm * z + 0.125 * z * z))
            r = 0.25 * z + 0.5 - y[rows]
            mask = np.ones_like(wg)
            mask[-1] = 0
            wg = wg - lr * (xg[rows].T @ r / len(rows) + alpha * wg * mask)
            wh = wh - lr * (xh[rows].T @ r / len(rows) + alpha * wh)
        losses.append(total / len(y))
    return wg, wh, losses


@pytest.mark.parametrize("protocol", ["sshe", "coordinated"])
def test_protocol_reproduces_the_plaintext_updates(protocol):
    """The Taylor option still computes exactly today's updates (the fourier default: test_hetero_lr_accuracy)."""
    g, h = _cancer()
    params = {
        "protocol": protocol,
        "approximation": "taylor",
        "key_bits": 1024,
        "epochs": 3,
        "batch_size": 200 if protocol == "sshe" else 0,
        "learning_rate": 0.5,
        "alpha": 0.01,
        "early_stopping": False,
    }
    inputs = {"guest": {"train": g}, "host": {"train": h}}
    if protocol == "coordinated":
        inputs["arbiter"] = {}
    events: Events = []
    outputs = simulate("hetero_lr", inputs, events=events, **params)
    xg, xh = _standardised(g.drop(columns=["id", "y"])), _standardised(h.drop(columns=["id"]))
    y = g["y"].to_numpy(float)
    wg, wh, losses = _plain_taylor_sgd(xg, xh, y, params["epochs"], params["batch_size"], 0.5, 0.01, 0)
    guest_model, host_model = outputs["guest"]["model"], outputs["host"]["model"]
    np.testing.assert_allclose(guest_model["coef"][0], wg, atol=2e-4)
    np.testing.assert_allclose(host_model["coef"][0], wh, atol=2e-4)
    np.testing.assert_allclose(_losses(events), losses, atol=1e-4)
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    replica = replica_of(np.hstack([xg, np.ones((len(xg), 1))]), xh, g["y"].to_numpy(float), params, len(g))
    np.testing.assert_allclose(replica.guest, wg, atol=1e-12)
    np.testing.assert_allclose(replica.host, wh, atol=1e-12)
    scores = outputs["guest"]["scores"]
    expected = sigmoid(np.hstack([xg, np.ones((len(xg), 1))]) @ wg + xh @ wh)
    np.testing.assert_allclose(scores["score"], expected, atol=1e-3)
    assert outputs["guest"]["metrics"]["train_auc"] == pytest.approx(
        roc_auc_score(g["y"], expected), abs=1e-3
    )
    assert guest_model["model_id"] == host_model["model_id"]
    assert host_model["design"]["features"] == list(h.columns.drop("id"))
    assert "classes" not in host_model and "label" not in host_model


def test_coordinated_adam_l1_class_weights_match_sklearn_auc():
    g, h = _cancer()
    params = {
        "protocol": "coordinated",
        "key_bits": 1024,
        "epochs": 4,
        "batch_size": 0,
        "optimizer": "adam",
        "learning_rate": 0.1,
        "penalty": "l1",
        "alpha": 0.001,
        "class_weight": "balanced",
    }
    events: Events = []
    outputs = simulate("hetero_lr", {"guest": g, "host": h, "arbiter": {}}, events=events, **params)
    x = StandardScaler().fit_transform(np.hstack([g.drop(columns=["id", "y"]), h.drop(columns=["id"])]))
    reference = LogisticRegression(max_iter=1000, class_weight="balanced").fit(x, g["y"])
    ours = roc_auc_score(g["y"], outputs["guest"]["scores"]["score"])
    assert ours > roc_auc_score(g["y"], reference.predict_proba(x)[:, 1]) - 0.01
    assert _losses(events, "arbiter") == _losses(events, "guest")


def test_multiclass_trains_one_vs_rest():
    rng = np.random.default_rng(3)
    n = 300
    a, b = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    klass = np.argmax(np.column_stack([a[:, 0] + b[:, 0], a[:, 1] - b[:, 1], 0.3 * np.ones(n)]), axis=1)
    ids = [f"r{i}" for i in range(n)]
    g = pd.DataFrame({"id": ids, "y": klass, "a0": a[:, 0], "a1": a[:, 1]})
    h = pd.DataFrame({"id": ids, "b0": b[:, 0], "b1": b[:, 1]})
    # Taylor: one-vs-rest is what is checked, and the default's refine epochs would triple each class's CPU
    params = {
        "key_bits": 1024,
        "epochs": 2,
        "batch_size": 0,
        "learning_rate": 0.5,
        "alpha": 0.0,
        "approximation": "taylor",
    }
    events: Events = []
    outputs = simulate("hetero_lr", {"guest": g, "host": h}, events=events, **params)
    scores = outputs["guest"]["scores"]
    assert {"score_0", "score_1", "score_2", "pred"} <= set(scores.columns)
    assert (scores["pred"] == klass).mean() > 0.8
    assert len(outputs["host"]["model"]["coef"]) == 3
    assert _losses(events, name="loss_class0") and _losses(events, name="loss_class2")


def test_coordinated_refuses_an_unsafe_batch_size():
    g, h = _cancer()
    params = {"protocol": "coordinated", "key_bits": 1024, "epochs": 10, "batch_size": 120}
    with pytest.raises(RoleFailed) as failed:
        simulate("hetero_lr", {"guest": g, "host": h, "arbiter": {}}, **params)
    assert "unsafe for the coordinated protocol" in str(failed.value.errors["guest"])
    assert "use a batch size of at least 210" in str(failed.value.errors["guest"])


def test_coordinated_needs_an_arbiter_and_sshe_refuses_nonlinear_updates():
    g, h = _cancer()
    with pytest.raises(RoleFailed) as failed:
        simulate("hetero_lr", {"guest": g, "host": h}, protocol="coordinated", key_bits=1024)
    assert "needs a party in the arbiter role" in str(failed.value.errors["guest"])
    with pytest.raises(ParamsError, match="optimizer 'adam'.*need protocol 'coordinated'"):
        components.get("hetero_lr").validate_params({"optimizer": "adam"})
    with pytest.raises(ParamsError, match="penalty 'l1'"):
        components.get("hetero_lr").validate_params({"penalty": "l1"})


def _ring_looks_random(blob: bytes) -> bool:
    values = ring.signed(ring.from_bytes(blob))
    return bool(np.mean([abs(int(v)).bit_length() > 100 for v in values]) > 0.9)


CIPHERTEXTS = {"n_bits", "key_id", "exponent", "bound", "data"}


@pytest.mark.parametrize("approximation", ["fourier", "taylor"])
def test_sshe_sends_nothing_in_the_clear(approximation):
    """The host receives keys, ciphertexts, uniformly random ring shares and flags; never a float of the guest's.
    The fourier approximation's refine epochs add only ciphertexts (`fx.up`, `fx.res`, the labels `sshe.y`
    once per batch, the loss part `sshe.loss`)."""
    g, h = _cancer()
    params = {
        "key_bits": 1024,
        "epochs": 2,
        "batch_size": 300,
        "score_rows": False,
        "approximation": approximation,
        "refine_epochs": 1,
    }
    record: list[RecordedMessage] = []
    outputs = simulate("hetero_lr", {"guest": g, "host": h}, record=record, **params)
    for receiver in ("host", "guest"):
        kinds = set()
        for tag, payload in [(m.tag, m.payload) for m in record if m.receiver == receiver]:
            kinds.add(tag)
            assert not isinstance(payload, np.ndarray), (receiver, tag)
            if tag == "sshe.init" or (tag == "sshe.loss" and isinstance(payload, bytes)):
                assert _ring_looks_random(payload), (receiver, tag)
            if tag in ("sshe.w", "sshe.xw", "sshe.e", "fx.up", "fx.res") or tag == "sshe.loss":
                assert isinstance(payload, (bytes, dict)) and (
                    isinstance(payload, bytes) or set(payload) == CIPHERTEXTS
                )
            if tag == "sshe.y":
                assert payload is None or set(payload) == CIPHERTEXTS
            if tag == "sshe.g":
                assert all(set(v) == CIPHERTEXTS for v in payload.values()), (receiver, tag)
        assert "lr.scores" not in kinds
        if approximation == "fourier":
            assert {"fx.up", "fx.res"} <= kinds
    labels = g["y"].to_numpy(float)
    stored = str(outputs["host"]["model"])
    assert "mean radius" not in stored and str(labels[:20].tolist()) not in stored
    assert outputs["guest"]["scores"].empty


def test_packed_matvec_is_exact_and_unpacks_per_row():
    public, private = generate_keypair(bits=1024)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 1 << 24, size=(23, 3))
    w = ring.random_ints(3)
    encrypted = he_ops.encrypt_ints(public, list(w), public.obfuscators(3))
    slot = ring.BITS + 24 + 2 + he_ops.SLOT_MARGIN_BITS + 1
    masks = ring.random_ints(23, slot - 1)
    packs = -(-23 // he_ops.slots_per_ciphertext(public, slot))
    packed = he_ops.packed_matvec(public, encrypted, x, 24, slot, list(masks), public.obfuscators(packs))
    assert len(packed) == packs < 23
    values = he_ops.unpack(private, packed, 23, slot)
    assert values == [int(v) for v in x.astype(object) @ w + masks]


def test_ring_truncation_of_shares():
    values = np.array([3.25, -7.5, 0.0, 1e-3, -123.456])
    encoded = ring.encode(values, 40)
    a = ring.random_ints(len(values))
    b = ring.reduce(encoded - a)
    out = ring.reduce(ring.truncate(a, 20, 0) + ring.truncate(b, 20, 1))
    np.testing.assert_allclose(ring.decode(out, 20), values, atol=2**-19)


def test_warm_start_continues_from_the_earlier_model():
    """Taylor, whose epochs are all alike: one and one epoch are two (fourier ends each training with refine
    epochs and averages the last one, so a continued training differs from a longer one by design)."""
    g, h = _cancer()
    params = {
        "key_bits": 1024,
        "epochs": 1,
        "batch_size": 0,
        "learning_rate": 0.5,
        "early_stopping": False,
        "approximation": "taylor",
    }
    first = simulate("hetero_lr", {"guest": g, "host": h}, **params)
    warm = {
        party: {"train": table, "warm_start": first[party]["model"]}
        for party, table in (("guest", g), ("host", h))
    }
    second: Events = []
    simulate("hetero_lr", warm, events=second, **params)
    cold: Events = []
    simulate("hetero_lr", {"guest": g, "host": h}, events=cold, **{**params, "epochs": 2})
    np.testing.assert_allclose(_losses(second), _losses(cold)[1:], atol=1e-4)
    mixed = {"guest": warm["guest"], "host": {"train": h}}
    with pytest.raises(RoleFailed) as refused:
        simulate("hetero_lr", mixed, **params)
    assert "warm-start from different models" in str(refused.value.errors["host"])


def test_score_picks_ids_checks_alignment_and_the_project():
    g, h = _cancer()
    params = {"key_bits": 1024, "epochs": 1, "batch_size": 0, "learning_rate": 0.5, "approximation": "taylor"}
    trained = simulate("hetero_lr", {"guest": g, "host": h}, **params)
    models = {p: trained[p]["model"] for p in ("guest", "host")}
    ids = [str(i) for i in g["id"].iloc[[5, 1, 9]]]
    shuffled = {"guest": g.sample(frac=1.0, random_state=1), "host": h.sample(frac=1.0, random_state=2)}
    scored = simulate(
        "score",
        {
            p: {"model": models[p], "data": shuffled[p].assign(id=shuffled[p]["id"].astype(str))}
            for p in models
        },
        ids=ids,
        scorecard=True,
    )
    scores = scored["guest"]["scores"]
    assert list(scores["id"]) == ids
    full = trained["guest"]["scores"].set_index(trained["guest"]["scores"]["id"].astype(str))
    np.testing.assert_allclose(scores["score"], full.loc[ids, "score"], atol=1e-12)
    assert (np.diff(scores["points"][np.argsort(scores["score"].to_numpy())]) <= 0).all()

    with pytest.raises(RoleFailed) as unaligned:
        simulate("score", {p: {"model": models[p], "data": shuffled[p]} for p in models})
    assert "IDs or their order differ" in str(unaligned.value.errors["guest"])
    with pytest.raises(RoleFailed) as other:
        simulate(
            "score",
            {p: {"model": models[p], "data": {"guest": g, "host": h}[p]} for p in models},
            project={"id": "p-2", "name": "other"},
        )
    assert "trained in another project" in str(other.value.errors["guest"])


def test_missing_values_are_refused_or_count_as_the_training_mean():
    from fedbench.ml.design import Design, ModelDataError

    table = pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "x": [1.0, np.nan, 3.0, 5.0], "z": [1.0, 2.0, 3.0, 4.0]}
    )
    with pytest.raises(ModelDataError, match=r"\['x'\] have missing values.*missing to 'mean'"):
        Design.fit(table, {"id"}, intercept=False)
    design = Design.fit(table, {"id"}, intercept=True, missing="mean")
    x = design.matrix(table)
    assert x[1, 0] == 0.0 and x.shape == (4, 3)
    np.testing.assert_allclose(design.mean, [3.0, 2.5])
    with pytest.raises(ModelDataError, match=r"lacks the model's feature columns \['z'\]"):
        design.matrix(table.drop(columns=["z"]))
