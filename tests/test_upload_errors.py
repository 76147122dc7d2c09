"""Upload errors point the right way (#15 items 9 and 10): a stray value that is not a number is named with its
column, value and rows, and the fix offered is to treat it as missing or drop its rows (one-hot only for a column
that is mostly text); no ID column is guessed; whole numbers stay whole through storage, PSI and download; the
data dashboard asks for the ID, offers the fix, resets its upload button and shows statistics in plain numbers.

The registry's messages are checked in-process (no node); the rest against one real sandbox for the module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import DATABASE_URL

import fedbench
from fedbench import sandbox
from fedbench.errors import DatasetError
from fedbench.store.artifacts import ArtifactFiles
from fedbench.store.database import Database
from fedbench.store.datasets import DatasetRegistry
from fedbench.store.tables import read_table_source
from fedbench.ui.dashboards import data, psi
from fedbench.ui.errors import FormError

# cust is the only column with a different value in every row: age repeats (31), so it must never be the ID.
CSV = (
    "cust,age,income,segment,churned\n"
    "c1,31,52000,1,0\n"
    "c2,45,unknown,2,1\n"
    "c3,31,61000,1,0\n"
    "c4,60,48000,3,1\n"
    "c5,52,,2,0\n"
    "c6,38,1234567,1,1\n"
)


def _frame(text: str = CSV) -> pd.DataFrame:
    return read_table_source(text.encode(), fmt="csv", id_column="cust")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[DatasetRegistry]:
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    yield DatasetRegistry(db, ArtifactFiles(tmp_path / "artifacts"))
    db.close()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("upload-errors")
    sandbox.up(root, demo_data=False, database_url=DATABASE_URL)
    yield root
    sandbox.down(root)


# ----- the registry's messages --------------------------------------------------------------------------------


def test_one_stray_value_is_named_with_its_row_and_the_fix_is_missing_or_drop(
    registry: DatasetRegistry,
) -> None:
    with pytest.raises(DatasetError) as refused:
        registry.register(_frame(), name="c", id_column="cust", label_column="churned")
    message = str(refused.value)
    assert "'income'" in message and "'unknown'" in message
    assert "1 value that is not a number" in message
    assert "data row 2" in message and "line 3" in message, (
        "1-based data row, and the file line with the header"
    )
    assert "missing" in message and "drop" in message
    assert "one-hot" not in message and "get_dummies" not in message, "one stray value is not a text column"
    assert registry.list() == []


def test_several_stray_values_are_counted_and_a_few_shown(registry: DatasetRegistry) -> None:
    rows = ["id,x"] + [f"r{i},{'n/a?' if i % 10 == 3 else ('?' if i % 10 == 7 else i)}" for i in range(100)]
    with pytest.raises(DatasetError) as refused:
        registry.register(read_table_source("\n".join(rows).encode(), fmt="csv"), name="c", id_column="id")
    message = str(refused.value)
    assert "'x' has 20 values that are not numbers" in message
    assert "'n/a?', '?'" in message and "data rows 4, 8, 14, 18, 24, …" in message


def test_a_column_that_is_mostly_text_is_the_one_where_encoding_is_suggested(
    registry: DatasetRegistry,
) -> None:
    frame = _frame().assign(income=range(6), city=["Paris", "Lyon", "Nice", "Paris", "7", "Lyon"])
    with pytest.raises(DatasetError) as refused:
        registry.register(frame, name="c", id_column="cust", label_column="churned")
    message = str(refused.value)
    assert "'city' holds text in 5 of 6 rows" in message and "one-hot" in message
    assert "'income'" not in message


def test_a_stray_label_is_named_and_its_rows_are_to_be_dropped(registry: DatasetRegistry) -> None:
    frame = _frame().assign(income=range(6), churned=["0", "1", "0", "?", "1", "0"])
    with pytest.raises(DatasetError) as refused:
        registry.register(frame, name="c", id_column="cust", label_column="churned")
    message = str(refused.value)
    assert "label column 'churned' has 1 value that is not a number ('?') at data row 4" in message
    assert "drop those rows" in message


# ----- the client: no guessed ID, the fix on request, whole numbers kept ---------------------------------------


def test_upload_without_an_id_column_asks_for_it_listing_the_candidates(fed: Path, tmp_path: Path) -> None:
    wb = fedbench.connect(home=fed / "guest")
    path = tmp_path / "customers.csv"
    path.write_text(CSV)
    with pytest.raises(DatasetError) as refused:
        wb.datasets.upload(path, name="no_id", label_column="churned")
    message = str(refused.value)
    assert "which column identifies each row" in message and "'cust'" in message
    assert "'age'" not in message, "a column whose values repeat is not offered as the ID"
    assert "no_id" not in {d.name for d in wb.datasets.list()}


def test_upload_can_treat_stray_values_as_missing_or_drop_their_rows(fed: Path, tmp_path: Path) -> None:
    wb = fedbench.connect(home=fed / "guest")
    path = tmp_path / "customers.csv"
    path.write_text(CSV)
    kept = wb.datasets.upload(path, name="strays_missing", id_column="cust", not_numbers="missing")
    table = kept.to_pandas().set_index("cust")
    assert kept.info.n_rows == 6 and pd.isna(table.loc["c2", "income"]) and pd.isna(table.loc["c5", "income"])
    dropped = wb.datasets.upload(path, name="strays_dropped", id_column="cust", not_numbers="drop")
    assert dropped.to_pandas()["cust"].tolist() == ["c1", "c3", "c4", "c5", "c6"], "only the stray's row goes"


def test_whole_numbers_stay_whole_in_the_registry_and_the_psi_download(fed: Path) -> None:
    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    ours = pd.DataFrame({"id": [f"k{i}" for i in range(8)], "age": [31, 45, 27, 60, 33, 41, 52, 29]})
    ours["late_payments"] = [0, 2, 1, 0, 3, 0, 1, 0]
    ours["income"] = [5200.5, 3100.0, 8000.25, 4100.0, 3900.0, 6100.0, 7000.0, 2500.75]
    ours["default"] = [0, 1, 0, 1, 0, 0, 1, 0]
    ours["n_children"] = [1, None, 2, 0, None, 3, 1, 0]  # whole numbers with gaps: float (NaN) in pandas
    theirs = pd.DataFrame({"id": [f"k{i}" for i in range(2, 12)], "n_cards": range(10)})
    dataset = guest.datasets.upload(ours, name="whole", id_column="id", label_column="default")
    host.datasets.upload(theirs, name="whole_host", id_column="id")
    assert {dataset.info.dtypes[c] for c in ("age", "late_payments", "default")} == {"int64"}
    assert dataset.info.dtypes["income"] == dataset.info.dtypes["n_children"] == "float64"
    stored = dataset.to_pandas()
    assert stored["age"].tolist() == ours["age"].tolist() and str(stored["age"].dtype) == "int64"

    guest.projects.propose(
        "whole_numbers", partners="host", datasets=["whole"], purpose="test", psi_runs=1, min_intersection=1
    )
    host.projects.accept("whole_numbers", datasets=["whole_host"])
    page = psi.app(guest)
    page.choose_project("whole_numbers")
    page.choose_dataset("whole", "whole_host")
    page.run(wait=True)
    content = page.prepare_download().decode()
    lines = content.splitlines()
    assert lines[0] == "id,age,late_payments,income,default,n_children"
    assert lines[1] == "k2,27,1,8000.25,0,2", f"integers are written as integers: {lines[1]!r}"
    assert lines[3] == "k4,33,3,3900.0,0,", "a gap stays empty; a float column keeps its decimals"
    whole = [field for line in lines[1:] for i, field in enumerate(line.split(",")) if i in (1, 2, 4, 5)]
    assert all(field.isdigit() or field == "" for field in whole), f"no whole number written as 31.0: {whole}"
    assert len(lines) == 1 + 6


# ----- the data dashboard ---------------------------------------------------------------------------------------


def _upload_value(name: str, content: bytes) -> tuple[dict[str, object], ...]:
    """What the browser's file picker puts in the FileUpload widget's value."""
    return (
        {
            "name": name,
            "type": "text/csv",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime(),
        },
    )


def test_data_dashboard_asks_for_the_id_offers_the_fix_and_resets_the_upload_button(fed: Path) -> None:
    page = data.app(fedbench.connect(home=fed / "guest"))
    page.upload.value = _upload_value("bank customers.csv", CSV.encode())
    assert page.table is not None and page.file_name == "bank customers.csv"
    assert page.upload.value == (), "the button reads 'Choose a file' again, not 'Choose a file (1)'"

    assert page.id_column.value == "", "no ID is guessed"
    assert "cust" in page.id_hint.value and "age" not in page.id_hint.value
    assert page.label_column.value == "churned"
    with pytest.raises(FormError):
        page.register()
    assert "choose the ID column" in page.message.text and "cust" in page.message.text

    page.id_column.value = "cust"
    assert page.not_numbers_box.layout.display is None, "the choice shows when a number column holds strays"
    assert "✗ 1 not a number: “unknown”" in page.schema.value
    with pytest.raises(FormError):
        page.register()
    text = page.message.text
    assert (
        "income has 1 value that is not a number (“unknown”) in row 2 of the data (line 3 of the file" in text
    )
    assert "Treat them as missing values" in text and "one column per category" not in text

    page.not_numbers.value = "missing"
    assert "✓ numbers (1 not: treated as missing)" in page.schema.value
    page.name.value = "dashboard_customers"
    dataset = page.register()
    assert dataset.info.n_rows == 6 and dataset.info.id_column == "cust"
    assert pd.isna(dataset.to_pandas().set_index("cust").loc["c2", "income"])
    assert page.upload.value == () and page.id_column.value == "" and page.not_numbers.value == "refuse"


def test_data_dashboard_statistics_are_plain_numbers(fed: Path) -> None:
    page = data.app(fedbench.connect(home=fed / "guest"))
    clean = CSV.replace("unknown", "9876543.21")
    page.load_file("plain.csv", clean.encode())
    assert "2,254,422" in page.stats.value and "9,876,543" in page.stats.value
    assert not re.search(r"\de[+-]\d", page.stats.value), "no scientific notation"
    page.id_column.value = "cust"
    page.name.value = "plain_numbers"
    page.register()
    page.show_dataset("plain_numbers")
    assert "9,876,543" in page.dataset_view.value and "2,254,422" in page.dataset_view.value
    assert not re.search(r"\de[+-]\d", page.dataset_view.value)


def test_human_number_formats() -> None:
    cases = [
        (1234567.0, "1,234,567"),
        (41_000_000.5, "41,000,000"),
        (52.126, "52.13"),
        (0.000123456, "0.000123"),
        (0.5, "0.5"),
        (-1500.4, "-1,500"),
        (7, "7"),
        (float("nan"), ""),
    ]
    assert [(v, data.human_number(v)) for v, _ in cases] == cases


def test_data_dashboard_takes_a_column_named_as_the_id_and_checks_it(fed: Path) -> None:
    page = data.app(fedbench.connect(home=fed / "guest"))
    page.load_file("duplicates.csv", b"id,x\na,1\na,2\nb,3\n")
    assert page.id_column.value == "id", "a column named as the ID is the user's declaration, not a guess"
    assert "repeated values" in page.schema.value
    page.load_file("no_id.csv", b"age,x\n31,1\n31,2\n40,2\n")
    assert page.id_column.value == "" and "No column has a different value in every row" in page.id_hint.value
