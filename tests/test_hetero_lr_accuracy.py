"""`hetero_lr` is as accurate as centralized logistic regression (issue #18, part 1).

The default approximation (`fourier`: Newton steps on a quadratic warm-up, then refine epochs on a periodic
sigmoid the parties evaluate on shares) ends within 0.002 training AUC of scikit-learn's LogisticRegression with
the same L2 penalty on the same rows, where FATE's first-order Taylor loss does not: on data generated with a
strong class imbalance and large scores, and on scikit-learn's breast-cancer data split vertically, under both
protocols. The federated weights equal the plaintext replica (`approximation.replica`) of the same training,
including the phase rule (an early-stopped warm-up goes on to the refine epochs); the exchange behind the
refine epochs reconstructs the periodic sigmoid and refuses a malformed message. In process (`simulate`),
1024-bit keys, a few hundred rows.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fedbench.components import simulate
from fedbench.crypto.paillier import generate_keypair
from fedbench.datasets import breast_cancer_vertical
from fedbench.federation import Context, TaskIO
from fedbench.ml import approximation, ring
from fedbench.ml.approximation import replica_of
from fedbench.ml.design import Design
from fedbench.ml.fourier_exchange import FRAC_BITS, ExchangeError, FourierExchange, angles_of_shares
from fedbench.ml.health import check_training
from fedbench.net.transport import InMemoryFederation

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

GOAL = 0.002
"""Issue #18: within 0.002 AUC of scikit-learn (same regularisation, same rows)."""
PARAMS = {"key_bits": 1024, "epochs": 3, "learning_rate": 0.5, "alpha": 0.01, "early_stopping": False}
"""One Newton warm-up epoch and the two refine epochs: 0.0007 (breast cancer) and 0.0012 (imbalanced) below
scikit-learn's AUC under either protocol, inside GOAL (fixed batches; the weights equal the plaintext
replica's to 1e-4, so the shares' random rounding moves the AUC far less than the margin)."""


def _imbalanced(rows: int = 600, seed: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """12% positives, long-tailed (log-normal, exponential) features and scores up to about +-11: where the
    Taylor loss's least-squares optimum ranks rows worst (0.010 below scikit-learn on these rows)."""
    rng = np.random.default_rng(seed)
    g = np.column_stack([rng.lognormal(0.0, 0.8, rows), rng.normal(size=rows), rng.exponential(1.0, rows)])
    h = np.column_stack([rng.lognormal(0.0, 0.8, rows), rng.normal(size=rows), rng.normal(size=rows)])

    def standard(x: np.ndarray) -> np.ndarray:
        return (x - x.mean(axis=0)) / x.std(axis=0)

    z = -3.5 + 1.5 * (standard(g) @ [1.0, 0.6, -0.5] + standard(h) @ [0.8, -0.7, 0.3])
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-z))).astype(int)
    ids = [f"r{i}" for i in range(rows)]
    guest = pd.DataFrame({"id": ids, "y": y, **{f"g{j}": g[:, j] for j in range(3)}})
    host = pd.DataFrame({"id": ids, **{f"h{j}": h[:, j] for j in range(3)}})
    return guest, host


def _cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    guest, host = breast_cancer_vertical()
    common = guest[guest["id"].isin(set(host["id"]))].reset_index(drop=True)
    return common, host.set_index("id").loc[common["id"]].reset_index()


DATA = {"imbalanced": (_imbalanced, 150), "breast_cancer": (_cancer, 285)}
"""Each data set and its batch size (the coordinated protocol refuses batches below 10 per host feature)."""


