"""`statistics`, `preprocess` and `sample`: in-process against pandas/numpy (with every message the host receives
inspected), and between two real nodes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import Federation

import fedbench
from fedbench.client.runs import RunFailed
from fedbench.components import RecordedMessage, RoleFailed, get, simulate
from fedbench.components.builtin.preprocess import PreprocessError, apply_state
from fedbench.components.builtin.sample import SampleParams, draw

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

N = 240


def _tables(seed: int, n: int = N) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aligned guest (id, y ~25% positive, a, b, c with NaNs, k categorical) and host (id, u, v, w) tables."""
    rng = np.random.default_rng(seed)
    ids = [f"r{i:04d}" for i in range(n)]
    a = rng.normal(size=n)
    b = 0.6 * a + rng.normal(size=n)
    c = rng.gamma(2.0, 3.0, size=n)
    c[rng.random(n) < 0.1] = np.nan
    y = (a + rng.normal(size=n) > 0.7).astype(float)
    guest = pd.DataFrame({"id": ids, "y": y, "a": a, "b": b, "c": c, "k": rng.integers(0, 6, n)})
    u = -0.5 * a + rng.normal(size=n)
    v = rng.exponential(2.0, size=n) + 0.3 * b
    w = rng.integers(0, 30, n).astype(float)
    host = pd.DataFrame({"id": ids, "u": u, "v": v, "w": w})
    return guest, host


def _host_received(record: list[RecordedMessage]) -> list[tuple[str, Any]]:
    """Every message the host received in a simulation, as (key, payload)."""
    return [(m.key, m.payload) for m in record if m.receiver == "host"]


# ----- statistics ---------------------------------------------------------------------------------------------


def _check_summary(summary: dict[str, Any], table: pd.DataFrame, features: list[str]) -> None:
    assert list(summary) == features
    for name in features:
        column = table[name].astype(float)
        got = summary[name]
        assert got["count"] == column.notna().sum()
        assert got["missing_rate"] == pytest.approx(column.isna().mean())
        assert got["unique"] == column.nunique()
        for stat in ("mean", "std", "min", "max"):
            assert got[stat] == pytest.approx(getattr(column, stat)(), rel=1e-12)
        for q in (5, 25, 50, 75, 95):
            assert got[f"q{q:02d}"] == pytest.approx(column.quantile(q / 100), rel=1e-12)


def test_statistics_in_process_match_pandas_and_numpy_and_host_sees_only_ciphertexts() -> None:
    guest, host = _tables(1)
    record: list[RecordedMessage] = []
    outputs = simulate("statistics", {"guest": guest, "host": host}, record=record, key_bits=1024)
    received = _host_received(record)
    g, h = outputs["guest"]["metrics"], outputs["host"]["metrics"]
    _check_summary(g["features"], guest, ["a", "b", "c", "k"])
    _check_summary(h["features"], host, ["u", "v", "w"])
    assert "correlation" not in h and g["label"] == "y"
    corr = g["correlation"]
    assert corr["guest_features"] == ["a", "b", "c", "k"] and corr["host_features"] == ["u", "v", "w"]
    full = np.corrcoef(np.column_stack([guest[["a", "b", "k"]], host[["u", "v", "w"]]]).T)[:3, 3:]
    matrix = np.array(corr["matrix"], dtype=float)
    assert np.allclose(matrix[[0, 1, 3]], full, atol=1e-6)
    z_c = ((guest["c"] - guest["c"].mean()) / guest["c"].std()).fillna(0.0)
    z_h = (host[["u", "v", "w"]] - host[["u", "v", "w"]].mean()) / host[["u", "v", "w"]].std()
    assert np.allclose(matrix[2], z_c.to_numpy() @ z_h.to_numpy() / (N - 1), atol=1e-6)

    (rows,), (encrypted,) = (
        [p for k, p in received if k.endswith("rows")],
        [p for k, p in received if k.endswith("encrypted")],
    )
    assert len(received) == 2 and rows == N
    assert set(encrypted) == {"public_key", "vectors"}
    assert {"n", "precision_bits"} <= set(encrypted["public_key"]) and "hs" not in encrypted["public_key"]
    for vector in encrypted["vectors"]:
        assert set(vector) == {"n_bits", "key_id", "exponent", "bound", "data"}
        assert isinstance(vector["data"], bytes) and len(vector["data"]) == N * 256, "N ciphertexts mod n^2"


