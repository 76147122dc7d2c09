"""`homo_nn` in process (`simulate`): a network trained horizontally with secure aggregation scores held-out
rows within 0.01 AUC of the same network trained by PyTorch on the pooled rows, beats a logistic regression
where the classes are not linearly separable, and every party (and numpy's scoring) has the same network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from fedbench.components import simulate
from fedbench.components.builtin.homo_score import HomoScoreParams, score_table
from fedbench.ml.homo_nn import initial_weights, layer_sizes, predict_proba

CLIENTS = ["bank-a", "bank-b", "bank-c"]
FEATURES = ["f0", "f1", "f2"]


def _xor(rows: int, seed: int) -> pd.DataFrame:
    """Three badly scaled features; the label follows the sign of f0 * f1 (no straight line separates it)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)) * np.array([1.0, 50.0, 1.0]) + np.array([0.0, 200.0, 0.0])
    z = 3 * x[:, 0] * (x[:, 1] - 200.0) / 50.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame(
        {"id": [f"r{seed}-{i}" for i in range(rows)], "f0": x[:, 0], "f1": x[:, 1], "f2": x[:, 2], "y": y}
    )


def _central(train: pd.DataFrame, sizes: list[int], epochs: int, seed: int) -> torch.nn.Sequential:
    """The same network, same start and SGD, trained on the pooled rows (the centralized reference)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(sizes[0], sizes[1], dtype=torch.float64),
        torch.nn.ReLU(),
        torch.nn.Linear(sizes[1], sizes[2], dtype=torch.float64),
    )
    start = initial_weights(sizes, "relu", seed)
    torch.nn.utils.vector_to_parameters(torch.from_numpy(start.copy()), net.parameters())
    x = train[FEATURES].to_numpy()
    x = torch.from_numpy((x - x.mean(0)) / x.std(0))
    y = torch.from_numpy(train["y"].to_numpy(float)).reshape(-1, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for begin in range(0, len(x), 32):
            batch = torch.from_numpy(order[begin : begin + 32])
            optimizer.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(net(x[batch]), y[batch]).backward()
            optimizer.step()
    return net


def test_the_network_matches_the_same_network_trained_centrally_and_beats_a_regression() -> None:
    train, test = _xor(1500, 1), _xor(1000, 2)
    parts = [train.iloc[i :: len(CLIENTS)] for i in range(len(CLIENTS))]
    tables = {c: {"train": p, "validation": test} for c, p in zip(CLIENTS, parts, strict=True)}
    roles = {"client": CLIENTS, "server": "aggregator"}
    out = simulate(
        "homo_nn",
        tables,
        roles=roles,
        rounds=15,
        local_epochs=2,
        learning_rate=0.5,
        hidden_layers=[16],
        stage_timeout=10,
    )
    model = out["aggregator"]["model"]
    assert model["layers"] == layer_sizes(3, [16], 2) == [3, 16, 1]
    for party in CLIENTS:
        assert out[party]["model"]["weights"] == model["weights"], "every party holds the same network"
    scored = score_table(model, test, HomoScoreParams())
    ours = roc_auc_score(test["y"], scored["score"])
    assert ours == pytest.approx(out["bank-a"]["metrics"]["validation"]["auc"], abs=1e-9)

    central = _central(train, model["layers"], epochs=30, seed=0)
    pooled = train[FEATURES].to_numpy()
    x = torch.from_numpy((test[FEATURES].to_numpy() - pooled.mean(0)) / pooled.std(0))
    with torch.no_grad():
        reference = roc_auc_score(test["y"], central(x).numpy()[:, 0])
    assert abs(ours - reference) < 0.01, (ours, reference)

    regression = simulate("homo_lr", tables, roles=roles, rounds=15, stage_timeout=10)
    linear = roc_auc_score(
        test["y"], score_table(regression["aggregator"]["model"], test, HomoScoreParams())["score"]
    )
    assert ours > linear + 0.25, (ours, linear)


def test_numpy_scoring_is_pytorch_forward_pass_for_several_classes() -> None:
    sizes = [4, 8, 5, 3]
    flat = initial_weights(sizes, "tanh", seed=4)
    x = np.random.default_rng(0).normal(size=(50, 4))
    torch.manual_seed(4)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8, dtype=torch.float64),
        torch.nn.Tanh(),
        torch.nn.Linear(8, 5, dtype=torch.float64),
        torch.nn.Tanh(),
        torch.nn.Linear(5, 3, dtype=torch.float64),
    )
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(predict_proba(flat, sizes, "tanh", x), expected, rtol=1e-12)


def test_a_declared_layer_out_of_range_is_refused_before_anything_runs() -> None:
    train = _xor(90, 3)
    tables = {c: train.iloc[i::3] for i, c in enumerate(CLIENTS)}
    with pytest.raises(Exception, match="hidden_layers"):
        simulate("homo_nn", tables, roles={"client": CLIENTS, "server": "aggregator"}, hidden_layers=[0])
