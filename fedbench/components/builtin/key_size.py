"""The Paillier key-size param, one definition for every component that encrypts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

__all__ = ["KeyBits", "key_bits_field"]

KeyBits = Literal[1024, 2048, 3072]


def _no_type(schema: dict[str, Any]) -> None:
    """A key size is a choice in the forms, not a number to step through."""
    schema.pop("type", None)


def key_bits_field(what: str) -> Any:
    """The `key_bits` field: 2048 by default, 1024 for tests only, 3072 for long-lived data."""
    return Field(
        default=2048,
        description=f"Paillier key size for {what} (1024 for tests only)",
        json_schema_extra=_no_type,
    )