def test_statistics_without_correlation_and_with_a_constant_feature() -> None:
    guest, host = _tables(2, 50)
    host["w"] = 3.0
    record: list[RecordedMessage] = []
    off = simulate("statistics", {"guest": guest, "host": host}, record=record, correlation=False, label="y")
    assert "correlation" not in off["guest"]["metrics"]
    received = _host_received(record)
    assert [k for k, _ in received] and all(k.endswith("rows") for k, _ in received)
    on = simulate("statistics", {"guest": guest, "host": host}, key_bits=1024)
    matrix = on["guest"]["metrics"]["correlation"]["matrix"]
    assert [row[2] for row in matrix] == [None] * 4 and all(row[0] is not None for row in matrix)


# ----- preprocess ---------------------------------------------------------------------------------------------

PRE: dict[str, Any] = {
    "fill": "median",
    "cap_low": 0.05,
    "cap_high": 0.95,
    "scale": "standard",
    "categorical": ["k", "w"],
    "max_categories": 4,
}


def _expected(train: pd.DataFrame, other: pd.DataFrame, name: str) -> pd.Series:
    """The numeric transform written out in pandas: median fill, 5/95% caps, standard scaling, fit on train."""
    fitted = train[name].fillna(train[name].median())
    low, high = fitted.quantile(0.05), fitted.quantile(0.95)
    capped = fitted.clip(low, high)
    return (other[name].fillna(train[name].median()).clip(low, high) - capped.mean()) / capped.std(ddof=0)


def test_preprocess_fits_and_the_fitted_state_reproduces_the_training_transform() -> None:
    guest, host = _tables(3)
    fit = simulate("preprocess", {"guest": guest, "host": host}, **PRE)
    state = fit["guest"]["model"]
    train_out = fit["guest"]["data"]
    assert list(train_out.columns[:2]) == ["id", "y"] and train_out["y"].equals(guest["y"])
    for name in ("a", "b", "c"):
        assert np.allclose(train_out[name], _expected(guest, guest, name), atol=1e-12)
    top = guest["k"].value_counts()
    top = sorted(top.items(), key=lambda item: (-item[1], str(item[0])))[:4]
    assert [c for c in train_out.columns if c.startswith("k=")] == [f"k={v}" for v, _ in top] + ["k=other"]
    assert (train_out.filter(like="k=").sum(axis=1) == 1).all(), "each row lands in exactly one column"
    host_out = fit["host"]["data"]
    assert len([c for c in host_out.columns if c.startswith("w=")]) == 5 and "u" in host_out

    other_g, other_h = _tables(4, 90)
    refit = simulate("preprocess", {"guest": other_g, "host": other_h}, scale="none", max_categories=1)
    assert refit["guest"]["model"] != state, "sanity: params alone fit a new state"
    fitted = {"guest": state, "host": fit["host"]["model"]}
    applied = simulate(
        "preprocess",
        {
            "guest": {"data": other_g, "fitted": fitted["guest"]},
            "host": {"data": other_h, "fitted": fitted["host"]},
        },
        scale="none",
        max_categories=1,
    )
    direct = applied["guest"]["data"]
    assert applied["guest"]["model"] == state and list(direct.columns) == list(train_out.columns)
    pd.testing.assert_frame_equal(direct, apply_state(other_g, state))
    assert np.allclose(applied["host"]["data"]["u"], _expected(host, other_h, "u"), atol=1e-12)
    with pytest.raises(RoleFailed, match="lacks the fitted features") as failed:
        simulate(
            "preprocess",
            {
                "guest": {"data": other_g.drop(columns="b"), "fitted": fitted["guest"]},
                "host": {"data": other_h, "fitted": fitted["host"]},
            },
        )
    assert isinstance(failed.value.error, PreprocessError), "both parties refuse, each with this reason"
    for name in ("a", "b", "c"):
        assert np.allclose(direct[name], _expected(guest, other_g, name), atol=1e-12)
    for value, _ in top:
        assert direct[f"k={value}"].tolist() == (other_g["k"] == value).astype(float).tolist()


