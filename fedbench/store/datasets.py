"""The dataset registry of a node: validate a table, store it as parquet, record it in the metadata database.

Registration checks everything first and writes after, and leaves nothing behind when it fails; every problem
is one `DatasetError` that names the culprit (column, ids, rows) and the fix. The fingerprint identifies a
table's content independently of pandas/pyarrow versions, so partners can compare what was used.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import col, select

from fedbench.dataset_info import DatasetInfo
from fedbench.errors import DatasetError, NotFound, StoreError
from fedbench.names import check_dataset_name
from fedbench.store.artifacts import ArtifactFiles
from fedbench.store.database import Database
from fedbench.store.models import Dataset
from fedbench.store.tables import table_from_parquet_bytes, table_to_parquet_bytes

_FINGERPRINT_DOMAIN = b"fedbench-table-fingerprint-v1\x00"
_CANONICAL_NAN = np.uint64(0x7FF8000000000000)
_MAX_EXAMPLES = 5


def _positions(mask: np.ndarray) -> str:
    """Where `mask` is set, as the user counts rows: data rows from 1, and the lines of a CSV file."""
    where = np.flatnonzero(mask)
    return rows_text([int(i) + 1 for i in where[:_MAX_EXAMPLES]], len(where))


def rows_text(rows: builtins.list[int], count: int) -> str:
    """Data rows (1-based, the header line not counted) as words, with their line numbers in a CSV file."""
    more = ", …" if count > len(rows) else ""
    numbers = ", ".join(str(r) for r in rows)
    lines = ", ".join(str(r + 1) for r in rows)
    word = "row" if count == 1 else "rows"
    where = "line" if count == 1 else "lines"
    return (
        f"data {word} {numbers}{more}, counting data rows from 1 "
        f"({where} {lines}{more} of a CSV file whose first line is the header)"
    )


@dataclass(frozen=True)
class NotNumbers:
    """Values of a column that should be numeric but are not: a few of them, their rows, how many."""

    column: str
    values: builtins.list[str]
    """A few distinct values that are not numbers, in order of appearance."""
    rows: builtins.list[int]
    """The data rows (1-based) of the first few of them."""
    count: int
    """How many rows hold a value that is not a number."""
    numbers: int
    """How many rows hold a number."""
    distinct: int
    """How many different values that are not numbers there are."""

    @property
    def mostly_text(self) -> bool:
        """True when most present values are not numbers: the column is text, not a numeric one with strays."""
        return self.count > self.numbers

    def describe(self) -> str:
        """A plain-English account: the column, a few bad values, their rows and their count."""
        shown = ", ".join(repr(v) for v in self.values)
        more = ", …" if self.distinct > len(self.values) else ""
        noun = "value that is not a number" if self.count == 1 else "values that are not numbers"
        return (
            f"column {self.column!r} has {self.count:,} {noun} ({shown}{more}) "
            f"at {rows_text(self.rows, self.count)}"
        )


def _stripped_text(series: pd.Series) -> pd.Series:
    """Present values as stripped strings; empty or blank strings become missing."""
    text = series.map(lambda v: v.strip() if isinstance(v, str) else v)
    return text.mask(text.map(lambda v: isinstance(v, str) and v == ""))


def _is_text(dtype: object) -> bool:
    return bool(ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype))


def not_numbers(series: pd.Series, column: str) -> NotNumbers | None:
    """The values of a text column that are not numbers (None when every present value is one, or it is not text).

    Columns of other types (dates, complex numbers) are no text to clean: the registry refuses them by type.
    """
    if not _is_text(series.dtype) or _is_numeric(series.dtype):
        return None
    text = _stripped_text(series.reset_index(drop=True))
    present = text.notna().to_numpy()
    numeric = pd.to_numeric(text.where(present, None).astype(object), errors="coerce").notna().to_numpy()
    bad = present & ~numeric
    if not bad.any():
        return None
    where = np.flatnonzero(bad)
    values = pd.unique(text[bad].astype(str))
    return NotNumbers(
        column=column,
        values=[str(v) for v in values[:_MAX_EXAMPLES]],
        rows=[int(i) + 1 for i in where[:_MAX_EXAMPLES]],
        count=len(where),
        numbers=int(numeric.sum()),
        distinct=len(values),
    )


def find_not_numbers(df: pd.DataFrame, exclude: Iterable[str | None] = ()) -> builtins.list[NotNumbers]:
    """Every column of `df` (but those in `exclude`) that holds values that are not numbers."""
    skip = {c for c in exclude if c is not None}
    found = (not_numbers(df[c], str(c)) for c in df.columns if c not in skip)
    return [problem for problem in found if problem is not None]


def fix_not_numbers(df: pd.DataFrame, problems: Iterable[NotNumbers], how: str) -> pd.DataFrame:
    """`df` with the values that are not numbers in the given columns treated as missing, or their rows dropped.

    `how` is "missing" (the value becomes empty, the row stays) or "drop" (the row goes); either way the
    columns become numbers. A column that is mostly text is left alone: it needs encoding, not cleaning.
    """
    if how not in ("missing", "drop"):
        raise DatasetError(f"not_numbers={how!r} is not a choice; use 'missing', 'drop' or 'refuse'")
    out = df.reset_index(drop=True).copy()
    keep = np.ones(len(out), dtype=bool)
    for problem in problems:
        if problem.mostly_text or problem.column not in out.columns:
            continue
        text = _stripped_text(out[problem.column])
        numbers = pd.to_numeric(text.astype(object), errors="coerce")
        keep &= ~(text.notna() & numbers.isna()).to_numpy()
        out[problem.column] = numbers.astype(np.float64)
    return out[keep].reset_index(drop=True) if how == "drop" else out


def not_numbers_message(problems: builtins.list[NotNumbers]) -> str:
    """The error for feature columns that hold values that are not numbers: what, where, and the fix."""
    strays = [p for p in problems if not p.mostly_text]
    text = [p for p in problems if p.mostly_text]
    parts: builtins.list[str] = []
    if strays:
        names = [p.column for p in strays]
        values = sorted({v for p in strays for v in p.values})
        parts.append(
            "; ".join(p.describe() for p in strays)
            + ': if such values stand for "not known", treat them as missing '
            f"(upload with not_numbers='missing', or read the CSV with na_values={values!r}); "
            f"if those rows are wrong, drop them (not_numbers='drop'); the rest of {_names(names)} is numeric"
        )
    if text:
        names = [p.column for p in text]
        described = "; ".join(
            f"{p.column!r} holds text in {p.count:,} of {p.count + p.numbers:,} rows "
            f"(for example {', '.join(repr(v) for v in p.values[:3])})"
            for p in text
        )
        parts.append(
            f"{described}: every column other than the ID and the label must be numeric: encode "
            f"{'it' if len(names) == 1 else 'them'} as numbers (e.g. one-hot: pd.get_dummies(df, columns={names!r})) "
            f"or drop {'it' if len(names) == 1 else 'them'} (df.drop(columns={names!r}))"
        )
    return "; ".join(parts)


def _names(names: builtins.list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def id_candidates(df: pd.DataFrame) -> builtins.list[str]:
    """The columns that could identify each row: a value in every row, and no value twice."""
    found = []
    for c in df.columns:
        column = df[c]
        if column.isna().any():
            continue
        if not _is_numeric(column.dtype) and (column.astype(str).str.strip() == "").any():
            continue
        if _id_strings(column).is_unique:
            found.append(str(c))
    return found


def missing_id_message(df: pd.DataFrame) -> str:
    """The error for an upload without an ID column: ask for one, naming the columns that could be it."""
    candidates = id_candidates(df)
    if candidates:
        shown = ", ".join(repr(c) for c in candidates[:10]) + (", …" if len(candidates) > 10 else "")
        return (
            "which column identifies each row (the ID matched with partners)? Nothing is guessed: pass "
            f"id_column= one of the columns that have a different value in every row: {shown}"
        )
    return (
        "which column identifies each row (the ID matched with partners)? No column has a different value in "
        f"every row (columns: {', '.join(repr(str(c)) for c in df.columns[:20])}): add a column with a unique "
        "ID per row (e.g. the customer number), then pass it as id_column="
    )


def _is_numeric(dtype: object) -> bool:
    return bool(ptypes.is_bool_dtype(dtype)) or (
        bool(ptypes.is_numeric_dtype(dtype)) and not ptypes.is_complex_dtype(dtype)
    )


def _id_strings(series: pd.Series) -> pd.Series:
    """Return the ids as strings: integers (and integral floats) without '.0', everything else with str()."""
    if ptypes.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if (
            len(finite) == len(values)
            and np.all(finite == np.round(finite))
            and np.all(np.abs(finite) < 2**63)
        ):
            return series.astype("int64").astype(str)
        return series.astype(str)
    if ptypes.is_object_dtype(series.dtype):
        return pd.Series(
            [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in series],
            index=series.index,
        ).astype(str)
    return series.astype(str)


def _as_float64(series: pd.Series, column: str) -> np.ndarray:
    if not _is_numeric(series.dtype):
        raise DatasetError(
            f"column {column!r} ({series.dtype}) is not numeric; encode it as numbers or drop it"
        )
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _numbers(series: pd.Series) -> pd.Series:
    """A text column whose present values are all numbers, as numbers; any other column as it is."""
    if _is_numeric(series.dtype) or not _is_text(series.dtype):
        return series
    converted = pd.to_numeric(_stripped_text(series).astype(object), errors="coerce")
    return converted.astype(np.float64) if _is_numeric(converted.dtype) else series


def _stored_values(series: pd.Series, column: str) -> np.ndarray:
    """A column as stored: integers (and bools, as 0/1) stay int64 when complete, everything else float64.

    Keeping whole numbers whole means a download of the data (or of anything made from it) writes 31, not 31.0;
    the fingerprint reads every column as float64, so it does not depend on this.
    """
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype) and not series.isna().any():
        return series.to_numpy(dtype=np.int64)
    if ptypes.is_integer_dtype(dtype) and not series.isna().any():
        if ptypes.is_unsigned_integer_dtype(dtype) and len(series) and int(series.max()) >= 2**63:
            return _as_float64(series, column)
        return series.to_numpy(dtype=np.int64)
    return _as_float64(series, column)


def _canonical_float_bytes(values: np.ndarray) -> bytes:
    arr = np.array(values, dtype="<f8", copy=True)
    arr[arr == 0.0] = 0.0
    bits = arr.view("<u8")
    bits[np.isnan(arr)] = _CANONICAL_NAN
    return bits.tobytes()


def _length_prefixed(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(8, "little") + data


def table_fingerprint(df: pd.DataFrame, id_column: str, label_column: str | None = None) -> str:
    """Return the sha256 hex of a canonical form of `df`, stable across pandas/pyarrow versions.

    It covers the column names in order, the roles, the ids as strings, and every other column as float64
    little-endian (NaN canonicalised, -0.0 as 0.0); the index and the original dtypes do not count.
    """
    digest = hashlib.sha256(_FINGERPRINT_DOMAIN)
    digest.update(len(df).to_bytes(8, "little"))
    digest.update(len(df.columns).to_bytes(8, "little"))
    for name in df.columns:
        digest.update(_length_prefixed(str(name)))
    digest.update(_length_prefixed(id_column))
    digest.update(_length_prefixed(label_column or ""))
    digest.update(b"\x01" if label_column is not None else b"\x00")
    digest.update(b"".join(_length_prefixed(str(i)) for i in _id_strings(df[id_column])))
    for name in df.columns:
        if name != id_column:
            digest.update(_canonical_float_bytes(_as_float64(df[name], str(name))))
    return digest.hexdigest()


class DatasetRegistry:
    """The datasets of a node: rows in the metadata database, content in parquet files among the artifacts."""

    def __init__(self, db: Database, files: ArtifactFiles) -> None:
        """Use the database `db` for records and `files` for the tables' content."""
        self._db = db
        self._files = files

    @property
    def files(self) -> ArtifactFiles:
        """The artifact files the registry stores its tables in."""
        return self._files

    def register(
        self,
        df: pd.DataFrame,
        *,
        name: str,
        id_column: str,
        label_column: str | None = None,
        owner: str = "local",
    ) -> DatasetInfo:
        """Validate `df`, store it and record it as dataset `name`; DatasetError, nothing stored, if unusable.

        Ids become strings; the label and every other column (the features) become numbers: int64 when the
        column holds whole numbers in every row (bools as 0/1), float64 otherwise (missing values as NaN).
        """
        check_dataset_name(name)
        if self._row(name) is not None:
            raise DatasetError(
                f"dataset name {name!r} is already taken; choose another name or delete the existing dataset "
                f"(registry.delete({name!r}))"
            )
        table = self._validated(df, id_column=id_column, label_column=label_column)
        features = [str(c) for c in table.columns if c not in (id_column, label_column)]
        data = table_to_parquet_bytes(table)
        stored = self._files.write_bytes(data, suffix=".parquet")
        row = Dataset(
            name=name,
            owner=owner,
            id_column=id_column,
            label_column=label_column,
            features=features,
            dtypes={str(c): str(table[c].dtype) for c in table.columns},
            n_rows=len(table),
            fingerprint=table_fingerprint(table, id_column, label_column),
            path=stored.path,
            sha256=stored.sha256,
            size_bytes=stored.size,
        )
        try:
            with self._db.session() as session:
                session.add(row)
        except IntegrityError as exc:
            self._discard_file(stored.path)
            raise DatasetError(
                f"dataset name {name!r} was taken while registering; choose another name or delete the "
                f"existing dataset (registry.delete({name!r}))"
            ) from exc
        except BaseException:
            self._discard_file(stored.path)
            raise
        # A concurrent registration of identical content that failed may have just removed the shared file.
        if not self._files.absolute(stored.path).is_file():
            self._files.write_bytes(data, suffix=".parquet")
        return DatasetInfo.from_row(row)

    def _validated(self, df: pd.DataFrame, *, id_column: str, label_column: str | None) -> pd.DataFrame:
        """Check `df` against every rule and return the table to store (str ids, numbers elsewhere)."""
        if not isinstance(df, pd.DataFrame):
            raise DatasetError(
                f"expected a pandas DataFrame, got {type(df).__name__}; "
                "read files with read_table_source(path)"
            )
        bad_names = [c for c in df.columns if not isinstance(c, str)]
        if bad_names:
            raise DatasetError(
                f"column names must be text, these are not: {', '.join(repr(c) for c in bad_names[:10])}; "
                "rename them, e.g. df.columns = [str(c) for c in df.columns]"
            )
        duplicated = sorted(set(df.columns[df.columns.duplicated()]))
        if duplicated:
            raise DatasetError(
                f"column names appear more than once: {', '.join(map(repr, duplicated))}; rename or drop them"
            )
        if len(df) == 0:
            raise DatasetError("the table has no rows; give a table with data")
        available = ", ".join(repr(c) for c in df.columns)
        if id_column not in df.columns:
            raise DatasetError(
                f"id column {id_column!r} is not in the table; available columns: {available}; "
                "pass one of them as id_column="
            )
        if label_column is not None and label_column not in df.columns:
            raise DatasetError(
                f"label column {label_column!r} is not in the table; available columns: {available}; "
                "pass one of them as label_column=, or None if this party has no label"
            )
        if label_column == id_column:
            raise DatasetError(
                f"column {id_column!r} cannot be both the id column and the label column; "
                "pick a different label_column (or None)"
            )
        ids = df[id_column]
        missing = ids.isna().to_numpy()
        if not missing.any() and not ptypes.is_numeric_dtype(ids.dtype):
            missing = (ids.astype(str).str.strip() == "").to_numpy()
        if missing.any():
            raise DatasetError(
                f"id column {id_column!r} has {int(missing.sum())} missing or empty values "
                f"(at {_positions(missing)}); drop those rows or fill in their ids"
            )
        id_strings = _id_strings(ids)
        dup_mask = id_strings.duplicated(keep=False).to_numpy()
        if dup_mask.any():
            repeated = pd.unique(id_strings[dup_mask])
            examples = ", ".join(repr(v) for v in repeated[:_MAX_EXAMPLES])
            raise DatasetError(
                f"id column {id_column!r} has {len(repeated)} duplicated ids over {int(dup_mask.sum())} rows "
                f"(for example {examples}); every id must be unique: deduplicate, e.g. "
                f"df.drop_duplicates(subset={id_column!r})"
            )
        if label_column is not None:
            label = df[label_column]
            stray = not_numbers(label, label_column)
            if stray is not None and not stray.mostly_text:
                raise DatasetError(
                    f"label {stray.describe()}; a label must be a number in every row: drop those rows "
                    "(upload with not_numbers='drop') or fill in their labels"
                )
            label = _numbers(label) if stray is None else label
            if not _is_numeric(label.dtype):
                raise DatasetError(
                    f"label column {label_column!r} is not numeric (dtype {label.dtype}); encode it as "
                    f"numbers, e.g. df[{label_column!r}] = (df[{label_column!r}] == 'yes').astype(int)"
                )
            label_missing = label.isna().to_numpy()
            if label_missing.any():
                raise DatasetError(
                    f"label column {label_column!r} has {int(label_missing.sum())} missing values "
                    f"(at {_positions(label_missing)}); drop those rows or fill in their labels"
                )
        problems = find_not_numbers(df, exclude=(id_column, label_column))
        numbers = {c: _numbers(df[c]) for c in df.columns if c not in (id_column, label_column)}
        other = [
            (c, str(df[c].dtype))
            for c, v in numbers.items()
            if not _is_numeric(v.dtype) and not _is_text(v.dtype)
        ]
        if problems or other:
            described = "; ".join(
                f"column {c!r} ({t}) is not numeric: turn it into a number (e.g. a date into days since a "
                f"reference date) or drop it (df.drop(columns=[{c!r}]))"
                for c, t in other
            )
            raise DatasetError("; ".join(m for m in (not_numbers_message(problems), described) if m))
        if label_column is not None:
            numbers[label_column] = label
        out: dict[str, object] = {}
        for c in df.columns:
            out[c] = id_strings.to_numpy() if c == id_column else _stored_values(numbers[c], c)
        table = pd.DataFrame(out)
        table[id_column] = table[id_column].astype(str)
        return table

    def _row(self, name: str) -> Dataset | None:
        with self._db.session() as session:
            return session.exec(select(Dataset).where(Dataset.name == name)).first()

    def _names(self) -> builtins.list[str]:
        with self._db.session() as session:
            return builtins.list(session.exec(select(Dataset.name).order_by(col(Dataset.name))).all())

    def _discard_file(self, path: str) -> None:
        """Delete a just-written file unless a dataset row uses it; keep it if the database cannot tell."""
        with contextlib.suppress(StoreError, SQLAlchemyError):
            with self._db.session() as session:
                users = session.exec(
                    select(func.count()).select_from(Dataset).where(Dataset.path == path)
                ).one()
            if users == 0:
                self._files.delete(path)

    def _get_row(self, name: str) -> Dataset:
        row = self._row(name)
        if row is None:
            names = self._names()
            if not names:
                known = (
                    "no dataset is registered yet; register one with register(df, name=..., id_column=...)"
                )
            else:
                shown = ", ".join(repr(n) for n in names[:20]) + (", …" if len(names) > 20 else "")
                known = f"known datasets: {shown}"
            raise NotFound(f"dataset {name!r} not found; {known}")
        return row

    def list(self) -> builtins.list[DatasetInfo]:
        """Return every registered dataset, sorted by name."""
        with self._db.session() as session:
            rows = session.exec(select(Dataset).order_by(col(Dataset.name))).all()
        return [DatasetInfo.from_row(r) for r in rows]

    def share(self, name: str, user: str) -> DatasetInfo:
        """Let local user `user` see and use dataset `name` (the owner always can)."""
        with self._db.session() as session:
            row = session.exec(select(Dataset).where(Dataset.name == name)).first()
            if row is None:
                self._get_row(name)
            assert row is not None
            if user not in row.shared_with:
                row.shared_with = [*row.shared_with, user]
                session.add(row)
            info = DatasetInfo.from_row(row)
        return info

    def path_of(self, name: str) -> str:
        """The stored table's path under the artifact root (for worker processes that read it directly)."""
        return self._get_row(name).path

    def get(self, name: str) -> DatasetInfo:
        """Return the info of dataset `name`; NotFound (listing the known names) if there is none."""
        return DatasetInfo.from_row(self._get_row(name))

    def load(self, name: str) -> pd.DataFrame:
        """Return the stored table of dataset `name`, after checking its file against the recorded sha256."""
        row = self._get_row(name)
        try:
            data = self._files.read_bytes(row.path)
        except NotFound as exc:
            raise StoreError(
                f"artifact missing: the file '{row.path}' of dataset {name!r} is not under "
                f"'{self._files.root}'; restore it from a backup, or delete and re-register the dataset"
            ) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != row.sha256 or len(data) != row.size_bytes:
            raise StoreError(
                f"artifact corrupted: the file '{row.path}' of dataset {name!r} has sha256 {actual[:12]}… "
                f"({len(data)} bytes) instead of {row.sha256[:12]}… ({row.size_bytes} bytes); "
                "restore it from a backup, or delete and re-register the dataset"
            )
        return table_from_parquet_bytes(data)

    def preview(self, name: str, n: int = 10) -> pd.DataFrame:
        """Return the first `n` rows of dataset `name`."""
        return self.load(name).head(n)

    def summary(self, name: str) -> pd.DataFrame:
        """Return per column: dtype, count, missing, missing_rate, mean, std, min, quartiles, max, unique."""
        df = self.load(name)
        rows = []
        for c in df.columns:
            s = df[c]
            missing = int(s.isna().sum())
            stats: dict[str, object] = {
                "dtype": str(s.dtype),
                "count": int(s.count()),
                "missing": missing,
                "missing_rate": missing / len(s) if len(s) else float("nan"),
            }
            values = s.to_numpy(dtype=np.float64, na_value=np.nan) if _is_numeric(s.dtype) else np.empty(0)
            present = values[~np.isnan(values)]
            stats["mean"] = float(np.mean(present)) if len(present) else float("nan")
            stats["std"] = float(np.std(present, ddof=1)) if len(present) > 1 else float("nan")
            for key, q in (("min", 0.0), ("25%", 0.25), ("50%", 0.5), ("75%", 0.75), ("max", 1.0)):
                stats[key] = float(np.quantile(present, q)) if len(present) else float("nan")
            stats["unique"] = int(s.nunique(dropna=True))
            rows.append(stats)
        return pd.DataFrame(rows, index=pd.Index([str(c) for c in df.columns], name="column"))

    def delete(self, name: str) -> None:
        """Remove dataset `name` and its file (kept if another dataset shares it); NotFound if absent."""
        row = self._get_row(name)
        with self._db.session() as session:
            current = session.exec(select(Dataset).where(Dataset.name == name)).first()
            if current is not None:
                session.delete(current)
        self._discard_file(row.path)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._row(name) is not None
