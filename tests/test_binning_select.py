"""`binning` and `select`: WOE/IV against a plaintext pandas computation on the joined data, small-bin merging,
transforms, and IV-based selection between two real nodes (each party learning only its own kept features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import Federation

import fedbench
from fedbench.components.builtin.binning import cut_points, fit_bins, woe_iv
from fedbench.pipeline import Pipeline

N = 400
MIN_COUNT = 25

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")


def _data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Guest: id, y, g_strong (drives y), g_noise; host: id, h_strong (drives y), h_noise (with missing values),
    h_skew (a tail of few rows that quantile bins would give a tiny bin)."""
    rng = np.random.default_rng(21)
    ids = [f"r{i:04d}" for i in range(N)]
    g_strong, h_strong = rng.normal(size=N), rng.normal(size=N)
    y = (g_strong + h_strong + rng.normal(scale=0.7, size=N) > 0.3).astype(float)
    h_noise = rng.normal(size=N)
    h_noise[rng.random(N) < 0.1] = np.nan
    h_skew = np.where(rng.random(N) < 0.03, 100.0 + rng.random(N), rng.random(N))
    guest = pd.DataFrame({"id": ids, "y": y, "g_strong": g_strong, "g_noise": rng.normal(size=N)})
    host = pd.DataFrame({"id": ids, "h_strong": h_strong, "h_noise": h_noise, "h_skew": h_skew})
    return guest, host


def _plain_woe_iv(x: pd.Series, y: pd.Series, bins: dict) -> tuple[list[float], float, list[int], list[int]]:
    """WOE/IV in pandas from the model's cut points: left-closed bins, missing values to `missing_bin`."""
    edges = [-np.inf, *bins["cuts"], np.inf]
    index = pd.cut(x, edges, right=False, labels=False).fillna(bins["missing_bin"]).astype(int)
    frame = pd.DataFrame({"bin": index, "y": y})
    k = len(bins["counts"])
    events = frame.groupby("bin")["y"].sum().reindex(range(k), fill_value=0)
    counts = frame.groupby("bin")["y"].size().reindex(range(k), fill_value=0)
    e, ne = events.to_numpy(float), (counts - events).to_numpy(float)
    zero = (e == 0) | (ne == 0)
    e_s, ne_s = np.where(zero, e + 0.5, e), np.where(zero, ne + 0.5, ne)
    pe, pn = e_s / e.sum(), ne_s / ne.sum()
    woe = np.log(pe / pn)
    return list(woe), float(((pe - pn) * woe).sum()), [int(v) for v in events], [int(v) for v in counts]


def test_fit_bins_merges_small_bins_and_keeps_missing_apart() -> None:
    x = np.array([0.0] * 50 + [1.0] * 3 + [2.0] * 50 + [np.nan] * 30)
    bins = fit_bins(x, "equal_width", 4, 10)
    assert sum(bins["counts"]) == len(x) and min(bins["counts"]) >= 10
    assert bins["missing_bin"] == len(bins["counts"]) - 1 and bins["counts"][-1] == 30
    few_missing = fit_bins(np.array([*range(40), np.nan]), "quantile", 4, 10)
    assert few_missing["missing_bin"] == 0 and sum(few_missing["counts"]) == 41
    assert list(cut_points(np.arange(10.0), "equal_width", 3)) == pytest.approx([3.0, 6.0])
    woe, iv = woe_iv([5, 5], [10, 30])
    assert iv > 0 and woe[0] > 0 > woe[1]


@pytest.fixture(scope="module")
def fed(shared_sandbox: Federation):
    """Guest `bs_g` and host `bs_h` (`_data()`) in project `bs` of the suite's shared sandbox."""
    root = shared_sandbox.root
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    g, h = _data()
    guest.datasets.upload(g, name="bs_g", id_column="id", label_column="y")
    host.datasets.upload(h, name="bs_h", id_column="id")
    guest.projects.propose("bs", partners="host", datasets=["bs_g"], jobs_per_day=1000)
    host.projects.accept("bs", datasets=["bs_h"])
    return root


def _projects(root):
    return (
        fedbench.connect(home=root / "guest").project("bs"),
        fedbench.connect(home=root / "host").project("bs"),
    )


