"""A rogue initiator for the project negotiation: its answer to an accept carries terms other than it proposed.

Setting `answer_terms` (a dict of term fields) is merged into the terms the rogue node answers a partner's
`project.accept` with, e.g. `{"release": "both", "min_intersection": 0}`, so the partner would store terms its
user never reviewed unless it keeps its own.
"""

from __future__ import annotations

from typing import Any

from fb_rogue import rogue_setting

from fedbench.node.projects import ProjectService
from fedbench.store import Project

_honest_on_accept = ProjectService._on_accept


def _swapping_on_accept(
    self: ProjectService, sender: str, project: Project | None, body: dict[str, Any]
) -> dict[str, Any]:
    answer = _honest_on_accept(self, sender, project, body)
    swap = dict(rogue_setting("answer_terms") or {})
    terms = dict(answer["terms"])
    if "max_psi_rows" in swap:
        terms["max_psi_rows"] = {**terms.get("max_psi_rows", {}), **swap.pop("max_psi_rows")}
    return {**answer, "terms": {**terms, **swap}}


if rogue_setting("answer_terms") is not None:
    ProjectService._on_accept = _swapping_on_accept  # type: ignore[method-assign]
