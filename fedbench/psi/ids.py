"""ID preparation for PSI: table columns to one normalised key per row, empties dropped, duplicates handled.

Both parties must prepare their keys the same way, or equal people will not match: the rules are explicit and
documented here and in docs/protocols/psi.md. Per column, in order: the value as text (missing -> empty; an
integral float such as 42.0, which pandas makes of an int column with gaps, -> "42"), Unicode NFC, `strip`,
`lower`, `regex` (keep what it captures), then the `kind` rule ("text": nothing more, "phone", "email"). A value
that a rule rejects becomes empty. Several columns combine into one key by length-prefixing each part
(``"3:abc5:hello"``), which no choice of values can make ambiguous; a row with any empty part is dropped.

* `regex` keeps what it captures: the first match of ``re.search``, its groups concatenated (the whole match
  when it has none); no match -> empty.
* Phone: separators (space, -, ., parentheses, /) go, a leading 00 becomes +, "+44 (0)20..." drops the (0);
  "+digits" is kept; a national number (no + or 00) gets "+<country_code>" without its trunk 0 when
  `country_code` is set, else stays bare digits; anything else (letters, extensions) -> empty.
* Email: trimmed and lower-cased; one @ with text on both sides and no space, else empty; `gmail_dots` (off
  by default) removes the dots of the local part at gmail.com/googlemail.com and writes gmail.com.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fedbench.psi.errors import DuplicateIdError, IdPreparationError

__all__ = ["DUPLICATES", "KINDS", "Normalise", "PreparedIds", "normalise_values", "prepare_ids"]

KINDS = ("text", "phone", "email")
DUPLICATES = ("error", "first")

_PHONE_SEPARATORS = re.compile(r"[\s\-.()/\u00a0]")
_PHONE_TRUNK = re.compile(r"^(\+|00)(\d+)\s*\(0\)")
_DIGITS = re.compile(r"[0-9]+")
_GMAIL = ("gmail.com", "googlemail.com")


@dataclass(frozen=True)
class Normalise:
    """How one column's values become ID text: NFC, strip, lower, regex, then the kind's rule (see the
    module docstring for the regex, phone and email rules)."""

    kind: str = "text"
    strip: bool = True
    lower: bool = False
    regex: str | None = None
    nfc: bool = True
    country_code: str | None = None
    gmail_dots: bool = False
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise IdPreparationError(f"normalisation kind must be one of {KINDS}, got {self.kind!r}")
        if self.regex is not None:
            try:
                object.__setattr__(self, "_pattern", re.compile(self.regex))
            except re.error as exc:
                raise IdPreparationError(f"regex {self.regex!r} does not compile: {exc}") from None
        if self.country_code is not None:
            code = self.country_code.lstrip("+")
            if not re.fullmatch(r"[0-9]{1,4}", code):
                raise IdPreparationError(
                    f"country_code must be 1-4 digits such as '44', got {self.country_code!r}"
                )
            object.__setattr__(self, "country_code", code)

    def apply(self, value: str) -> str:
        """The normalised text of one value (empty when a rule rejects it)."""
        if self.strip:
            value = value.strip()
        if self.lower:
            value = value.lower()
        if self._pattern is not None:
            match = self._pattern.search(value)
            if match is None:
                return ""
            value = "".join(g or "" for g in match.groups()) if self._pattern.groups else match.group(0)
        if self.kind == "phone":
            return _phone(value, self.country_code)
        if self.kind == "email":
            return _email(value, self.gmail_dots)
        return value


@dataclass(frozen=True)
class PreparedIds:
    """The PSI keys of a table: `keys[i]` is the key of row `row_positions[i]` (a position, not a label)."""

    keys: list[str]
    row_positions: np.ndarray[Any, np.dtype[np.int64]]
    n_empty: int
    n_duplicates: int
    n_rows: int = 0

    def summary(self) -> dict[str, int]:
        """Counts for a report: rows in, empty keys dropped, duplicates dropped, keys out."""
        return {
            "rows": self.n_rows,
            "empty": self.n_empty,
            "duplicates": self.n_duplicates,
            "keys": len(self.keys),
        }


NormaliseSpec = Normalise | str | Mapping[str, "Normalise | str"]


def prepare_ids(
    frame: pd.DataFrame,
    columns: str | Sequence[str],
    normalise: NormaliseSpec = Normalise(),
    duplicates: str = "error",
) -> PreparedIds:
    """One key per row of `columns`, empty keys dropped; `normalise` is a rule, a kind name or {column: either}.

    `duplicates="error"` raises DuplicateIdError with the count and examples; "first" keeps each key's first row.
    """
    if duplicates not in DUPLICATES:
        raise IdPreparationError(f"duplicates must be one of {DUPLICATES}, got {duplicates!r}")
    names = [columns] if isinstance(columns, str) else list(columns)
    if not names:
        raise IdPreparationError("give at least one ID column")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise IdPreparationError(f"ID column(s) {missing} not in the table; it has {list(frame.columns)}")
    if len(set(names)) != len(names):
        raise IdPreparationError(f"ID columns {names} repeat a column")
    rules = _rules(normalise, names)
    parts = [normalise_values(frame[name], rules[name]) for name in names]
    empty = np.zeros(len(frame), dtype=bool)
    for part in parts:
        empty |= np.fromiter((not value for value in part), dtype=bool, count=len(part))
    combined = parts[0] if len(parts) == 1 else [_combine(row) for row in zip(*parts, strict=True)]
    positions = np.flatnonzero(~empty).astype(np.int64)
    keys = pd.Series([combined[i] for i in positions.tolist()], dtype=object)
    repeated = keys.duplicated(keep="first").to_numpy()
    n_duplicates = int(repeated.sum())
    if n_duplicates and duplicates == "error":
        examples = ", ".join(
            f"{key!r} (row {row})"
            for key, row in zip(
                keys[repeated].head(3).tolist(), positions[repeated][:3].tolist(), strict=True
            )
        )
        raise DuplicateIdError(
            f"{n_duplicates} rows repeat the key of an earlier row, e.g. {examples}; "
            "fix the data or pass duplicates='first' to keep the first row of each key"
        )
    keep = ~repeated
    return PreparedIds(
        keys=keys[keep].tolist(),
        row_positions=positions[keep],
        n_empty=int(empty.sum()),
        n_duplicates=n_duplicates,
        n_rows=len(frame),
    )


def normalise_values(series: pd.Series, rule: Normalise | str = Normalise()) -> list[str]:
    """The normalised text of each value of `series` ("" for missing or rejected values)."""
    if isinstance(rule, str):
        rule = Normalise(kind=rule)
    missing = series.isna().to_numpy()
    texts = [_text(value) for value in series.to_numpy(dtype=object)]
    if rule.nfc:
        texts = pd.Series(texts, dtype=object).str.normalize("NFC").tolist()
    apply = rule.apply
    return ["" if gone else apply(text) for text, gone in zip(texts, missing.tolist(), strict=True)]


def _rules(normalise: NormaliseSpec, names: list[str]) -> dict[str, Normalise]:
    if isinstance(normalise, (Normalise, str)):
        rule = Normalise(kind=normalise) if isinstance(normalise, str) else normalise
        return {name: rule for name in names}
    unknown = set(normalise) - set(names)
    if unknown:
        raise IdPreparationError(
            f"normalise names column(s) {sorted(unknown)} that are not ID columns {names}"
        )
    rules = {}
    for name in names:
        given = normalise.get(name, Normalise())
        rules[name] = Normalise(kind=given) if isinstance(given, str) else given
    return rules


def _combine(parts: tuple[str, ...]) -> str:
    """Length-prefixed concatenation: "3:abc5:hello" cannot be read two ways."""
    return "".join(f"{len(part)}:{part}" for part in parts)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return ""
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _phone(value: str, country_code: str | None) -> str:
    text = _PHONE_TRUNK.sub(r"\1\2", value.strip())
    text = _PHONE_SEPARATORS.sub("", text)
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        return text if _DIGITS.fullmatch(text[1:]) else ""
    if not _DIGITS.fullmatch(text):
        return ""
    if country_code is None:
        return text
    return "+" + country_code + (text[1:] if text.startswith("0") else text)


def _email(value: str, gmail_dots: bool) -> str:
    text = value.strip().lower()
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in text):
        return ""
    if gmail_dots and domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"
