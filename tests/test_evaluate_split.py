"""`split` and `evaluate`: metrics against scikit-learn in-process, and both components between two real nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import Federation, job_states
from sklearn import metrics as sk

import fedbench
from fedbench import components
from fedbench.client.runs import RunFailed
from fedbench.components.builtin import metrics as fm
from fedbench.components.builtin.evaluate import EvaluateParams, evaluate_table
from fedbench.components.builtin.split import SplitParams, assign, assign_by_id

N = 600


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities with many ties (scores rounded to two decimals)."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    score = np.round(np.clip(0.25 * y + rng.normal(0.4, 0.2, 500), 0.001, 0.999), 2)
    return y, score


# ----- metrics in-process, against scikit-learn --------------------------------------------------------------


def test_binary_metrics_match_scikit_learn(binary) -> None:
    y, s = binary
    m = fm.binary_metrics(y, s, threshold=0.5, bins=10)
    assert m["auc"] == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert m["log_loss"] == pytest.approx(sk.log_loss(y, s), abs=1e-12)
    pred = (s >= 0.5).astype(int)
    precision, recall, f1, _ = sk.precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((precision, recall, f1), abs=1e-12)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["confusion_matrix"] == sk.confusion_matrix(y, pred).tolist()
    fpr, tpr, thresholds = sk.roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(m["roc"]["fpr"], fpr) and np.allclose(m["roc"]["tpr"], tpr)
    assert np.allclose(m["roc"]["thresholds"][1:], thresholds[1:])
    assert m["ks"] == pytest.approx(np.max(tpr - fpr))
    best = int(np.argmax(tpr - fpr))
    assert m["ks_threshold"] == pytest.approx(thresholds[best])
    for row in m["by_threshold"]:
        p, r, f, _ = sk.precision_recall_fscore_support(
            y, (s >= row["threshold"]).astype(int), average="binary", zero_division=0
        )
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p, r, f), abs=1e-12)


def test_lift_and_gain_by_decile(binary) -> None:
    y, s = binary
    lift = fm.lift_gain(y, s, bins=10)
    assert len(lift) == 10 and sum(b["rows"] for b in lift) == len(y)
    assert sum(b["positives"] for b in lift) == y.sum()
    assert lift[-1]["cumulative_gain"] == pytest.approx(1.0) and lift[-1]["cumulative_lift"] == pytest.approx(
        1.0
    )
    order = np.argsort(-s, kind="mergesort")
    top = y[order][: lift[0]["rows"]].mean()
    assert lift[0]["lift"] == pytest.approx(top / y.mean())
    assert lift[0]["lift"] > 1.0 > lift[-1]["lift"]


def test_binary_edge_cases() -> None:
    one_class = fm.binary_metrics([1, 1, 1], [0.2, 0.5, 0.9])
    assert one_class["auc"] is None and one_class["recall"] == pytest.approx(2 / 3)
    with pytest.raises(fm.MetricsError, match="0 or 1"):
        fm.binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(fm.MetricsError, match="labels but"):
        fm.binary_metrics([0, 1], [0.1])


def test_multiclass_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 400).astype(float)
    raw = rng.random((400, 3)) + np.eye(3)[y.astype(int)] * 0.5
    proba = raw / raw.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1).astype(float)
    m = fm.multiclass_metrics(y, pred, {float(c): proba[:, c] for c in range(3)})
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert m["micro_f1"] == pytest.approx(sk.f1_score(y, pred, average="micro"))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(y, pred, average="weighted"))
    assert m["confusion_matrix"]["matrix"] == sk.confusion_matrix(y, pred).tolist()
    assert m["log_loss"] == pytest.approx(sk.log_loss(y, proba), abs=1e-12)
    assert m["auc_ovr_macro"] == pytest.approx(sk.roc_auc_score(y, proba, multi_class="ovr"), abs=1e-12)


def test_multiclass_evaluation_takes_text_classes_as_the_models_write_them() -> None:
    """A multi-class model trained on text labels writes score_<class> columns and a text `pred` column
    (`hetero_lr.scores_table`, SecureBoost the same); evaluate gives scikit-learn's figures on them."""
    from fedbench.components.builtin.hetero_lr import scores_table

    rng = np.random.default_rng(4)
    names = np.array(["high", "low", "mid"])
    truth = rng.integers(0, 3, 300)
    raw = rng.random((300, 3)) + np.eye(3)[truth] * 0.6
    proba = raw / raw.sum(axis=1, keepdims=True)
    table = scores_table(pd.Series(range(300)), pd.Series(names[truth]), proba, list(names), 0.5)
    m = evaluate_table(table, EvaluateParams(task="multiclass"))
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(names[truth], table["pred"]))
    assert m["confusion_matrix"]["labels"] == ["high", "low", "mid"]
    assert m["auc_ovr_macro"] == pytest.approx(
        sk.roc_auc_score(names[truth], proba, multi_class="ovr", labels=list(names)), abs=1e-12
    )
    assert m["log_loss"] == pytest.approx(sk.log_loss(names[truth], proba, labels=list(names)), abs=1e-12)
    without_pred = evaluate_table(table.drop(columns="pred"), EvaluateParams(task="multiclass"))
    assert without_pred["accuracy"] == m["accuracy"]


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=300)
    pred = np.round(y + rng.normal(0, 0.5, 300), 1)
    m = fm.regression_metrics(y, pred)
    assert m["mae"] == pytest.approx(sk.mean_absolute_error(y, pred))
    assert m["mse"] == pytest.approx(sk.mean_squared_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(sk.r2_score(y, pred))
    assert fm.regression_metrics([2.0, 2.0], [2.0, 2.0])["r2"] == 1.0


def test_evaluate_table_reads_columns_by_param_and_names_missing_ones() -> None:
    table = pd.DataFrame({"id": ["a", "b", "c"], "y": [0.0, 1.0, 2.0], "score_0": [0.8, 0.1, 0.2]})
    table["score_1"], table["score_2"] = [0.1, 0.7, 0.2], [0.1, 0.2, 0.6]
    m = evaluate_table(table, EvaluateParams(task="multiclass"))
    assert m["accuracy"] == 1.0
    with pytest.raises(fedbench.FedbenchError, match="no score column 'p'"):
        evaluate_table(table, EvaluateParams(score="p"))


def test_assign_fractions_and_stratification_in_process() -> None:
    labels = (np.arange(1000) % 10 == 0).astype(float)
    codes = assign(1000, SplitParams(validation=0.2, test=0.1, label="y"), labels)
    assert np.bincount(codes, minlength=3).tolist() == [700, 200, 100]
    for code in (0, 1, 2):
        assert labels[codes == code].mean() == pytest.approx(0.1)
    again = assign(1000, SplitParams(validation=0.2, test=0.1), None)
    assert np.bincount(again).tolist() == [700, 200, 100]
    assert not np.array_equal(again, assign(1000, SplitParams(validation=0.2, test=0.1, seed=1), None))
    with pytest.raises(fedbench.FedbenchError, match="leave rows to train"):
        components.get("split").validate_params({"validation": 0.6, "test": 0.4})


def test_the_host_cannot_replay_the_guests_stratified_draw_from_the_public_seed() -> None:
    """Drawn from the public seed, a stratified assignment lets the host test guesses of the guest's labels
    (each class's draw is a known pattern over that class's rows in ID order); the guest keys the seed with a
    key only its node holds, so the host's replay with the seed does not give what it received."""
    rng = np.random.default_rng(11)
    ids = [f"c{i:04d}" for i in range(300)]
    labels = rng.integers(0, 2, 300)
    guest = pd.DataFrame({"id": ids, "y": labels})
    host = pd.DataFrame({"id": ids, "z": np.arange(300)})
    params = {"validation": 0.3, "test": 0.2, "label": "y", "seed": 0}
    out = components.simulate("split", {"guest": {"data": guest}, "host": {"data": host}}, **params)
    received = np.zeros(300, dtype=np.int8)
    for code, name in enumerate(("train", "validation", "test")):
        received[out["host"][name]["z"].to_numpy()] = code
    replayed = assign_by_id(guest, SplitParams(**params), labels)
    assert not np.array_equal(received, replayed), "the host replayed the guest's draw from the seed"
    for code, share in ((1, 0.3), (2, 0.2)):
        assert abs((received == code).mean() - share) < 0.01, "still the shares asked for"


def test_a_seed_splits_the_same_ids_alike_whatever_order_the_psi_left_them_in() -> None:
    rng = np.random.default_rng(5)
    ids = [f"c{i:04d}" for i in range(400)]
    guest = pd.DataFrame({"id": ids, "y": rng.integers(0, 2, 400), "x": rng.normal(size=400)})
    host = pd.DataFrame({"id": ids, "z": np.arange(400)})

    def split_of(order: np.ndarray) -> dict[str, set[str]]:
        tables = {"guest": {"data": guest.iloc[order]}, "host": {"data": host.iloc[order]}}
        out = components.simulate("split", tables, validation=0.25, test=0.1, label="y", seed=3)
        for name in ("train", "validation", "test"):
            assert list(out["guest"][name]["id"]) == list(out["host"][name]["id"])
        return {name: set(out["guest"][name]["id"]) for name in ("train", "validation", "test")}

    first, second = split_of(np.arange(400)), split_of(rng.permutation(400))
    assert first == second and len(first["validation"]) == 100


def _scores(seed: int) -> pd.DataFrame:
    """A scores table with ties: id, y, score."""
    r = np.random.default_rng(seed)
    labels = r.integers(0, 2, 300)
    scores = np.round(np.clip(0.3 * labels + r.normal(0.35, 0.2, 300), 0.01, 0.99), 2)
    return pd.DataFrame({"id": [f"s{i}" for i in range(300)], "y": labels, "score": scores})


# ----- between two real nodes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fed(shared_sandbox: Federation):
    """Guest `g` (id, y ~20% positive, x) and host `h` (id, z) on the same ids in the same order; host `short`
    has fewer rows; guest `sc` / `sc_val` are scores tables (project `es` of the suite's shared sandbox)."""
    root = shared_sandbox.root
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    rng = np.random.default_rng(11)
    ids = [f"c{i:04d}" for i in range(N)]
    y = (rng.random(N) < 0.2).astype(int)
    guest.datasets.upload(
        pd.DataFrame({"id": ids, "y": y, "x": rng.normal(size=N)}), name="g", id_column="id", label_column="y"
    )
    host.datasets.upload(pd.DataFrame({"id": ids, "z": np.arange(N)}), name="h", id_column="id")
    host.datasets.upload(pd.DataFrame({"id": ids[:-7], "z": np.arange(N - 7)}), name="short", id_column="id")
    for name, seed in (("sc", 1), ("sc_val", 2)):
        guest.datasets.upload(_scores(seed), name=name, id_column="id", label_column="y")
    guest.projects.propose("es", partners="host", datasets=["g", "sc", "sc_val"], jobs_per_day=1000)
    host.projects.accept("es", datasets=["h", "short"])
    return root


def test_split_puts_the_same_ids_in_the_same_split_on_both_sides(fed) -> None:
    guest = fedbench.connect(home=fed / "guest").project("es")
    host = fedbench.connect(home=fed / "host").project("es")
    run = guest.run(
        "split", data={"guest": "g", "host": "h"}, validation=0.25, test=0.15, label="y", seed=3
    ).wait(show_progress=False)
    theirs = host.run_by_id(run.job_id)
    sizes = {}
    for name in ("train", "validation", "test"):
        ours, their = run.output(name).to_pandas(), theirs.output(name).to_pandas()
        assert list(ours["id"]) == list(their["id"])
        assert list(their.columns) == ["id", "z"]
        sizes[name] = len(ours)
        assert abs(ours["y"].mean() - 0.2) < 0.03, f"{name} keeps the positive rate"
    assert sum(sizes.values()) == N
    assert abs(sizes["validation"] - 0.25 * N) <= 2 and abs(sizes["test"] - 0.15 * N) <= 2

    plain = guest.run("split", data={"guest": "g", "host": "h"}, stratify=False).wait(show_progress=False)
    empty = plain.output("test").to_pandas()
    assert len(empty) == 0 and list(empty.columns) == list(plain.output("train").to_pandas().columns)
    assert len(plain.output("validation").to_pandas()) == round(0.2 * N)


def test_split_fails_on_both_sides_when_rows_do_not_align(fed) -> None:
    guest = fedbench.connect(home=fed / "guest").project("es")
    run = guest.run("split", data={"guest": "g", "host": "short"})
    with pytest.raises(RunFailed, match="not aligned"):
        run.wait(show_progress=False)
    for party in ("guest", "host"):
        assert job_states(fed, party, run.job_id) == ("failed", {"split": "failed"})
    host_view = fedbench.connect(home=fed / "host").project("es").run_by_id(run.job_id)
    assert "not aligned" in str(host_view.info["error"])


def test_evaluate_end_to_end_with_validation_side_by_side(fed) -> None:
    guest = fedbench.connect(home=fed / "guest")
    run = (
        guest.project("es")
        .run("evaluate", scores={"guest": "sc"}, validation_scores={"guest": "sc_val"}, bins=5)
        .wait(show_progress=False)
    )
    metrics = run.output("metrics").value()
    assert metrics["task"] == "binary" and set(metrics) == {"task", "train", "validation"}
    for part, seed in (("train", 1), ("validation", 2)):
        table = _scores(seed)
        assert metrics[part]["auc"] == pytest.approx(sk.roc_auc_score(table["y"], table["score"]))
        assert metrics[part]["log_loss"] == pytest.approx(sk.log_loss(table["y"], table["score"]))
    assert len(metrics["train"]["lift"]) == 5
    assert metrics["train"]["auc"] != metrics["validation"]["auc"]


def test_a_nodes_party_key_is_its_own_secret_file_stable_and_one_per_project(tmp_path) -> None:
    from fedbench.node.config import NodeHome

    home = NodeHome(tmp_path / "guest")
    first = home.party_key("project-a")
    assert oct(home.party_key_file.stat().st_mode & 0o777) == "0o600"
    assert home.party_key("project-a") == first and home.party_key("project-b") != first
    assert NodeHome(tmp_path / "host").party_key("project-a") != first, "another node, another key"