def test_preprocess_without_params_keeps_the_table() -> None:
    guest, host = _tables(5, 40)
    out = simulate("preprocess", {"guest": guest, "host": host})
    pd.testing.assert_frame_equal(out["guest"]["data"], guest, check_dtype=False)
    pd.testing.assert_frame_equal(out["host"]["data"], host, check_dtype=False)


# ----- sample -------------------------------------------------------------------------------------------------


def test_draw_random_stratified_and_upsampling() -> None:
    labels = (np.arange(1000) % 10 == 0).astype(float)
    down = draw(1000, SampleParams(fraction=0.3), labels)
    assert len(down) == 300 and len(set(down)) == 300 and (np.diff(down) > 0).all()
    ratio = draw(1000, SampleParams(method="stratified", ratio=2.0), labels)
    assert labels[ratio].sum() == 100 and (labels[ratio] == 0).sum() == 200
    up = draw(1000, SampleParams(method="stratified", ratio=3.0, replace=True), labels)
    assert (labels[up] == 0).sum() == 900 and labels[up].sum() == 300
    assert set(np.flatnonzero(labels)) <= set(up.tolist()), "upsampling keeps every original row"
    shares = draw(1000, SampleParams(method="stratified", fraction=0.5), labels)
    assert labels[shares].sum() == 50 and len(shares) == 500
    with pytest.raises(fedbench.FedbenchError, match="replace=True"):
        draw(1000, SampleParams(fraction=2.0), labels)
    assert len(draw(1000, SampleParams(fraction=2.0, replace=True), labels)) == 2000


# ----- between two real nodes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fed(shared_sandbox: Federation):
    """Guest `sps_g` and host `sps_h` aligned (`_tables(7)`); guest `sps_g2` / host `sps_h2` other aligned rows;
    host `sps_short` (project `sps` of the suite's shared sandbox)."""
    root = shared_sandbox.root
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    g, h = _tables(7)
    g2, h2 = _tables(8, 120)
    guest.datasets.upload(g, name="sps_g", id_column="id", label_column="y")
    guest.datasets.upload(g2, name="sps_g2", id_column="id", label_column="y")
    host.datasets.upload(h, name="sps_h", id_column="id")
    host.datasets.upload(h2, name="sps_h2", id_column="id")
    host.datasets.upload(h.iloc[:-5], name="sps_short", id_column="id")
    guest.projects.propose("sps", partners="host", datasets=["sps_g", "sps_g2"], jobs_per_day=1000)
    host.projects.accept("sps", datasets=["sps_h", "sps_h2", "sps_short"])
    return root


def _projects(root):
    return (
        fedbench.connect(home=root / "guest").project("sps"),
        fedbench.connect(home=root / "host").project("sps"),
    )


def test_statistics_between_nodes(fed) -> None:
    guest, host = _projects(fed)
    run = guest.run("statistics", data={"guest": "sps_g", "host": "sps_h"}, key_bits=1024).wait(
        show_progress=False
    )
    g, h = _tables(7)
    metrics = run.output("metrics").value()
    _check_summary(metrics["features"], g, ["a", "b", "c", "k"])
    _check_summary(host.run_by_id(run.job_id).output("metrics").value()["features"], h, ["u", "v", "w"])
    full = np.corrcoef(np.column_stack([g[["a", "b"]], h[["u", "v", "w"]]]).T)[:2, 2:]
    assert np.allclose(np.array(metrics["correlation"]["matrix"][:2], dtype=float), full, atol=1e-6)


