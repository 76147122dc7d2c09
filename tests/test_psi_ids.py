"""ID preparation for PSI: normalisation rules, combined keys, empty and duplicate rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedbench.psi import DuplicateIdError, IdPreparationError, Normalise, prepare_ids
from fedbench.psi.ids import normalise_values


def values(items, rule=Normalise()):
    return normalise_values(pd.Series(items, dtype=object), rule)


def test_text_defaults_strip_and_nfc_but_keep_case():
    assert values(["  Abc ", "Jose\u0301", None, float("nan"), 42, 42.0, 1.5]) == [
        "Abc",
        "José",
        "",
        "",
        "42",
        "42",
        "1.5",
    ]


def test_lower_and_no_strip():
    assert values([" Ab "], Normalise(lower=True, strip=False)) == [" ab "]


def test_regex_keeps_what_it_captures():
    assert values(["CUST-00123", "cust 7", "none"], Normalise(regex=r"(?i)cust\D*(\d+)")) == [
        "00123",
        "7",
        "",
    ]
    assert values(["ab-12-cd"], Normalise(regex=r"(\w+)-\d+-(\w+)")) == ["abcd"]
    assert values(["x 123 y"], Normalise(regex=r"\d+")) == ["123"]


def test_bad_options_are_reported():
    with pytest.raises(IdPreparationError, match="does not compile"):
        Normalise(regex="(")
    with pytest.raises(IdPreparationError, match="kind"):
        Normalise(kind="passport")
    with pytest.raises(IdPreparationError, match="country_code"):
        Normalise(kind="phone", country_code="UK")


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+44 20 7946 0958", None, "+442079460958"),
        ("0044 (0)20-7946-0958", None, "+442079460958"),
        ("+44 (0)20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "44", "+442079460958"),
        ("020 7946 0958", None, "02079460958"),
        ("(555) 123.4567", "+1", "+15551234567"),
        ("555 123 4567 ext 8", "1", ""),
        ("+", None, ""),
        ("", "44", ""),
    ],
)
def test_phone(raw, country, expected):
    assert values([raw], Normalise(kind="phone", country_code=country)) == [expected]


def test_email():
    rule = Normalise(kind="email")
    assert values([" John.Doe@Example.COM ", "no-at-sign", "a@b@c", "x y@z.com"], rule) == [
        "john.doe@example.com",
        "",
        "",
        "",
    ]
    assert values(["J.Doe@GoogleMail.com"], rule) == ["j.doe@googlemail.com"]
    assert values(["J.Doe@GoogleMail.com", "j.doe@other.org"], Normalise(kind="email", gmail_dots=True)) == [
        "jdoe@gmail.com",
        "j.doe@other.org",
    ]


def test_kind_names_and_per_column_rules():
    frame = pd.DataFrame({"phone": ["+1 555 0100", "+1 555 0101"], "mail": ["A@X.org", "b@x.org"]})
    prepared = prepare_ids(frame, ["phone", "mail"], normalise={"phone": "phone", "mail": "email"})
    assert prepared.keys == ["9:+15550100" + "7:a@x.org", "9:+15550101" + "7:b@x.org"]
    with pytest.raises(IdPreparationError, match="not ID columns"):
        prepare_ids(frame, ["phone"], normalise={"mail": "email"})


def test_combined_keys_are_unambiguous():
    frame = pd.DataFrame({"a": ["ab", "a"], "b": ["c", "bc"]})
    prepared = prepare_ids(frame, ["a", "b"])
    assert len(set(prepared.keys)) == 2


def test_empty_keys_are_dropped_and_counted():
    frame = pd.DataFrame({"id": ["x", "", None, "  ", "y"], "other": [1, 2, 3, 4, None]})
    prepared = prepare_ids(frame, "id")
    assert prepared.keys == ["x", "y"]
    assert prepared.row_positions.tolist() == [0, 4]
    assert prepared.row_positions.dtype == np.int64
    assert prepared.n_empty == 3
    combined = prepare_ids(frame, ["id", "other"])
    assert combined.keys == ["1:x1:1"]
    assert combined.n_empty == 4


def test_duplicates_error_names_count_and_examples():
    frame = pd.DataFrame({"id": ["a", "b", " a", "c", "b", "a"]})
    with pytest.raises(DuplicateIdError, match=r"3 rows repeat .*'a' \(row 2\)"):
        prepare_ids(frame, "id")


def test_duplicates_first_wins():
    frame = pd.DataFrame({"id": ["a", "b", " a", "c", "b"]}, index=[10, 11, 12, 13, 14])
    prepared = prepare_ids(frame, "id", duplicates="first")
    assert prepared.keys == ["a", "b", "c"]
    assert prepared.row_positions.tolist() == [0, 1, 3]
    assert prepared.n_duplicates == 2
    assert prepared.summary() == {"rows": 5, "empty": 0, "duplicates": 2, "keys": 3}


def test_missing_column_and_bad_duplicates_option():
    frame = pd.DataFrame({"id": ["a"]})
    with pytest.raises(IdPreparationError, match="not in the table"):
        prepare_ids(frame, ["id", "nope"])
    with pytest.raises(IdPreparationError, match="duplicates must be"):
        prepare_ids(frame, "id", duplicates="last")


def test_integer_column_with_gaps_matches_integer_column():
    with_gaps = pd.DataFrame({"id": [1.0, None, 3.0]})
    plain = pd.DataFrame({"id": [3, 1]})
    assert prepare_ids(with_gaps, "id").keys == ["1", "3"]
    assert prepare_ids(plain, "id").keys == ["3", "1"]


def test_empty_frame():
    prepared = prepare_ids(pd.DataFrame({"id": pd.Series([], dtype=object)}), "id")
    assert prepared.keys == [] and prepared.n_empty == 0 and len(prepared.row_positions) == 0
