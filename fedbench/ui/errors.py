"""Errors of the user interface: what a form or dashboard refuses, said in words a business user reads.

A `FormError` carries one message per field (`fields`), so the form shows each next to the field at fault
and code that calls `run()` gets the same messages in the exception.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedbench.errors import FedbenchError

__all__ = ["FormError", "PlotError"]


class FormError(FedbenchError):
    """A form's values cannot be used; `fields` maps each field at fault to what is wrong with it."""

    code = "form"

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        self.fields: dict[str, str] = dict(fields or {})
        details = "; ".join(f"{name}: {problem}" for name, problem in self.fields.items())
        super().__init__(f"{message} ({details})" if details else message)


class PlotError(FedbenchError):
    """The data given to a plot cannot draw it (lengths differ, one class only, no values...)."""

    code = "plot"
