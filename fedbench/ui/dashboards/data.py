"""The data dashboard: register a CSV or parquet file as a dataset, and look at the datasets we hold.

`app()` builds the whole page as one widget (the notebook `notebooks/dashboards/data.ipynb` only displays
it), so every action is a plain method tested in-process: `load_file(name, content)` reads an upload and
shows its schema, preview and statistics; `register()` sends it to our node; `show_dataset(name)` shows one
of ours.
"""

from __future__ import annotations

import contextlib
import re
from html import escape
from pathlib import PurePath
from typing import Any

import ipywidgets as widgets
import pandas as pd
import traitlets

from fedbench.client.datasets import Dataset
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.names import check_dataset_name
from fedbench.store.tables import read_table_source
from fedbench.ui.dashboards.common import (
    DashboardApp,
    Notice,
    card,
    connect_from_env,
    format_when,
    table_html,
)
from fedbench.ui.errors import FormError
from fedbench.ui.style import row

__all__ = ["DataApp", "app"]

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


def _guess_id(frame: pd.DataFrame) -> str:
    for column in frame.columns:
        if str(column).lower() in ("id", "customer_id", "client_id", "user_id", "key"):
            return str(column)
    for column in frame.columns:
        if str(column).lower().endswith("_id") or str(column).lower().endswith("id"):
            return str(column)
    unique = [str(c) for c in frame.columns if frame[c].is_unique]
    return unique[0] if unique else str(frame.columns[0])


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
        self.id_column = widgets.Dropdown(options=[], layout=widgets.Layout(width="300px"))
        self.id_column.add_class("fb-data-id-column")
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
                        labelled("ID column (matched with partners)", self.id_column),
                        labelled("Label column (what a model predicts)", self.label_column),
                    ],
                    top=True,
                ),
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
        try:
            frame = read_table_source(bytes(content), fmt=fmt)
        except FedbenchError as exc:
            problem = f"This file cannot be read as a table: {exc}"
            self.message.problem(problem)
            raise FormError(problem, {"file": str(exc)}) from None
        self._content = bytes(content)
        self.file_name = file_name
        columns = [str(c) for c in frame.columns]
        id_column = _guess_id(frame)
        self.id_column.options = columns
        self.id_column.value = id_column
        self.label_column.options = [("(no label)", _NO_LABEL), *[(c, c) for c in columns]]
        self.label_column.value = _guess_label(frame, id_column)
        if not self.name.value:
            self.name.value = _suggest_name(file_name)
        self.table = frame
        self.file_info.value = f"<b>{escape(file_name)}</b> · {len(frame):,} rows · {frame.shape[1]} columns"
        self._show_schema()
        self.details.layout.display = None
        self.settings.layout.display = None
        return frame

    def _uploaded(self, change: Any) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[0]
        with contextlib.suppress(FormError):
            self.load_file(str(upload["name"]), bytes(upload["content"]))

    def _roles(self) -> dict[str, str]:
        roles = {self.id_column.value: "ID"}
        if self.label_column.value:
            roles[self.label_column.value] = "label"
        return roles

    def _show_schema(self) -> None:
        frame = self.table
        if frame is None:
            return
        roles = self._roles()
        rows = []
        for column in frame.columns:
            series = frame[column]
            numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
            role = roles.get(str(column), "feature")
            if role == "feature" and not numeric:
                check = "✗ not numeric: make it the ID, or drop or encode it"
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
                    "type": "number" if numeric else "text",
                    "missing": f"{series.isna().mean():.1%}",
                    "distinct values": f"{series.nunique():,}",
                    "check": check,
                }
            )
        self.schema.value = '<div class="fb-section">Columns</div>' + table_html(pd.DataFrame(rows))
        self.preview.value = '<div class="fb-section">First rows</div>' + table_html(frame.head(5))
        numeric = frame.drop(columns=[c for c in roles if c in frame.columns]).select_dtypes("number")
        if numeric.empty:
            self.stats.value = ""
            return
        stats = numeric.describe().T[["mean", "std", "min", "50%", "max"]].rename(columns={"50%": "median"})
        stats.insert(0, "missing", numeric.isna().mean().map("{:.1%}".format))
        stats = stats.map(lambda v: f"{v:,.4g}" if isinstance(v, float) else v)
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
        roles = self._roles()
        text = [
            str(c)
            for c in frame.columns
            if str(c) not in roles
            and (not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
        ]
        if text:
            found.append(
                f"{', '.join(text)} {'holds' if len(text) == 1 else 'hold'} text: only the ID column may; "
                "remove such columns from the file or turn them into numbers"
            )
        return found

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
        try:
            frame = read_table_source(self._content, fmt=fmt, id_column=id_column)
            dataset = self.workbench.datasets.upload(
                frame, name=name, id_column=id_column, label_column=label
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
            f'<div class="fb-section">{escape(name)}: first rows</div>{table_html(preview)}'
            f'<div class="fb-section">Statistics</div>{table_html(_friendly_summary(summary), index=True)}'
        )


def _friendly_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The node's per-column statistics with plain headers: type, missing share, mean, spread, range."""
    text = summary["dtype"].astype(str).isin(["str", "object", "string"])
    friendly = pd.DataFrame(
        {
            "type": text.map({True: "text", False: "number"}),
            "missing": summary["missing_rate"].astype(float).map("{:.1%}".format),
            "mean": summary["mean"],
            "std": summary["std"],
            "min": summary["min"],
            "median": summary["50%"],
            "max": summary["max"],
            "distinct values": summary["unique"],
        },
        index=summary.index.rename(None),
    )
    return friendly


def app(workbench: Workbench | None = None) -> DataApp:
    """The data dashboard, on `workbench` or on the node the environment names (see `connect_from_env`)."""
    return DataApp(workbench or connect_from_env())
