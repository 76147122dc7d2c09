"""Reading user tables (CSV or parquet files, raw bytes, DataFrames) and converting tables to parquet bytes.

Every way a source can be unusable (missing, a directory, empty, unknown format, unparseable) becomes one
`DatasetError` naming the source and the fix, so notebook users never see a bare parser traceback.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fedbench.errors import DatasetError

SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
FORMATS = ("csv", "parquet")
_SUPPORTED = "supported formats are CSV (.csv) and parquet (.parquet, .pq)"

TableSource: TypeAlias = str | os.PathLike[str] | pd.DataFrame | bytes | bytearray | memoryview


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _normalise_fmt(fmt: str, where: str) -> str:
    key = fmt.lower().lstrip(".")
    key = "parquet" if key == "pq" else key
    if key not in FORMATS:
        raise DatasetError(f"{where}: unknown format {fmt!r}; {_SUPPORTED}: pass fmt='csv' or fmt='parquet'")
    return key


def _parse(buffer: io.BytesIO | Path, fmt: str, where: str, id_column: str | None) -> pd.DataFrame:
    try:
        if fmt == "csv":
            dtype = {id_column: str} if id_column else None
            return pd.read_csv(buffer, dtype=dtype)
        return pd.read_parquet(buffer, engine="pyarrow")
    except pd.errors.EmptyDataError as exc:
        raise DatasetError(
            f"{where} has no columns (it is blank); give a CSV file whose first line names the columns"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{where} is not readable as UTF-8 text ({_one_line(exc)}); save it as UTF-8 CSV or as parquet"
        ) from exc
    except PermissionError as exc:
        raise DatasetError(
            f"{where} cannot be read: permission denied; check the file's permissions"
        ) from exc
    except (pd.errors.ParserError, pa.ArrowException, ValueError, OSError) as exc:
        raise DatasetError(
            f"{where} is not a readable {fmt} file: {_one_line(exc)}; check that it really is {fmt} "
            "(or pass the right fmt=) and that it is not truncated"
        ) from exc


def _check_shape(df: pd.DataFrame, where: str) -> pd.DataFrame:
    if df.shape[1] == 0:
        raise DatasetError(f"{where} has no columns; give a table with an id column and feature columns")
    if df.shape[0] == 0:
        raise DatasetError(
            f"{where} has columns ({', '.join(map(str, df.columns[:10]))}) but no rows; "
            "give a table with data"
        )
    return df


def read_table_source(
    source: TableSource, *, fmt: str | None = None, id_column: str | None = None
) -> pd.DataFrame:
    """Read a CSV or parquet file, raw CSV/parquet bytes (`fmt` required), or copy a DataFrame.

    `id_column` (CSV only) is read as text, so that ids such as '007' keep their leading zeros.
    """
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, bytes | bytearray | memoryview):
        where = "the given bytes"
        if fmt is None:
            raise DatasetError(
                f"{where} have no file name to tell their format; pass fmt='csv' or fmt='parquet'"
            )
        key = _normalise_fmt(fmt, where)
        data = bytes(source)
        if not data:
            raise DatasetError(f"{where} are empty; give the content of a CSV or parquet file")
        return _check_shape(_parse(io.BytesIO(data), key, where, id_column), where)
    if not isinstance(source, str | os.PathLike):
        raise DatasetError(
            f"cannot read a table from a {type(source).__name__}; give a file path, a pandas DataFrame, "
            "or bytes with fmt="
        )
    path = Path(source).expanduser()
    where = f"file '{path}'"
    if not path.exists():
        raise DatasetError(
            f"{where} not found (current directory: '{Path.cwd()}'); check the path, or give an absolute one"
        )
    if path.is_dir():
        raise DatasetError(f"{where} is a directory; give the path of a CSV or parquet file inside it")
    if path.stat().st_size == 0:
        raise DatasetError(f"{where} is empty (0 bytes); give a CSV or parquet file that holds the table")
    if fmt is not None:
        key = _normalise_fmt(fmt, where)
    elif path.suffix.lower() in SUFFIX_FORMATS:
        key = SUFFIX_FORMATS[path.suffix.lower()]
    else:
        raise DatasetError(
            f"{where}: cannot tell the format from the suffix {path.suffix or '(none)'!r}; "
            f"{_SUPPORTED}: rename the file or pass fmt='csv' or fmt='parquet'"
        )
    return _check_shape(_parse(path, key, where, id_column), where)


def table_to_parquet_bytes(df: pd.DataFrame) -> bytes:
    """Serialise `df` (without its index) to parquet bytes; deterministic for a given pyarrow version."""
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DatasetError(
            f"the table cannot be stored as parquet: {_one_line(exc)}; give every column a single type "
            "(for example with df[col].astype(str) or pd.to_numeric(df[col]))"
        ) from exc
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def table_from_parquet_bytes(data: bytes) -> pd.DataFrame:
    """Read parquet bytes written by `table_to_parquet_bytes` back into a DataFrame."""
    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


def table_to_csv_bytes(df: pd.DataFrame) -> bytes:
    """`df` as CSV for people (no index): a float column holding only whole numbers is written as integers.

    Datasets keep a whole-number column with gaps as float (NaN marks the gaps for the components), so without
    this a download would write 2.0 where the user's file had 2; the values are the same, only written plainly.
    """
    out = df.copy()
    for name in out.columns:
        column = out[name]
        if not pd.api.types.is_float_dtype(column.dtype):
            continue
        present = column.dropna()
        if len(present) and bool(((present % 1 == 0) & (present.abs() < 2**53)).all()):
            out[name] = column.astype("Int64")
    return out.to_csv(index=False).encode()
