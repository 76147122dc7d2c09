"""`homo_lr` with secure aggregation, in process (`simulate`): the secure model is plaintext FedAvg's, it
matches a pooled fit on badly scaled imbalanced data, survives a dropout and a malformed vector, and the server
never receives a number in the clear."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import fedbench.secagg.federated as federated
from fedbench.components import RecordedMessage, RoleFailed, simulate
from fedbench.components.builtin import homo_lr as component
from fedbench.components.builtin import horizontal
from fedbench.components.simulate import simulated_private_rng
from fedbench.components.spec import Component, Port
from fedbench.ml.dp import private_change
from fedbench.ml.homo_lr import LocalData, local_update, predict_proba
from fedbench.secagg.messages import MaskedInput

CLIENTS = ["bank-a", "bank-b", "bank-c", "bank-d"]


def _frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    df.insert(0, "id", [f"r{i}" for i in range(len(df))])
    df["y"] = y
    return df


def _cancer() -> tuple[list[pd.DataFrame], pd.DataFrame]:
    x, y = load_breast_cancer(return_X_y=True)
    df = _frame(x, y).sample(frac=1.0, random_state=0)
    test, train = df.iloc[:150], df.iloc[150:]
    return [train.iloc[i :: len(CLIENTS)] for i in range(len(CLIENTS))], test


def _run(parts: list[pd.DataFrame], test: pd.DataFrame | None = None, **params: Any) -> dict[str, Any]:
    names = CLIENTS[: len(parts)] if len(parts) <= len(CLIENTS) else [f"c{i}" for i in range(len(parts))]
    tables = {
        n: {"train": p} | ({} if test is None else {"validation": test})
        for n, p in zip(names, parts, strict=True)
    }
    return simulate(
        "homo_lr", tables, roles={"client": names, "server": "aggregator"}, **({"stage_timeout": 10} | params)
    )


def _plain_fedavg(parts: list[pd.DataFrame], names: list[str], rounds: int, **params: Any) -> np.ndarray:
    """Plaintext FedAvg on the same rows with the same local batches: what secure aggregation must equal."""
    features = [c for c in parts[0].columns if c.startswith("f")]
    pooled = pd.concat(parts)[features].to_numpy(dtype=float)
    unit = 2.0 ** np.round(
        np.average(
            [np.log2(np.abs(p[features].to_numpy(float)).mean(0)) for p in parts],
            axis=0,
            weights=[len(p) for p in parts],
        )
    )
    mean = pooled.mean(0)
    scale = np.sqrt((((pooled - mean) / unit) ** 2).mean(0)) * unit
    data = {
        n: LocalData.build(p[features].to_numpy(float), p["y"].to_numpy(), mean, scale, 1)
        for n, p in zip(names, parts, strict=True)
    }
    rngs = {n: simulated_private_rng(n, "horizontal local batches", 0) for n in names}
    w = np.zeros((len(features) + 1, 1))
    defaults = component.HomoLRParams(**params)
    for _ in range(rounds):
        change = sum(
            len(d.x)
            * (
                local_update(
                    w,
                    d,
                    epochs=defaults.local_epochs,
                    batch_size=defaults.batch_size,
                    learning_rate=defaults.learning_rate,
                    l2=defaults.l2,
                    mu=0.0,
                    rng=rngs[n],
                )
                - w
            )
            for n, d in data.items()
        )
        w = w + change / sum(len(d.x) for d in data.values())
    return w


def test_the_secure_model_is_plaintext_fedavg_and_every_party_holds_it() -> None:
    parts, test = _cancer()
    out = _run(parts, test, rounds=5)
    expected = _plain_fedavg(parts, CLIENTS, 5)
    server = np.asarray(out["aggregator"]["model"]["weights"])
    # Fixed point costs precision: a statistic's step is 1e4 * MAX_ROWS / 1024 / 2^52 = 2.2e-8 per unit of row
    # weight (rows / 1024), so with four clients of about 105 rows (weight 0.1 each) the standardisation is
    # exact to about 2e-7 of each feature's unit, and the weights follow within 1e-6.
    np.testing.assert_allclose(server, expected, rtol=0, atol=1e-6)
    for party in CLIENTS:
        assert out[party]["model"]["weights"] == out["aggregator"]["model"]["weights"]
    assert [r["clients"] for r in out["aggregator"]["metrics"]["rounds"]] == [4] * 5
    validation = out["bank-a"]["metrics"]["validation"]
    assert validation["auc"] > 0.98, validation


def test_on_badly_scaled_imbalanced_data_it_matches_a_pooled_fit() -> None:
    rng = np.random.default_rng(7)
    rows = 6000
    x = rng.normal(size=(rows, 6)) * np.array([1e5, 1e-3, 1.0, 50.0, 1e3, 0.2]) + np.array(
        [4e5, 0, 3, -20, 0, 1]
    )
    z = (x - x.mean(0)) / x.std(0) @ np.array([1.2, -0.8, 0.6, 0.0, 0.9, -1.5]) - 3.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-z))).astype(int)
    df = _frame(x, y)
    test, train = df.iloc[:2000], df.iloc[2000:]
    sizes = [300, 700, 1000, 2000]
    parts = [train.iloc[a:b] for a, b in zip([0, *np.cumsum(sizes)[:-1]], np.cumsum(sizes), strict=True)]
    assert 0.05 < y.mean() < 0.2
    out = _run(parts, test, rounds=15, local_epochs=2, batch_size=64, learning_rate=0.2)
    model = out["aggregator"]["model"]
    features = model["features"]
    scaled = (test[features].to_numpy() - model["mean"]) / model["scale"]
    ours = predict_proba(np.asarray(model["weights"]), np.hstack([scaled, np.ones((len(test), 1))]))[:, 0]
    pooled = train[features].to_numpy()
    sk = LogisticRegression(C=1e6, max_iter=5000).fit((pooled - pooled.mean(0)) / pooled.std(0), train["y"])
    reference = sk.predict_proba((test[features].to_numpy() - pooled.mean(0)) / pooled.std(0))[:, 1]
    gap = roc_auc_score(test["y"], ours) - roc_auc_score(test["y"], reference)
    assert abs(gap) < 0.005, gap
    np.testing.assert_allclose(model["mean"], pooled.mean(0), rtol=1e-6)
    np.testing.assert_allclose(model["scale"], pooled.std(0), rtol=1e-6)


def test_multiclass_with_named_classes() -> None:
    x, y = load_wine(return_X_y=True)
    df = _frame(x, np.array(["red", "white", "rose"])[y]).sample(frac=1.0, random_state=1)
    parts = [df.iloc[i::3] for i in range(3)]
    out = _run(parts, rounds=10, classes=["red", "white", "rose"])
    assert np.asarray(out["aggregator"]["model"]["weights"]).shape == (14, 3)
    assert out["bank-a"]["metrics"]["train"]["accuracy"] > 0.9
    with pytest.raises(RoleFailed, match=r"outside the classes \['0', '1'\]; give the param classes"):
        _run(parts, rounds=1)


class _Gone(Exception):
    """Ends a client's role the way a killed party ends: no more messages, no failure record."""


