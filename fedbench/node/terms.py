"""The terms of a project every member agrees to: allowed uses, quotas and the PSI release policy.

One pydantic model, validated when a project is proposed and again when a proposal arrives from a partner,
so a malformed or hostile proposal is refused with the field at fault. Terms, caps included, are fixed once
agreed: `differences` is how a node tells that a partner's copy says something else. `caveats` says, in plain
words beside the terms, which promises hold only while the partner runs fedbench unmodified.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from fedbench.psi.release import LABELS as RELEASE_LABELS
from fedbench.psi.release import Release

Use = Literal["psi", "train", "score"]

__all__ = ["USES", "USE_LABELS", "ProjectTerms", "caveats", "terms_in_words"]

USES = ("psi", "train", "score")
USE_LABELS = {"psi": "Match IDs (PSI)", "train": "Train models", "score": "Score customers"}
"""Each use in plain words, as a business user reads it."""


class ProjectTerms(BaseModel):
    """What a project allows, and how much of it."""

    model_config = {"extra": "forbid"}

    uses: list[Use] = Field(
        default_factory=lambda: list[Use](["psi", "train", "score"]),
        min_length=1,
        description="what jobs of this project may do",
    )
    jobs_per_day: int = Field(
        default=50, ge=0, le=100_000, description="jobs any member may start per UTC day"
    )
    psi_runs: int = Field(default=10, ge=0, le=100_000, description="PSI runs in the project's whole life")
    max_psi_rows: dict[str, int] = Field(
        default_factory=dict,
        description="per party: the largest ID set it may bring to a PSI (filled from its datasets if absent)",
    )
    min_intersection: int = Field(
        default=100, ge=0, description="below this intersection size no PSI result is released to anyone"
    )
    release: Release = Field(default="initiator", description="who receives the intersected IDs of a PSI")

    def differences(self, other: ProjectTerms, *, fill: Collection[str] = ()) -> list[str]:
        """How `other` differs from these terms, one phrase per field; [] when they agree.

        A PSI cap we hold must be repeated unchanged; a cap we do not hold yet may appear in `other` only for
        the parties in `fill` (members whose acceptance we have not seen).
        """
        found = []
        for name in type(self).model_fields:
            if name == "max_psi_rows":
                continue
            mine, theirs = getattr(self, name), getattr(other, name)
            if (sorted(mine) if name == "uses" else mine) != (sorted(theirs) if name == "uses" else theirs):
                found.append(f"{name}: agreed {mine!r}, now {theirs!r}")
        for party, rows in self.max_psi_rows.items():
            if other.max_psi_rows.get(party) != rows:
                found.append(
                    f"max_psi_rows[{party!r}]: agreed {rows!r}, now {other.max_psi_rows.get(party)!r}"
                )
        for party in sorted(set(other.max_psi_rows) - set(self.max_psi_rows) - set(fill)):
            found.append(f"max_psi_rows[{party!r}]: not agreed, now {other.max_psi_rows[party]!r}")
        return found


def caveats(terms: ProjectTerms, *, arbiter: bool = False) -> list[str]:
    """Plain sentences on what these terms do not stop, shown beside them when a user accepts a project.

    The quotas, uses, datasets and caps are enforced by our own node against any partner; these are the
    limits of the protocols themselves, or guarantees that hold only while the partner runs fedbench
    unmodified (see docs/security.md). `arbiter`: the project has a member without data, which counts the
    intersection of a PSI under `count_only` or a minimum (the arbiter gate, docs/protocols/psi.md).
    """
    found = []
    if "psi" in terms.uses:
        found.append(
            "Largest ID set (declared PSI size): a partner can bring any identifiers it likes within that "
            "size, and learns which of them are your customers whenever matched IDs go to it."
        )
        if arbiter and (terms.release != "both" or terms.min_intersection > 0):
            held = f"The minimum intersection of {terms.min_intersection} holds"
            if terms.release != "both":
                held = (
                    f"Release {terms.release!r} and the minimum intersection of {terms.min_intersection} hold"
                )
            found.append(
                f"{held} even against a partner running modified code, because the "
                "project's arbiter counts the intersection, assuming the arbiter does not collude with a partner "
                "and reports the count honestly: an arbiter that colludes lets that partner learn which of its "
                "own IDs are your customers (never your other customers)."
            )
        elif terms.release != "both":
            found.append(
                f"Release {terms.release!r} and the minimum intersection of {terms.min_intersection} hold only "
                "while the partner runs fedbench unmodified: a partner whose modified code counts the "
                "intersection learns which of its own IDs are your customers and can report any count (your "
                "node marks a count it did not make itself as the partner's report)."
            )
    if "train" in terms.uses:
        found.append(
            "Logistic regression (hetero_lr) is protected only against a partner that runs fedbench "
            "unmodified: each side learns what docs/protocols/hetero_lr.md lists (e.g. the host its batch "
            "gradients), and a partner running modified code can spoil the model."
        )
        found.append(
            "Boosted trees (hetero_secureboost): the host learns which rows reach every tree node, and the "
            "guest on which side of each host split every training row falls; a guest running modified code "
            "can also learn the host's bin of each row for the host's features (it chooses what the host sums)."
        )
    if "score" in terms.uses:
        found.append(
            "Scoring: every exact score shown to the guest tells it the host's part of that score; a partner "
            "running modified code can return wrong scores."
        )
    return found


def terms_in_words(terms: Mapping[str, Any]) -> list[str]:
    """A project's terms as plain sentences (what the projects dashboard and the JupyterLab sidebar show)."""
    uses = ", ".join(USE_LABELS.get(u, u) for u in terms.get("uses", []))
    release = terms.get("release", "")
    found = [
        f"Allowed: {uses}",
        f"Up to {int(terms.get('jobs_per_day', 0)):,} jobs a day, {int(terms.get('psi_runs', 0)):,} PSI runs in all",
        f"A PSI result is released only if at least {int(terms.get('min_intersection', 0)):,} IDs match",
        f"Matched IDs go to: {RELEASE_LABELS.get(release, str(release))}",
    ]
    rows = terms.get("max_psi_rows") or {}
    if rows:
        found.append(
            "Largest ID sets in a PSI: " + ", ".join(f"{p} {int(n):,}" for p, n in sorted(rows.items()))
        )
    return found
