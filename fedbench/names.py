"""Rules for the names people choose (parties, datasets): checked once, with a message that shows a valid one."""

from __future__ import annotations

import re

from fedbench.errors import ConfigError, DatasetError

_PARTY = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_party_name(name: str) -> str:
    """Return `name` if it can name a party (it becomes a DNS name in the party's certificate)."""
    if not isinstance(name, str) or not _PARTY.match(name):
        raise ConfigError(
            f"party name {name!r} is not valid: use 1-63 lower-case letters, digits or '-', "
            "starting with a letter (for example 'bank-a')"
        )
    return name


def check_dataset_name(name: str) -> str:
    """Return `name` if it can name a dataset (it is used in file names and URLs)."""
    if not isinstance(name, str) or not _DATASET.match(name):
        raise DatasetError(
            f"dataset name {name!r} is not valid: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (for example 'customers_2024')"
        )
    return name