@pytest.fixture(scope="module")
def woe_run(fed):
    guest, host = _projects(fed)
    run = guest.run(
        "binning",
        data={"guest": "bs_g", "host": "bs_h"},
        key_bits=1024,
        min_bin_count=MIN_COUNT,
        transform="woe",
    ).wait(show_progress=False)
    return run, host.run_by_id(run.job_id)


def test_woe_and_iv_match_plaintext_for_guest_and_host_features(woe_run) -> None:
    run, host_run = woe_run
    g, h = _data()
    joined = g.merge(h, on="id")
    model = run.output("model").value()
    host_model = host_run.output("model").value()
    assert model["label"] == "y" and set(model["features"]) == {"g_strong", "g_noise"}
    assert set(model["host_features"]) == {"h_strong", "h_noise", "h_skew"}
    for name, bins in model["features"].items():
        woe, iv, events, counts = _plain_woe_iv(joined[name], joined["y"], bins)
        assert bins["counts"] == counts and bins["events"] == events
        assert bins["woe"] == pytest.approx(woe) and model["iv"]["guest"][name] == pytest.approx(iv)
        assert set(bins["cuts"]) <= set(cut_points(joined[name].dropna().to_numpy(), "quantile", 10))
    for name, theirs in model["host_features"].items():
        bins = host_model["features"][name]
        woe, iv, events, counts = _plain_woe_iv(joined[name], joined["y"], bins)
        assert theirs["counts"] == counts == bins["counts"] and theirs["events"] == events
        assert theirs["woe"] == pytest.approx(woe) == bins["woe"]
        assert model["iv"]["host"][name] == pytest.approx(iv)
        assert "cuts" not in theirs, "the guest never sees the host's bin edges"
    assert "iv" not in host_model and "host_features" not in host_model
    assert model["iv"]["guest"]["g_strong"] > 0.3 > model["iv"]["guest"]["g_noise"]
    assert model["iv"]["host"]["h_strong"] > 0.3 > model["iv"]["host"]["h_noise"]
    ranked = run.output("metrics").value()["iv"]
    assert [r["iv"] for r in ranked] == sorted((r["iv"] for r in ranked), reverse=True)
    assert len(ranked) == 5


def test_small_bins_are_merged_before_the_host_returns_sums(fed, woe_run) -> None:
    run, host_run = woe_run
    noise = host_run.output("model").value()["features"]["h_noise"]
    assert noise["missing_bin"] == len(noise["counts"]) - 1, "the missing values are a bin of their own"
    guest, _ = _projects(fed)
    tail = int((_data()[1]["h_skew"] >= 100).sum())
    assert 0 < tail < MIN_COUNT
    received = {}
    for min_count in (1, MIN_COUNT):
        wide = guest.run(
            "binning",
            data={"guest": "bs_g", "host": "bs_h"},
            key_bits=1024,
            method="equal_width",
            min_bin_count=min_count,
        ).wait(show_progress=False)
        received[min_count] = wide.output("model").value()["host_features"]
    assert tail in received[1]["h_skew"]["counts"], "without a minimum, the tail is a bin of its own"
    for name, theirs in received[MIN_COUNT].items():
        assert min(theirs["counts"]) >= MIN_COUNT, f"{name}: a bin below min_bin_count reached the guest"
        assert sum(theirs["counts"]) == N
    assert tail not in received[MIN_COUNT]["h_skew"]["counts"], "the small tail was merged into a neighbour"


