"""The PSI release policy: who receives the intersected rows of a PSI, and which policy is narrower than which.

This module is its only statement. The project terms, the `psi` component, the protocol core, the node's record
of what was released and the dashboards all ask here, so a policy is added or changed in one place. A PSI has
two sides, the party that proposed the project (`initiator`) and its partner (`partner`); a policy names the
sides that get the rows.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "LABELS",
    "NARROWEST",
    "RELEASES",
    "SIDES",
    "Release",
    "receivers",
    "receives_rows",
    "released_to",
    "releases_rows",
    "within",
]

Release = Literal["both", "initiator", "partner", "count_only"]
RELEASES: tuple[Release, ...] = get_args(Release)
"""Every release policy, widest first."""
SIDES = ("initiator", "partner")
"""The two sides of a PSI."""
NARROWEST: Release = "count_only"
"""The policy that gives rows to nobody (only the number of matches): what an unknown policy counts as."""

_RECEIVERS: dict[str, frozenset[str]] = {
    "both": frozenset(SIDES),
    "initiator": frozenset({"initiator"}),
    "partner": frozenset({"partner"}),
    NARROWEST: frozenset(),
}

LABELS: dict[str, str] = {
    "both": "Both parties",
    "initiator": "Only the party that proposes the project",
    "partner": "Only the party that accepts the project",
    NARROWEST: "Nobody: only the number of matches",
}
"""Each policy in plain words, as a business user picks it."""


def receivers(release: str) -> frozenset[str]:
    """The sides (`initiator`, `partner`) that receive the rows under `release`; none for an unknown policy."""
    return _RECEIVERS.get(release, frozenset())


def receives_rows(release: str, side: str) -> bool:
    """Whether `side` receives the intersected rows under `release`."""
    return side in receivers(release)


def releases_rows(release: str) -> bool:
    """Whether `release` gives rows to anyone at all (every policy but `count_only`)."""
    return bool(receivers(release))


def released_to(release: str, parties: tuple[str, ...], initiator: str) -> tuple[str, ...]:
    """The parties, of a PSI between `parties`, that receive the intersected rows under `release`."""
    sides = receivers(release)
    return tuple(p for p in parties if ("initiator" if p == initiator else "partner") in sides)


def within(agreed: str) -> tuple[Release, ...]:
    """The policies a run may choose under the `agreed` one: those that give rows to no side it does not."""
    allowed = receivers(agreed)
    return tuple(r for r in RELEASES if receivers(r) <= allowed)