def _designs(guest: pd.DataFrame, host: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each party's standardised matrix, the guest's with its intercept column, as the component builds them."""
    xg = Design.fit(guest, {"id", "y"}, intercept=True, missing="mean").matrix(guest)
    xh = Design.fit(host, {"id"}, intercept=False, missing="mean").matrix(host)
    return xg, xh


def _sklearn_auc(guest: pd.DataFrame, host: pd.DataFrame, alpha: float) -> float:
    """scikit-learn on the joined standardised rows, the same objective (mean log-loss + alpha/2 |w|^2)."""
    xg, xh = _designs(guest, host)
    x = np.hstack([xg[:, :-1], xh])
    y = guest["y"].to_numpy()
    model = LogisticRegression(C=1.0 / (alpha * len(y)), max_iter=10_000, tol=1e-10).fit(x, y)
    return float(roc_auc_score(y, model.decision_function(x)))


def _inputs(guest: pd.DataFrame, host: pd.DataFrame, protocol: str) -> dict[str, Any]:
    inputs: dict[str, Any] = {"guest": {"train": guest}, "host": {"train": host}}
    if protocol == "coordinated":
        inputs["arbiter"] = {}
    return inputs


def _losses(events: list[tuple[str, dict[str, Any]]]) -> list[float]:
    return [e["value"] for p, e in events if p == "guest" and e["type"] == "metric" and e["name"] == "loss"]


@pytest.mark.parametrize("protocol", ["sshe", "coordinated"])
@pytest.mark.parametrize("data", sorted(DATA))
def test_auc_is_within_0002_of_sklearn_and_the_weights_equal_the_replica(data: str, protocol: str) -> None:
    make, batch = DATA[data]
    guest, host = make()
    params = {**PARAMS, "protocol": protocol, "batch_size": batch}
    events: list[tuple[str, dict[str, Any]]] = []
    outputs = simulate("hetero_lr", _inputs(guest, host, protocol), events=events, **params)
    expected = _sklearn_auc(guest, host, PARAMS["alpha"])
    ours = outputs["guest"]["metrics"]["train_auc"]
    assert abs(ours - expected) < GOAL, (data, protocol, ours, expected)

    xg, xh = _designs(guest, host)
    replica = replica_of(xg, xh, guest["y"].to_numpy(float), params, len(guest))
    np.testing.assert_allclose(outputs["guest"]["model"]["coef"][0], replica.guest, atol=1e-4)
    np.testing.assert_allclose(outputs["host"]["model"]["coef"][0], replica.host, atol=1e-4)
    np.testing.assert_allclose(_losses(events), replica.losses, atol=1e-4)
    metrics = outputs["guest"]["metrics"]
    assert metrics["approximation"] == "fourier" and metrics["refine_from"] == PARAMS["epochs"] - 2


@pytest.mark.parametrize("protocol", ["sshe", "coordinated"])
def test_an_early_stopped_warm_up_goes_on_to_the_refine_epochs(protocol: str) -> None:
    """Every party (the arbiter too) follows the guest's flags the same way, and so does the replica."""
    guest, host = _imbalanced(rows=300, seed=5)
    params = {
        **PARAMS,
        "protocol": protocol,
        "batch_size": 0,
        "epochs": 20,
        "refine_epochs": 1,
        "early_stopping": True,
        "tol": 0.05,
    }
    events: list[tuple[str, dict[str, Any]]] = []
    outputs = simulate("hetero_lr", _inputs(guest, host, protocol), events=events, **params)
    xg, xh = _designs(guest, host)
    replica = replica_of(xg, xh, guest["y"].to_numpy(float), params, len(guest))
    assert 2 <= len(replica.losses) < 10
    metrics = outputs["guest"]["metrics"]
    assert metrics["epochs"] == len(replica.losses) and metrics["refine_from"] == len(replica.losses) - 1
    np.testing.assert_allclose(_losses(events), replica.losses, atol=1e-4)
    marks = [e for p, e in events if p == "guest" and e["type"] == "metric" and e["name"] == "refine_from"]
    assert [(m["value"], m["step"]) for m in marks] == [(metrics["refine_from"], metrics["refine_from"])], (
        "the live chart is told once where the refine epochs begin"
    )
    np.testing.assert_allclose(outputs["host"]["model"]["coef"][0], replica.host, atol=1e-4)
    assert outputs["host"]["metrics"]["epochs"] == len(replica.losses)


def _pair() -> dict[str, Context]:
    roles = {"guest": ["g"], "host": ["h"]}
    federation = InMemoryFederation(["g", "h"])
    io = TaskIO(lambda name: None, lambda name, value: None, lambda event: None, lambda: False)
    return {
        role: Context(
            party=party,
            role=role,
            roles=roles,
            job_id="job",
            step="step",
            params=None,
            transport=federation.transport(party),
            io=io,
            recv_timeout=30,
        )
        for role, (party,) in roles.items()
    }


def _run_pair(play: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def run(role: str) -> None:
        try:
            results[role] = play(role)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each side raised
            results[role] = exc

    threads = [threading.Thread(target=run, args=(role,)) for role in ("guest", "host")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_the_exchange_reconstructs_the_periodic_sigmoid_from_shares_and_refuses_malformed_results() -> None:
    contexts = _pair()
    keys = {role: generate_keypair(bits=1024) for role in contexts}
    rows = 9
    z = np.array([-11.0, -7.5, -3.0, -0.4, 0.0, 0.7, 2.5, 6.0, 9.9])
    shares = {"guest": ring.random_ints(rows)}
    shares["host"] = ring.reduce(ring.encode(z, 40) - shares["guest"])
    sine = [c / approximation.CURVATURE for c in approximation.HARMONICS]
    cosine = [c / w for c, w in zip(approximation.HARMONICS, approximation.OMEGAS, strict=True)]

    def play(role: str, tamper: bool = False) -> tuple[list[int], int]:
        peer = "host" if role == "guest" else "guest"
        exchange = FourierExchange(
            keys[role][1], keys[peer][0], 0 if role == "guest" else 1, sine, cosine, rows
        )
        try:
            angles = angles_of_shares(
                shares[role], 40, approximation.PERIOD_MULTIPLIER, approximation.PERIOD_BITS
            )
            handle = contexts[role].peer(peer)
            if tamper:
                original = handle.send

                def send(tag: str, obj: Any) -> None:
                    if tag == "fx.res":  # results that are no packing of masked slots: 2^1000 each
                        obj = keys[peer][0].encrypt_encoded([1 << 1000] * (rows // 2 + 2), 0).to_dict()
                    original(tag, obj)

                handle.send = send  # type: ignore[method-assign]
            return exchange.run(handle, angles)
        finally:
            exchange.close()

    results = _run_pair(play)
    sines = np.array(
        [a + b for a, b in zip(results["guest"][0], results["host"][0], strict=True)], dtype=float
    )
    scale = 2.0 ** (2 * FRAC_BITS)
    expected = (approximation.fourier_sigmoid(z) - 0.5) / approximation.CURVATURE
    np.testing.assert_allclose(sines / scale, expected, atol=1e-3)
    cosines = (results["guest"][1] + results["host"][1]) / scale
    expected_cos = sum(c * np.cos(w * z) for c, w in zip(cosine, approximation.OMEGAS, strict=True))
    assert cosines == pytest.approx(float(np.sum(expected_cos)), abs=1e-3)
    # each share alone is masked far beyond the value it hides
    assert min(abs(v) for v in results["host"][0]) > 2**60

    contexts.update(_pair())
    tampered = _run_pair(lambda role: play(role, tamper=role == "host"))
    assert isinstance(tampered["guest"], ExchangeError), tampered["guest"]
    assert "malformed" in str(tampered["guest"])


def test_the_fourier_approximation_is_close_to_the_sigmoid_where_scores_lie() -> None:
    z = np.linspace(-4.0, 4.0, 801)
    assert np.abs(approximation.fourier_sigmoid(z) - 1.0 / (1.0 + np.exp(-z))).max() < 0.012
    # its loss is the integral of sigma_F - y, log 2 at zero like the logistic loss
    step = 1e-5
    for label in (0.0, 1.0):
        slope = (
            approximation.fourier_loss(z + step, label) - approximation.fourier_loss(z - step, label)
        ) / (2 * step)
        np.testing.assert_allclose(slope, approximation.fourier_sigmoid(z) - label, atol=1e-6)
    assert approximation.fourier_loss(np.zeros(1), 1.0)[0] == pytest.approx(np.log(2.0))


def test_health_judges_each_phase_on_its_own_loss() -> None:
    """The refine epochs end a training on another loss than the warm-up's quadratic (which lies below the
    logistic loss, even below zero): the jump between them is neither "did not fall" nor a divergence, and their
    fall says nothing of too few epochs. As measured on the credit data (benchmarks/RESULTS.md)."""
    credit = [0.4546, 0.3648, 0.3640, 0.3638, 0.3637, 0.3636, 0.3636, 0.3636, 0.4648, 0.4601]
    assert check_training(losses=credit, learning_rate=0.5, epochs=10, refine_from=8).warnings == []
    assert "did not fall" in check_training(losses=credit, learning_rate=0.5, epochs=10).warnings[0]
    negative = [0.02, -0.11, -0.12, 0.35, 0.31]
    assert check_training(losses=negative, learning_rate=0.5, epochs=5, refine_from=3).ok
    rising = [0.45, 0.36, 0.35, 0.46, 0.48]
    warned = check_training(losses=rising, learning_rate=0.5, epochs=5, refine_from=3).warnings
    assert len(warned) == 1 and "did not fall (0.46 at the first epoch, 0.48 at the last)" in warned[0]
    settled = [0.69, 0.45, 0.40, 0.39, 0.389, 0.388, 0.30, 0.26]
    assert check_training(losses=settled, learning_rate=0.5, epochs=8, refine_from=6).warnings == []
    falling = [0.69, 0.6, 0.55, 0.52, 0.50, 0.48, 0.40, 0.39]
    warned = check_training(losses=falling, learning_rate=0.5, epochs=8, refine_from=6).warnings
    assert len(warned) == 1 and "still falling fast when the 6 epochs ran out (0.5 to 0.48" in warned[0]
    per_class = {"0": settled, "1": falling}
    both = check_training(losses=per_class, learning_rate=0.5, epochs=8, refine_from={"0": 6, "1": 6})
    assert len(both.warnings) == 1 and "loss of class 1" in both.warnings[0]