def test_transform_outputs(fed, woe_run) -> None:
    run, host_run = woe_run
    g, h = _data()
    model, host_model = run.output("model").value(), host_run.output("model").value()
    woe = run.output("data").to_pandas()
    assert list(woe.columns) == list(g.columns) and list(woe["y"]) == list(g["y"])
    for name, bins in model["features"].items():
        assert set(np.round(woe[name], 9)) <= set(np.round(bins["woe"], 9))
    host_woe = host_run.output("data").to_pandas()
    assert list(host_woe.columns) == list(h.columns)
    for name, bins in host_model["features"].items():
        index = pd.cut(h[name], [-np.inf, *bins["cuts"], np.inf], right=False, labels=False)
        index = index.fillna(bins["missing_bin"]).astype(int)
        assert host_woe[name].to_numpy() == pytest.approx(np.asarray(bins["woe"])[index])

    guest, host = _projects(fed)
    indexed = guest.run(
        "binning",
        data={"guest": "bs_g", "host": "bs_h"},
        key_bits=1024,
        min_bin_count=MIN_COUNT,
        transform="bin",
    ).wait(show_progress=False)
    host_bins = host.run_by_id(indexed.job_id).output("data").to_pandas()
    skew = host_model["features"]["h_skew"]
    assert host_bins["h_skew"].max() == len(skew["counts"]) - 1
    assert np.bincount(host_bins["h_skew"]).tolist() == skew["counts"]
    plain = guest.run(
        "binning", data={"guest": "bs_g", "host": "bs_h"}, key_bits=1024, min_bin_count=MIN_COUNT
    )
    assert plain.wait(show_progress=False).output("data").to_pandas().equals(g)


def test_select_by_iv_threshold_and_top_k_changes_the_columns_downstream(fed) -> None:
    guest, host = _projects(fed)
    pipeline = (
        Pipeline("bin_select")
        .add(
            "binning",
            "binning",
            inputs={"data": {"guest": "bs_g", "host": "bs_h"}},
            key_bits=1024,
            min_bin_count=MIN_COUNT,
            transform="woe",
        )
        .add(
            "select",
            "select",
            inputs={
                "data": Pipeline.ref("binning", "data"),
                "binning_model": Pipeline.ref("binning", "model"),
            },
            iv_min=0.3,
        )
        .add("count", "row_count", inputs={"data": Pipeline.ref("select", "data")})
    )
    run = guest.run_pipeline(pipeline).wait(show_progress=False)
    host_run = host.run_by_id(run.job_id)
    ours = run.output("data", step="select").to_pandas()
    theirs = host_run.output("data", step="select").to_pandas()
    assert list(ours.columns) == ["id", "y", "g_strong"]
    assert list(theirs.columns) == ["id", "h_strong"]
    assert run.output("model", step="select").value()["features"] == ["g_strong"]
    assert host_run.output("model", step="select").value()["features"] == ["h_strong"]
    assert run.output("metrics", step="count").value()["rows"] == {"guest": N, "host": N}
    decisions = run.output("metrics", step="select").value()
    assert {r["feature"] for r in decisions["decisions"]} == {"g_strong", "g_noise"}
    assert {r["feature"]: r["passes_iv"] for r in decisions["host_by_iv"]}["h_strong"] is True

    top = guest.run(
        "select",
        data={"guest": "bs_g", "host": "bs_h"},
        binning_model=run.output("model", step="binning"),
        top_k=1,
    ).wait(show_progress=False)
    iv = run.output("model", step="binning").value()["iv"]
    best_party, best = max(((p, n) for p in iv for n in iv[p]), key=lambda pn: iv[pn[0]][pn[1]])
    guest_kept = top.output("model").value()["features"]
    host_kept = host.run_by_id(top.job_id).output("model").value()["features"]
    assert (guest_kept, host_kept) == (([best], []) if best_party == "guest" else ([], [best]))
    assert set(host_kept) <= {"h_strong", "h_noise", "h_skew"}, "the host learns only its own features"


def test_select_local_criteria_without_a_binning_model(fed) -> None:
    guest, host = _projects(fed)
    run = guest.run(
        "select",
        data={"guest": "bs_g", "host": "bs_h"},
        max_missing=0.05,
        keep=["g_noise", "h_noise", "h_skew"],
    ).wait(show_progress=False)
    assert run.output("model").value()["features"] == ["g_noise"]
    host_run = host.run_by_id(run.job_id)
    assert host_run.output("model").value()["features"] == ["h_skew"], "h_noise has 10% missing"
    assert list(host_run.output("data").to_pandas().columns) == ["id", "h_skew"]
    failed = guest.run("select", data={"guest": "bs_g", "host": "bs_h"}, iv_min=0.1)
    with pytest.raises(fedbench.FedbenchError, match="binning model"):
        failed.wait(show_progress=False)
