"""Tests of the demo data: the synthetic credit table, its vertical and horizontal splits, breast cancer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fedbench.datasets import (
    FEATURES,
    GUEST_FEATURES,
    HOST_FEATURES,
    breast_cancer_table,
    breast_cancer_vertical,
    credit_horizontal,
    credit_vertical,
    horizontal_split,
    make_credit,
    vertical_split,
)
from fedbench.datasets.credit import MISSING_RATES


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    return make_credit()


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return make_credit(2_000, seed=5)


def _rejoin(guest: pd.DataFrame, host: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    joined = guest.merge(host, on="id", how="inner")[columns]
    return joined.sort_values("id").reset_index(drop=True)


def _lr_auc(frame: pd.DataFrame, features: list[str], label: str = "default") -> float:
    x = frame[features].to_numpy(dtype=np.float64)
    y = frame[label].to_numpy()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    model = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000)
    )
    model.fit(x_train, y_train)
    return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))


# --- the credit table -------------------------------------------------------------------------------------


def test_same_seed_same_frame_and_other_seed_differs(small: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(make_credit(2_000, seed=5), small)
    other = make_credit(2_000, seed=6)
    assert not other[FEATURES].equals(small[FEATURES])
    assert not other["default"].equals(small["default"])


def test_columns_dtypes_and_ids(credit: pd.DataFrame) -> None:
    assert list(credit.columns) == ["id", *FEATURES, "default"]
    assert 24 <= len(FEATURES) <= 30
    assert sorted(GUEST_FEATURES + HOST_FEATURES) == sorted(FEATURES)
    assert len(credit) == 30_000
    assert pd.api.types.is_string_dtype(credit["id"])
    assert credit["id"].is_unique
    assert credit["id"].str.fullmatch(r"C\d{7}").all()
    assert credit["default"].dtype == np.int64
    assert set(credit["default"].unique()) == {0, 1}
    for name in FEATURES:
        assert pd.api.types.is_numeric_dtype(credit[name]), name
    for name in ["age", "n_cards", "n_inquiries_6m", "late_payments_6m", "late_payments_12m", "home_owner"]:
        assert credit[name].dtype == np.int64, name
    assert set(credit["home_owner"].unique()) == {0, 1}
    assert (credit["late_payments_12m"] >= credit["late_payments_6m"]).all()
    assert credit["age"].between(18, 100).all()


def test_amounts_are_skewed_and_correlated(credit: pd.DataFrame) -> None:
    assert credit["income"].mean() > 1.1 * credit["income"].median()
    assert credit["bill_amt_1"].corr(credit["bill_amt_2"]) > 0.8
    assert credit["credit_limit"].corr(credit["income"]) > 0.3
    assert (credit[[c for c in FEATURES if c.startswith(("bill_", "pay_"))]] >= 0).all().all()


def test_missing_values_only_where_intended(credit: pd.DataFrame) -> None:
    rates = credit.isna().mean()
    assert set(rates[rates > 0].index) == set(MISSING_RATES)
    for name in MISSING_RATES:
        assert 0.01 <= rates[name] <= 0.08, (name, rates[name])


def test_positive_rate(credit: pd.DataFrame) -> None:
    assert 0.20 <= credit["default"].mean() <= 0.25


def test_generation_at_full_size() -> None:
    """Its speed is measured in `benchmarks/timings.py`, not asserted here."""
    assert len(make_credit(30_000, seed=1)) == 30_000


def test_logistic_regression_auc_and_both_sides_carry_signal(credit: pd.DataFrame) -> None:
    guest, host = credit_vertical(overlap=1.0)
    joined = _rejoin(guest, host, list(credit.columns))
    auc_all = _lr_auc(joined, FEATURES)
    auc_guest = _lr_auc(joined, GUEST_FEATURES)
    auc_host = _lr_auc(joined, HOST_FEATURES)
    assert 0.75 <= auc_all <= 0.80
    assert auc_guest < auc_all - 0.02
    assert auc_host < auc_all - 0.02
    assert auc_guest > 0.65 and auc_host > 0.65


def test_bad_n_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="n_rows"):
        make_credit(0)


# --- vertical split ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [0.8, 0.35, 1.0])
def test_vertical_split_overlap_and_rejoin(small: pd.DataFrame, overlap: float) -> None:
    guest, host = vertical_split(small, overlap=overlap, seed=3)
    n = len(small)
    common = set(guest["id"]) & set(host["id"])
    assert len(common) == round(overlap * n)
    assert set(guest["id"]) | set(host["id"]) == set(small["id"])
    assert abs((len(guest) - len(common)) - (len(host) - len(common))) <= 1
    assert guest["id"].is_unique and host["id"].is_unique

    assert list(guest.columns) == ["id", "default", *GUEST_FEATURES]
    assert list(host.columns) == ["id", *HOST_FEATURES]
    assert not set(guest.columns[2:]) & set(host.columns[1:])
    assert "default" not in host.columns
    assert guest.dtypes.to_dict() == small[guest.columns].dtypes.to_dict()
    assert host.dtypes.to_dict() == small[host.columns].dtypes.to_dict()

    expected = small[small["id"].isin(common)].sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(_rejoin(guest, host, list(small.columns)), expected)


def test_vertical_split_shuffles_each_side_independently(small: pd.DataFrame) -> None:
    guest, host = vertical_split(small, overlap=1.0, seed=0)
    assert list(guest["id"]) != list(small["id"])
    assert list(host["id"]) != list(small["id"])
    assert list(guest["id"]) != list(host["id"])
    again_guest, _ = vertical_split(small, overlap=1.0, seed=0)
    pd.testing.assert_frame_equal(again_guest, guest)


def test_vertical_split_custom_and_fallback_features() -> None:
    frame = pd.DataFrame(
        {"key": ["a", "b", "c", "d"], "y": [0, 1, 0, 1], **{f"f{i}": range(4) for i in range(4)}}
    )
    guest, host = vertical_split(frame, id_column="key", label_column="y", overlap=1.0)
    assert list(guest.columns) == ["key", "y", "f0", "f1"]
    assert list(host.columns) == ["key", "f2", "f3"]
    guest, host = vertical_split(frame, id_column="key", label_column="y", host_features=["f3", "f0"])
    assert list(guest.columns) == ["key", "y", "f1", "f2"]
    assert list(host.columns) == ["key", "f0", "f3"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overlap": 0.0}, "overlap"),
        ({"overlap": 1.5}, "overlap"),
        ({"overlap": float("nan")}, "overlap"),
        ({"host_features": ["income", "shoe_size", "hair_colour"]}, "shoe_size.*hair_colour"),
        ({"host_features": ["income", "default"]}, "default"),
        ({"host_features": []}, "at least one"),
        ({"host_features": FEATURES}, "at least one"),
        ({"host_features": "income"}, "list"),
        ({"id_column": "customer"}, "customer"),
        ({"label_column": "target"}, "target"),
    ],
)
def test_vertical_split_rejects_bad_arguments(small: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vertical_split(small, **kwargs)


def test_vertical_split_rejects_duplicate_ids(small: pd.DataFrame) -> None:
    doubled = pd.concat([small.head(3), small.head(1)], ignore_index=True)
    with pytest.raises(ValueError, match="duplicate"):
        vertical_split(doubled)


def test_credit_vertical_default_overlap() -> None:
    guest, host = credit_vertical(n_rows=1_000, seed=2)
    assert len(set(guest["id"]) & set(host["id"])) == 800
    assert len(guest) == len(host) == 900


# --- horizontal split -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_parties", [2, 3, 7])
def test_horizontal_split_is_disjoint_and_complete(small: pd.DataFrame, n_parties: int) -> None:
    parts = horizontal_split(small, n_parties=n_parties, seed=1)
    assert len(parts) == n_parties
    sizes = [len(part) for part in parts]
    assert sum(sizes) == len(small) and max(sizes) - min(sizes) <= 1
    ids = pd.concat([part["id"] for part in parts])
    assert ids.is_unique and set(ids) == set(small["id"])
    for part in parts:
        assert list(part.columns) == list(small.columns)
    rejoined = pd.concat(parts).sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(rejoined, small.sort_values("id").reset_index(drop=True))


def test_horizontal_split_label_skew(small: pd.DataFrame) -> None:
    iid = [part["default"].mean() for part in horizontal_split(small, seed=1)]
    assert abs(iid[0] - iid[1]) < 0.08
    skewed = [part["default"].mean() for part in horizontal_split(small, seed=1, skew=1.0)]
    assert skewed[0] == 0.0 and skewed[1] > 0.4
    partial = [part["default"].mean() for part in horizontal_split(small, seed=1, skew=0.6)]
    assert skewed[0] < partial[0] < iid[0] and iid[1] < partial[1] < skewed[1]
    mixed = horizontal_split(small, seed=1, skew=1.0)[-1]["default"]
    assert not mixed.is_monotonic_increasing and not mixed.is_monotonic_decreasing


def test_horizontal_split_rejects_bad_arguments(small: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="n_parties"):
        horizontal_split(small, n_parties=0)
    with pytest.raises(ValueError, match="skew"):
        horizontal_split(small, skew=1.5)
    with pytest.raises(ValueError, match="label_column"):
        horizontal_split(small.drop(columns="default"), skew=0.5)


def test_credit_horizontal() -> None:
    parts = credit_horizontal(n_rows=999, seed=4, n_parties=3)
    assert [len(part) for part in parts] == [333, 333, 333]
    assert list(parts[0].columns) == ["id", *FEATURES, "default"]


# --- breast cancer ----------------------------------------------------------------------------------------


def test_breast_cancer_vertical_shapes_and_rejoin() -> None:
    guest, host = breast_cancer_vertical()
    assert guest.shape == (569, 12) and host.shape == (569, 21)
    assert list(guest.columns[:2]) == ["id", "y"] and host.columns[0] == "id"
    assert guest.columns[2] == "mean_radius" and "worst_concave_points" in host.columns
    assert all(name.replace("_", "").isalnum() and name.islower() for name in [*guest.columns, *host.columns])
    assert pd.api.types.is_string_dtype(guest["id"])

    bunch = load_breast_cancer()
    joined = guest.merge(host, on="id")
    joined = joined.set_index(joined["id"].astype(int)).sort_index()
    assert list(joined.index) == list(range(569))
    np.testing.assert_array_equal(joined.drop(columns=["id", "y"]).to_numpy(), bunch.data)
    np.testing.assert_array_equal(joined["y"].to_numpy(), bunch.target)
    pd.testing.assert_frame_equal(
        joined.reset_index(drop=True)[list(breast_cancer_table().columns)], breast_cancer_table()
    )


def test_breast_cancer_partial_overlap() -> None:
    guest, host = breast_cancer_vertical(overlap=0.5, seed=1)
    assert len(set(guest["id"]) & set(host["id"])) == round(0.5 * 569)
    assert set(guest["id"]) | set(host["id"]) == {str(i) for i in range(569)}


def test_breast_cancer_table_is_scikit_learns_data_read_without_importing_it() -> None:
    bunch = load_breast_cancer()
    table = breast_cancer_table()
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    assert list(table.columns) == ["id", "y", *names]
    np.testing.assert_array_equal(table[names].to_numpy(), bunch.data)
    assert table["y"].dtype == "int64" and table["y"].tolist() == bunch.target.tolist()
    code = (
        "import sys; from fedbench.datasets import breast_cancer_table; breast_cancer_table(); "
        "print('sklearn' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", "reading the demo data imports no scikit-learn"