def test_a_client_gone_after_sending_its_shares_is_recovered_and_the_rounds_go_on(monkeypatch) -> None:
    parts, _ = _cancer()
    real = federated.vector_to_wire
    calls = {"bank-d": 0}

    def vanishing(message):
        """Client 3 (bank-d) sends its shares in training round 2 (its 5th round), then is gone."""
        if isinstance(message, MaskedInput) and message.client == 3:
            calls["bank-d"] += 1
            if calls["bank-d"] == len(horizontal.STATISTICS) + 2:
                raise _Gone
        return real(message)

    def client_or_gone(ctx, params):
        try:
            component.client(ctx, params)
        except _Gone:
            return

    monkeypatch.setattr(federated, "vector_to_wire", vanishing)
    spec = Component(
        name="homo_lr_dropping",
        version="1",
        params=component.HomoLRParams,
        roles=("client", "server"),
        use="train",
        inputs=component.homo_lr.inputs,
        outputs=tuple(Port(p.name, p.kind, optional=True) for p in component.homo_lr.outputs),
        functions={"client": client_or_gone, "server": component.homo_lr.functions["server"]},
    )
    out = simulate(
        spec,
        {n: {"train": p} for n, p in zip(CLIENTS, parts, strict=True)},
        roles={"client": CLIENTS, "server": "aggregator"},
        rounds=3,
        stage_timeout=5,
    )
    rounds = out["aggregator"]["metrics"]["rounds"]
    assert [(r["clients"], r["dropped"]) for r in rounds] == [(4, 0), (3, 1), (3, 0)], rounds
    assert "model" not in out["bank-d"]
    assert out["bank-a"]["model"]["weights"] == out["aggregator"]["model"]["weights"]
    assert out["bank-a"]["metrics"]["train"]["auc"] > 0.98


