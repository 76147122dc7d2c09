"""The data dashboard: register a CSV or parquet file as a dataset, and look at the datasets we hold.

`app()` builds the whole page as one widget (the notebook `notebooks/dashboards/data.ipynb` only displays
it), so every action is a plain method tested in-process: `load_file(name, content)` reads an upload and
shows its schema, preview and statistics; `register()` sends it to our node; `show_dataset(name)` shows one
of ours.
"""

from __future__ import annotations

import contextlib
import math
import re
from html import escape
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import traitlets

from fedbench.client.datasets import Dataset
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.names import check_dataset_name
from fedbench.ui.dashboards.common import (
    DashboardApp,
    Notice,
    card,
    connect_from_env,
    format_when,
    table_html,
    unavailable_page,
)
from fedbench.ui.errors import FormError
from fedbench.ui.style import row

if TYPE_CHECKING:
    from fedbench.store.datasets import NotNumbers

__all__ = ["DataApp", "app", "human_number"]

_NO_LABEL = ""
_LABEL_NAMES = (
    "label",
    "target",
    "y",
    "default",
    "outcome",
    "class",
    "churn",
    "churned",
    "fraud",
    "is_fraud",
    "bad",
)
_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


_NO_ID = ""
_ID_NAMES = ("id", "customer_id", "client_id", "user_id", "key")
_NOT_NUMBERS = (
    ("Stop: I will fix the file", "refuse"),
    ("Treat them as missing values", "missing"),
    ("Leave out the rows that hold them", "drop"),
)


def _named_id(columns: list[str]) -> str:
    """The column named as an ID (id, customer_id, …, or ending in _id); else none: the user chooses.

    Nothing else is guessed: taking some unique-looking column (say `age`) as the ID only leads to a confusing
    "repeated values" error later. A column named as an ID is the user's own declaration, checked like any ID.
    """
    for column in columns:
        if column.lower() in _ID_NAMES:
            return column
    for column in columns:
        if column.lower().endswith("_id"):
            return column
    return _NO_ID


def human_number(value: Any) -> str:
    """A number as a business user reads it: thousands separators, a few decimals, never scientific notation."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return ""
    if math.isinf(number):
        return "infinite" if number > 0 else "minus infinite"
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    size = abs(number)
    if size >= 1000:
        decimals = 0
    elif size >= 1:
        decimals = 2
    else:
        decimals = min(2 - math.floor(math.log10(size)), 12)
    text = f"{number:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _plain_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows to show as they are, but with numbers written plainly (thousands separators, no scientific notation)."""

    def plain(value: Any) -> Any:
        if not isinstance(value, float | np.floating):
            return value
        number = float(value)
        if math.isfinite(number) and abs(number) >= 1 and number != int(number):
            return f"{number:,.6f}".rstrip("0").rstrip(".")
        return human_number(number)

    return frame.map(plain)


def _in_words(problem: NotNumbers) -> str:
    """Values that are not numbers, as the page says it: the column, a few values, their rows, how many."""
    many = problem.count > 1
    values = ", ".join(f"“{v}”" for v in problem.values[:3]) + (", …" if len(problem.values) > 3 else "")
    more = ", …" if problem.count > 3 else ""
    rows = ", ".join(str(r) for r in problem.rows[:3]) + more
    lines = ", ".join(str(r + 1) for r in problem.rows[:3]) + more
    noun = "values that are not numbers" if many else "value that is not a number"
    return (
        f"{problem.column} has {problem.count:,} {noun} "
        f"({values}) in {'rows' if many else 'row'} {rows} of the data ({'lines' if many else 'line'} {lines} "
        "of the file, counting its header line)"
    )


def _guess_label(frame: pd.DataFrame, id_column: str) -> str:
    for column in frame.columns:
        if str(column).lower() in _LABEL_NAMES and str(column) != id_column:
            return str(column)
    return _NO_LABEL


