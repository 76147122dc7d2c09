"""The terms of a project every member agrees to: allowed uses, quotas and the PSI release policy.

One pydantic model, validated when a project is proposed and again when a proposal arrives from a partner,
so a malformed or hostile proposal is refused with the field at fault.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Use = Literal["psi", "train", "score"]

__all__ = ["RELEASE_POLICIES", "USES", "ProjectTerms"]

USES = ("psi", "train", "score")
RELEASE_POLICIES = ("both", "initiator", "partner", "count_only")


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
    release: Literal["both", "initiator", "partner", "count_only"] = Field(
        default="initiator", description="who receives the intersected IDs of a PSI"
    )

    def receives_ids(self, party: str, initiator: str) -> bool:
        """Whether `party` may receive the intersected rows of a PSI started by `initiator`."""
        if self.release == "both":
            return True
        if self.release == "initiator":
            return party == initiator
        if self.release == "partner":
            return party != initiator
        return False