def test_preprocess_fitted_state_between_nodes(fed) -> None:
    guest, host = _projects(fed)
    fit = guest.run("preprocess", data={"guest": "sps_g", "host": "sps_h"}, **PRE).wait(show_progress=False)
    applied = guest.run(
        "preprocess", data={"guest": "sps_g2", "host": "sps_h2"}, fitted=fit.output("model")
    ).wait(show_progress=False)
    g, h = _tables(7)
    g2, h2 = _tables(8, 120)
    ours = applied.output("data").to_pandas()
    for name in ("a", "b", "c"):
        assert np.allclose(ours[name], _expected(g, g2, name), atol=1e-12)
    theirs = host.run_by_id(applied.job_id).output("data").to_pandas()
    assert np.allclose(theirs["u"], _expected(h, h2, "u"), atol=1e-12)
    assert len([c for c in theirs.columns if c.startswith("w=")]) == 5
    with pytest.raises(fedbench.FedbenchError):
        guest.run("preprocess", data={"guest": "sps_g2", "host": "sps_h2"}, fitted=fit.output("data")).wait(
            show_progress=False
        )


def test_sample_keeps_the_same_ids_on_both_sides(fed) -> None:
    guest, host = _projects(fed)
    g, _ = _tables(7)
    for params in (
        {"method": "stratified", "ratio": 1.0, "seed": 4},
        {"method": "stratified", "ratio": 1.0, "replace": True},
        {"fraction": 1.5, "replace": True, "seed": 2},
    ):
        run = guest.run("sample", data={"guest": "sps_g", "host": "sps_h"}, **params).wait(
            show_progress=False
        )
        ours = run.output("data").to_pandas()
        theirs = host.run_by_id(run.job_id).output("data").to_pandas()
        assert list(ours["id"]) == list(theirs["id"]) and list(theirs.columns) == ["id", "u", "v", "w"]
        metrics = run.output("metrics").value()
        assert metrics["before"] == {str(k): int(v) for k, v in g["y"].value_counts().sort_index().items()}
        after = ours["y"].value_counts()
        assert metrics["after"] == {str(k): int(v) for k, v in after.sort_index().items()}
        if "ratio" in params:
            assert after[0.0] == after[1.0]
        if params.get("replace"):
            assert ours["id"].duplicated().any()
    short = guest.run("sample", data={"guest": "sps_g", "host": "sps_short"})
    with pytest.raises(RunFailed, match="not aligned"):
        short.wait(show_progress=False)


def test_statistics_host_refuses_vectors_whose_sums_could_carry_its_rows() -> None:
    """A guest choosing its plaintexts (Enc(2^(w i)) for row i, one vector per slice of rows) could read our
    values from the sums: the host bounds what its returned sums could carry, from its own numbers."""
    from fedbench.components.builtin.statistics import StatisticsRefused, carried_values
    from fedbench.crypto.paillier import generate_keypair

    _, host_table = _tables(4, 200)
    public, private = generate_keypair(1024)

    def rogue_guest(ctx: Any, params: Any) -> None:
        peer = ctx.peer("host")
        peer.recv("features")
        peer.send("rows", len(host_table))
        vectors = [private.encrypt_encoded([1 << (30 * (i % 30)) for i in range(200)], 0).to_dict()] * 7
        peer.send("encrypted", {"public_key": public.to_dict(), "vectors": vectors})

    statistics = get("statistics")
    rogue = replace(statistics, functions={**statistics.functions, "guest": rogue_guest})
    with pytest.raises(RoleFailed) as failed:
        simulate(rogue, {"guest": host_table, "host": host_table}, key_bits=1024)
    errors = [failed.value.errors["host"]]
    assert failed.value.party == "host"
    assert errors and isinstance(errors[0], StatisticsRefused), errors
    assert "could carry" in str(errors[0]) and "200 rows" in str(errors[0])
    q = np.rint(np.ones((200, 1)) * 2**20 * 3).astype(np.int64)
    assert carried_values(1024, 1, q) == 1024 // 23 and carried_values(2048, 2, q) == 2 * (2048 // 23)