def _suggest_name(file_name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", PurePath(file_name).stem).strip("_.-")
    return stem or "dataset"


class DataApp(DashboardApp):
    """The data dashboard of one party."""

    table = traitlets.Instance(pd.DataFrame, allow_none=True, help="the uploaded table, before registration")
    file_name = traitlets.Unicode("", help="the uploaded file's name")

    def __init__(self, workbench: Workbench) -> None:
        super().__init__()
        self.workbench = workbench
        self._content = b""
        self.upload = widgets.FileUpload(
            accept=".csv,.parquet,.pq",
            multiple=False,
            description="Choose a file",
            icon="upload",
            tooltip="a CSV or parquet file with one row per customer",
        )
        self.upload.add_class("fb-data-upload")
        self.upload.observe(self._uploaded, "value")
        self.file_info = widgets.HTML('<span class="fb-muted">CSV or parquet, one row per customer.</span>')
        self.name = widgets.Text(
            placeholder="for example customers_2024", layout=widgets.Layout(width="300px")
        )
        self.name.add_class("fb-data-name")
        self.id_column = widgets.Dropdown(
            options=[("(choose the ID column)", _NO_ID)], layout=widgets.Layout(width="300px")
        )
        self.id_column.add_class("fb-data-id-column")
        self.id_hint = widgets.HTML("")
        self.id_hint.add_class("fb-data-id-hint")
        self.not_numbers = widgets.Dropdown(
            options=_NOT_NUMBERS, value="refuse", layout=widgets.Layout(width="300px")
        )
        self.not_numbers.add_class("fb-data-not-numbers")
        self.not_numbers.observe(lambda _change: self._show_schema(), "value")
        self.not_numbers_box = widgets.VBox(
            [
                widgets.HTML('<span class="fb-label">Values that are not numbers in a number column</span>'),
                self.not_numbers,
            ]
        )
        self.not_numbers_box.layout.display = "none"
        self.label_column = widgets.Dropdown(
            options=[("(no label)", _NO_LABEL)], layout=widgets.Layout(width="300px")
        )
        self.label_column.add_class("fb-data-label-column")
        for picker in (self.id_column, self.label_column):
            picker.observe(lambda _change: self._show_schema(), "value")
        self.name_message = widgets.HTML("")
        self.name_message.add_class("fb-field-message")
        self.register_button = widgets.Button(
            description="Register dataset", button_style="primary", icon="check"
        )
        self.register_button.add_class("fb-data-register")
        self.register_button.on_click(self._register_clicked)
        self.message = Notice("")
        self.message.add_class("fb-notice")
        self.schema = widgets.HTML("")
        self.schema.add_class("fb-data-schema")
        self.preview = widgets.HTML("")
        self.preview.add_class("fb-data-preview")
        self.stats = widgets.HTML("")
        self.stats.add_class("fb-data-stats")
        self.details = widgets.VBox([self.schema, self.preview, self.stats])
        self.details.layout.display = "none"

        self.datasets = widgets.HTML("")
        self.datasets.add_class("fb-data-list")
        self.pick = widgets.Dropdown(
            options=[],
            description="Show details of",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="380px"),
        )
        self.pick.add_class("fb-data-select")
        self.pick.observe(self._picked, "value")
        self.dataset_view = widgets.HTML("")
        self.dataset_view.add_class("fb-data-view")

        def labelled(text: str, widget: widgets.Widget, *extra: widgets.Widget) -> widgets.VBox:
            return widgets.VBox(
                [widgets.HTML(f'<span class="fb-label">{escape(text)}</span>'), widget, *extra]
            )

        self.settings = widgets.VBox(
            [
                row(
                    [
                        labelled("Dataset name", self.name, self.name_message),
                        labelled("ID column (matched with partners)", self.id_column, self.id_hint),
                        labelled("Label column (what a model predicts)", self.label_column),
                    ],
                    top=True,
                ),
                self.not_numbers_box,
                self.register_button,
            ]
        )
        self.settings.layout.display = "none"
        form = widgets.VBox(
            [
                row([self.upload, self.file_info]),
                self.settings,
                self.message,
                self.details,
            ]
        )
        self.frame(
            workbench,
            "Data",
            "Register the tables your organisation brings to projects, and check what your node holds. "
            "Data never leaves your node when you register it.",
            "data",
            [
                card(
                    "Register a dataset",
                    [form],
                    "fb-data-register-card",
                    "Choose a file, check its columns, say which column identifies each row, then register.",
                ),
                card("Your datasets", [self.datasets, self.pick, self.dataset_view], "fb-data-list-card"),
            ],
        )
        self.refresh()

    # ----- registering a file --------------------------------------------------------------------------------

    def load_file(self, file_name: str, content: bytes) -> pd.DataFrame:
        """Read an uploaded file and show its schema, preview and statistics; FormError if unreadable."""
        self.message.clear()
        fmt = _FORMATS.get(PurePath(file_name).suffix.lower())
        if fmt is None:
            problem = (
                f"{file_name} is neither a CSV nor a parquet file (its name should end in .csv or .parquet)."
            )
            self.message.problem(problem)
            raise FormError(problem, {"file": problem})
        from fedbench.store.datasets import id_candidates
        from fedbench.store.tables import read_table_source

        try:
            frame = read_table_source(bytes(content), fmt=fmt)
        except FedbenchError as exc:
            problem = f"This file cannot be read as a table: {exc}"
            self.message.problem(problem)
            raise FormError(problem, {"file": str(exc)}) from None
        self._content = bytes(content)
        self.file_name = file_name
        columns = [str(c) for c in frame.columns]
        candidates = id_candidates(frame)
        id_column = _named_id(columns)
        self.id_column.options = [("(choose the ID column)", _NO_ID), *[(c, c) for c in columns]]
        self.id_column.value = id_column
        self.id_hint.value = (
            '<span class="fb-muted">Columns with a different value in every row: '
            f"{escape(', '.join(candidates[:8]) + (', …' if len(candidates) > 8 else ''))}</span>"
            if candidates
            else '<span class="fb-message">No column has a different value in every row: add an ID column '
            "(e.g. the customer number) to the file.</span>"
        )
        self.not_numbers.value = "refuse"
        self.label_column.options = [("(no label)", _NO_LABEL), *[(c, c) for c in columns]]
        self.label_column.value = _guess_label(frame, id_column)
        if not self.name.value:
            self.name.value = _suggest_name(file_name)
        self.table = frame
        self.file_info.value = f"<b>{escape(file_name)}</b> · {len(frame):,} rows · {frame.shape[1]} columns"
        self._show_schema()
        self._clear_upload_button()
        self.details.layout.display = None
        self.settings.layout.display = None
        return frame

    def _uploaded(self, change: Any) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[0]
        try:
            with contextlib.suppress(FormError):
                self.load_file(str(upload["name"]), bytes(upload["content"]))
        finally:
            self._clear_upload_button()

    def _clear_upload_button(self) -> None:
        """Forget the browser's file: the button reads "Choose a file" again (not "(1)"), ready for the next."""
        if self.upload.value:
            self.upload.value = ()

    def _roles(self) -> dict[str, str]:
        roles = {self.id_column.value: "ID"} if self.id_column.value else {}
        if self.label_column.value:
            roles[self.label_column.value] = "label"
        return roles

    def _show_schema(self) -> None:
        frame = self.table
        if frame is None:
            return
        roles = self._roles()
        strays = {p.column: p for p in self._not_numbers()}
        self.not_numbers_box.layout.display = (
            None if any(not p.mostly_text for p in strays.values()) else "none"
        )
        rows = []
        for column in frame.columns:
            series = frame[column]
            numeric = pd.api.types.is_numeric_dtype(series)
            role = roles.get(str(column), "feature")
            stray = strays.get(str(column))
            if role != "ID" and stray is not None and not stray.mostly_text:
                fix = {"missing": "treated as missing", "drop": "those rows left out"}.get(
                    self.not_numbers.value
                )
                check = (
                    f"✓ numbers ({stray.count:,} not: {fix})"
                    if fix
                    else f"✗ {stray.count:,} not a number: " + ", ".join(f"“{v}”" for v in stray.values[:3])
                )
            elif role != "ID" and not numeric:
                check = "✗ text: make it the ID, drop it, or turn it into numbers"
            elif role == "ID" and not series.is_unique:
                check = "✗ repeated values: an ID must be unique"
            elif role == "ID" and series.isna().any():
                check = "✗ missing values: every row needs an ID"
            else:
                check = "✓"
            rows.append(
                {
                    "column": str(column),
                    "role": role,
                    "type": "number" if numeric or (stray and not stray.mostly_text) else "text",
                    "missing": f"{series.isna().mean():.1%}",
                    "distinct values": f"{series.nunique():,}",
                    "check": check,
                }
            )
        self.schema.value = '<div class="fb-section">Columns</div>' + table_html(pd.DataFrame(rows))
        self.preview.value = '<div class="fb-section">First rows</div>' + table_html(
            _plain_rows(frame.head(5))
        )
        numeric = frame.drop(columns=[c for c in roles if c in frame.columns]).select_dtypes("number")
        if numeric.empty:
            self.stats.value = ""
            return
        stats = numeric.describe().T[["mean", "std", "min", "50%", "max"]].rename(columns={"50%": "median"})
        stats = stats.map(human_number)
        stats.insert(0, "missing", numeric.isna().mean().map("{:.1%}".format))
        self.stats.value = '<div class="fb-section">Statistics of the features</div>' + table_html(
            stats, index=True
        )

    def problems(self) -> list[str]:
        """What stops the uploaded table from being registered with the chosen columns, in plain words."""
        frame = self.table
        if frame is None:
            return ["choose a CSV or parquet file first"]
        found = []
        id_column = str(self.id_column.value)
        if not id_column:
            from fedbench.store.datasets import id_candidates

            candidates = id_candidates(frame)
            found.append(
                "choose the ID column, the one that identifies each customer and is matched with partners"
                + (
                    f" (columns with a different value in every row: {', '.join(candidates[:8])})"
                    if candidates
                    else " (no column has a different value in every row: add one to the file)"
                )
            )
            return found
        ids = frame[id_column]
        if ids.isna().any():
            found.append(
                f"the ID column {id_column} is empty in {int(ids.isna().sum()):,} rows: every row needs an ID"
            )
        repeated = ids[ids.duplicated()].dropna()
        if not repeated.empty:
            found.append(
                f"the ID column {id_column} repeats values (for example {str(repeated.iloc[0])!r}): "
                "each row needs its own ID"
            )
        problems = self._not_numbers()
        strays = [p for p in problems if not p.mostly_text]
        if strays and self.not_numbers.value == "refuse":
            found.append(
                "; ".join(_in_words(p) for p in strays)
                + ": if they stand for unknown values, choose “Treat them as missing values” below; "
                "if those rows are wrong, choose “Leave out the rows that hold them”, or fix the file"
            )
        text = [p.column for p in problems if p.mostly_text]
        if text:
            found.append(
                f"{', '.join(text)} {'holds' if len(text) == 1 else 'hold'} text: only the ID column may; "
                "remove such columns from the file or turn them into numbers (for example one column per category)"
            )
        return found

    def _not_numbers(self) -> list[NotNumbers]:
        """The columns other than the ID that hold values that are not numbers."""
        if self.table is None:
            return []
        from fedbench.store.datasets import find_not_numbers

        return find_not_numbers(self.table, exclude=(self.id_column.value or None,))

    def register(self) -> Dataset:
        """Register the uploaded table under the chosen name and columns; problems shown here and raised."""
        self.message.clear()
        self.name_message.value = ""
        if self.table is None:
            problem = "Choose a CSV or parquet file first."
            self.message.problem(problem)
            raise FormError(problem, {"file": problem})
        name = self.name.value.strip()
        known = {d.name for d in self.workbench.datasets.list()}
        try:
            check_dataset_name(name)
            if name in known:
                raise FormError(f"You already have a dataset named {name!r}: choose another name.")
        except FedbenchError as exc:
            problem = (
                str(exc)
                if isinstance(exc, FormError)
                else "Use letters, digits, '_', '-' or '.', starting with a letter or digit (e.g. customers_2024)."
            )
            self.name_message.value = f'<span class="fb-message">{escape(problem)}</span>'
            self.message.problem("Please fix the dataset name.")
            raise FormError("Please fix the dataset name", {"name": problem}) from None
        problems = self.problems()
        if problems:
            text = "This table cannot be registered yet: " + "; ".join(problems) + "."
            self.message.problem(text)
            raise FormError(text, {"file": "; ".join(problems)})
        fmt = _FORMATS[PurePath(self.file_name).suffix.lower()]
        id_column = str(self.id_column.value)
        label = self.label_column.value or None
        from fedbench.store.tables import read_table_source

        try:
            frame = read_table_source(self._content, fmt=fmt, id_column=id_column)
            dataset = self.workbench.datasets.upload(
                frame, name=name, id_column=id_column, label_column=label, not_numbers=self.not_numbers.value
            )
        except FedbenchError as exc:
            self.message.problem(f"The node did not register this table: {exc}")
            raise
        self.refresh()
        self.pick.value = dataset.name
        self._reset_upload()
        self.message.ok(
            f"Registered {dataset.name}: {dataset.info.n_rows:,} rows, {len(dataset.info.features)} features."
        )
        return dataset

    def _reset_upload(self) -> None:
        """Back to "choose a file" (after a registration): the registered table shows below."""
        self.table = None
        self._content = b""
        self.file_name = ""
        self.name.value = ""
        self._clear_upload_button()
        self.id_column.options = [("(choose the ID column)", _NO_ID)]
        self.id_hint.value = ""
        self.not_numbers.value = "refuse"
        self.settings.layout.display = "none"
        self.details.layout.display = "none"
        self.file_info.value = '<span class="fb-muted">CSV or parquet, one row per customer.</span>'

    def _register_clicked(self, _button: widgets.Button) -> None:
        with contextlib.suppress(FedbenchError):
            self.register()

    # ----- our datasets ------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the list of our datasets."""
        infos = self.workbench.datasets.list()
        frame = pd.DataFrame(
            [
                {
                    "name": d.name,
                    "rows": f"{d.n_rows:,}",
                    "ID column": d.id_column,
                    "label": d.label_column or "",
                    "features": len(d.features),
                    "registered": format_when(d.created_at),
                }
                for d in infos
            ]
        )
        self.datasets.value = table_html(frame, "No datasets yet: register one above.")
        current = self.pick.value
        self.pick.options = [("(choose a dataset)", ""), *[(d.name, d.name) for d in infos]]
        self.pick.value = current if current in [d.name for d in infos] else ""

    def _picked(self, change: Any) -> None:
        if change["new"]:
            self.show_dataset(change["new"])
        else:
            self.dataset_view.value = ""

    def show_dataset(self, name: str) -> None:
        """Show one of our datasets: its first rows and per-column statistics."""
        try:
            dataset = self.workbench.datasets.get(name)
            preview = dataset.preview(5)
            summary = dataset.summary()
        except FedbenchError as exc:
            self.dataset_view.value = f'<div class="fb-message">{escape(str(exc))}</div>'
            return
        self.dataset_view.value = (
            f'<div class="fb-section">{escape(name)}: first rows</div>{table_html(_plain_rows(preview))}'
            f'<div class="fb-section">Statistics</div>{table_html(_friendly_summary(summary), index=True)}'
        )


def _friendly_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The node's per-column statistics with plain headers and plain numbers: type, missing share, mean, range."""
    text = summary["dtype"].astype(str).isin(["str", "object", "string"])
    friendly = pd.DataFrame(
        {
            "type": text.map({True: "text", False: "number"}),
            "missing": summary["missing_rate"].astype(float).map("{:.1%}".format),
            "mean": summary["mean"].map(human_number),
            "std": summary["std"].map(human_number),
            "min": summary["min"].map(human_number),
            "median": summary["50%"].map(human_number),
            "max": summary["max"].map(human_number),
            "distinct values": summary["unique"].map(human_number),
        },
        index=summary.index.rename(None),
    )
    return friendly


def app(workbench: Workbench | None = None) -> DataApp | widgets.VBox:
    """The data dashboard, on `workbench` or on the node the environment names (see `connect_from_env`).

    When the node cannot be reached, a page saying so (and what to do) instead of a traceback.
    """
    try:
        return DataApp(workbench or connect_from_env())
    except FedbenchError as exc:
        return unavailable_page("Data", exc, retry=app)