def test_a_vector_of_the_wrong_length_is_excluded_with_its_reason_and_the_round_completes(
    monkeypatch,
) -> None:
    parts, _ = _cancer()
    real = federated.vector_to_wire

    def short(message):
        if isinstance(message, MaskedInput) and message.client == 2:
            message = MaskedInput(message.client, message.vector[:-8], message.masked_with)
        return real(message)

    monkeypatch.setattr(federated, "vector_to_wire", short)
    events: list[tuple[str, dict[str, Any]]] = []
    tables = {n: {"train": p} for n, p in zip(CLIENTS, parts, strict=True)}
    out = simulate(
        "homo_lr",
        tables,
        roles={"client": CLIENTS, "server": "aggregator"},
        events=events,
        rounds=2,
        stage_timeout=10,
    )
    rounds = out["aggregator"]["metrics"]["rounds"]
    assert [r["clients"] for r in rounds] == [3, 3]
    assert any("client 2 at masked input: it sent a vector of" in reason for reason in rounds[0]["excluded"])
    warnings = [e["message"] for party, e in events if party == "aggregator" and e["type"] == "warning"]
    assert any("client 2 at masked input" in w for w in warnings)


def test_the_server_receives_no_number_in_the_clear() -> None:
    parts, _ = _cancer()
    record: list[RecordedMessage] = []
    tables = {n: {"train": p} for n, p in zip(CLIENTS, parts, strict=True)}
    simulate("homo_lr", tables, roles={"client": CLIENTS, "server": "aggregator"}, record=record, rounds=2)
    to_server = [m for m in record if m.receiver == "aggregator"]
    assert {m.tag for m in to_server} == {"schema", "keys", "shares", "vector", "unmasked"}

    def floats(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [f for v in value.values() for f in floats(v)]
        if isinstance(value, list):
            return [f for v in value for f in floats(v)]
        if isinstance(value, np.ndarray):
            return [value] if value.dtype.kind == "f" else []
        return [value] if isinstance(value, float) else []

    assert not [m.tag for m in to_server if floats(m.payload)], (
        "a client sent the server a number in the clear"
    )


def test_too_few_clients_or_other_columns_fail_with_the_fix() -> None:
    parts, _ = _cancer()
    with pytest.raises(RoleFailed, match="needs at least 3 clients, not 2; add parties"):
        _run(parts[:2], rounds=1)
    renamed = [parts[0].rename(columns={"f3": "g3"}), *parts[1:3]]
    with pytest.raises(RoleFailed, match="other feature columns"):
        _run(renamed, rounds=1)


def test_differential_privacy_clips_noises_and_reports_the_epsilon_spent() -> None:
    parts, test = _cancer()
    private = [_run(parts, test, rounds=8, dp_noise=1.0, dp_clip=0.5) for _ in range(2)]
    plain = [_run(parts, test, rounds=8) for _ in range(2)]
    assert plain[0]["aggregator"]["model"]["weights"] == plain[1]["aggregator"]["model"]["weights"]
    assert private[0]["aggregator"]["model"]["weights"] != private[1]["aggregator"]["model"]["weights"], (
        "the noise comes from the system's randomness, fresh each run"
    )
    spent = private[0]["aggregator"]["metrics"]["dp"]
    assert spent["rounds"] == 8 and spent["noise_multiplier"] == 1.0 and spent["delta"] == 1e-5
    # The classic conversion of the Gaussian mechanism's RDP (8 rounds, every client, sigma 1) bounds the
    # accountant's tighter figure from above.
    classic = min(8 * a / 2 + np.log(1e5) / (a - 1) for a in np.linspace(1.1, 100, 5000))
    assert 0 < spent["epsilon"] <= classic
    assert private[0]["bank-a"]["metrics"]["dp"]["epsilon"] == pytest.approx(spent["epsilon"])
    assert private[0]["bank-a"]["metrics"]["validation"]["auc"] > 0.9, "a noised model still learns"
    noisier = _run(parts, rounds=8, dp_noise=4.0, dp_clip=0.5)["aggregator"]["metrics"]["dp"]["epsilon"]
    assert noisier < spent["epsilon"] / 3


def test_a_private_change_is_clipped_to_its_norm_and_carries_its_share_of_the_noise() -> None:
    change = np.full(10_000, 0.05)
    assert np.linalg.norm(private_change(change, 4, 0.0, 1.0)) == pytest.approx(1.0)
    noise = private_change(np.zeros(10_000), 4, 2.0, 1.0)
    assert np.std(noise) == pytest.approx(2.0 / np.sqrt(4), rel=0.05)
