"""The boosted-tree charts: feature importance as bars and one tree drawn, from a real (plaintext) booster.

The booster is the plaintext one `hetero_secureboost` reproduces; its dict form is what the component stores
(with host features named `host:0`...), so the charts are checked on the same shapes the dashboard draws.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedbench import ui
from fedbench.ml.trees import Booster
from fedbench.ui.errors import PlotError


@pytest.fixture(scope="module")
def booster() -> Booster:
    """Three trees of depth 3 on 400 rows where features 0 and 2 carry the label and 1 and 3 are noise."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + 0.6 * x[:, 2] + 0.3 * rng.normal(size=400) > 0).astype(int)
    names = ["income", "noise", "host:0", "host:1"]
    return Booster({"trees": 3, "max_depth": 3, "bins": 16}).fit(x, y, feature_names=names)


def _bar_labels(fig) -> list[str]:
    (ax,) = fig.axes
    return [t.get_text() for t in ax.get_yticklabels()]


def test_feature_importance_draws_one_bar_per_used_feature_largest_on_top(booster: Booster) -> None:
    importance = {k: v.tolist() for k, v in booster.feature_importance().items()}
    gain = dict(zip(booster.feature_names, importance["gain"], strict=True))
    used = [n for n, g in sorted(gain.items(), key=lambda kv: kv[1]) if g > 0]
    fig = ui.feature_importance(importance, booster.feature_names)
    (ax,) = fig.axes
    assert _bar_labels(fig) == used, "the features splits use, smallest gain at the bottom"
    assert [round(p.get_width(), 6) for p in ax.patches] == [round(gain[n], 6) for n in used]
    assert gain["income"] == max(gain.values()) and _bar_labels(fig)[-1] == "income"
    assert f"{len(used)} of 4 features used" in ax.get_title()
    colours = {label: bar.get_facecolor() for label, bar in zip(_bar_labels(fig), ax.patches, strict=True)}
    assert colours["host:0"] != colours["income"], "the partner's features stand apart"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "your features",
        "partner's (anonymous ids)",
    ]

    by_splits = ui.feature_importance(importance, booster.feature_names, kind="split", top=1)
    (ax,) = by_splits.axes
    top = max(zip(importance["split"], booster.feature_names, strict=True))
    assert _bar_labels(by_splits) == [top[1]] and ax.patches[0].get_width() == top[0]
    assert "number of splits" in ax.get_title()


def test_feature_importance_refuses_what_it_cannot_draw_in_words() -> None:
    with pytest.raises(PlotError, match="every tree is a single leaf"):
        ui.feature_importance({"gain": [0.0, 0.0]}, ["a", "b"])
    with pytest.raises(PlotError, match="3 values but there are 2 feature names"):
        ui.feature_importance({"gain": [1.0, 2.0, 3.0]}, ["a", "b"])
    with pytest.raises(PlotError, match="'gain' or 'split'"):
        ui.feature_importance({"gain": [1.0]}, ["a"], kind="cover")


def _texts(fig) -> list[str]:
    (ax,) = fig.axes
    return [t.get_text() for t in ax.texts]


def test_tree_view_draws_splits_with_features_and_thresholds_and_leaves_with_values(booster: Booster) -> None:
    model = booster.to_dict()
    tree = model["trees"][0][0]
    names = model["feature_names"]
    texts = _texts(ui.tree_view(tree, names))
    inner = [i for i, f in enumerate(tree["feature"]) if f >= 0]
    leaves = [i for i, f in enumerate(tree["feature"]) if f < 0]
    for node in inner:
        rule = f"{names[tree['feature'][node]]}: bin ≤ {tree['bin'][node]}\n{tree['count'][node]:,} rows"
        assert any(t.startswith(rule) for t in texts), rule
    for node in leaves:
        assert f"leaf {tree['value'][node]:+.3f}\n{tree['count'][node]:,} rows" in texts
    assert texts.count("yes") == texts.count("no") == len(inner), "each split's two branches are named"
    assert any(t.startswith("host:") for t in texts), "a host feature shows by its anonymous id"

    edges = model["binner"]["edges"]
    root = tree["feature"][0]
    valued = _texts(ui.tree_view(tree, names, edges=edges))
    cut = edges[root][tree["bin"][0]]
    threshold = f"{names[root]} < {cut:,.0f}" if abs(cut) >= 1000 else f"{names[root]} < {cut:.4g}"
    assert any(t.startswith(threshold) for t in valued), "with the cut points, a threshold is a value"

    shallow = ui.tree_view(tree, names, max_depth=1)
    (ax,) = shallow.axes
    assert sum(t.startswith(names[root]) for t in _texts(shallow)) == 1
    assert "… deeper levels" in "".join(_texts(shallow)) and "go deeper than 1 level" in ax.get_title()


def test_tree_view_refuses_a_tree_it_cannot_draw_in_words(booster: Booster) -> None:
    tree = booster.to_dict()["trees"][0][0]
    with pytest.raises(PlotError, match="splits on feature"):
        ui.tree_view(tree, ["only one"])
    with pytest.raises(PlotError, match="missing"):
        ui.tree_view({"feature": [-1]}, ["a"])
