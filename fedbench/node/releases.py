"""What the PSIs of a project released, and to whom, read from one node's own records.

A node decides what a partner may already know of its rows (e.g. before `score` sends partial scores of them)
from what it stored itself: the specs of the project's jobs it admitted, its own PSI `metrics` output (the
release policy the PSI actually ran under, and whether rows were released at all) and its own PSI `data`
output (its rows in the intersection). Nothing a peer says about a PSI counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from sqlmodel import select

from fedbench.federation import PsiRelease
from fedbench.net import codec
from fedbench.psi.release import released_to
from fedbench.store import Artifact, ArtifactFiles, Database, Job, Project

__all__ = ["psi_releases", "released_to"]


def psi_releases(database_url: str, files: ArtifactFiles, project_id: str) -> list[PsiRelease]:
    """Every PSI step of the project that released rows, as this node recorded it (its own outputs only)."""
    with Database(database_url) as db, db.session() as session:
        project = session.get(Project, project_id)
        jobs = {j.id: j for j in session.exec(select(Job).where(Job.project == project_id)).all()}
        stored = {
            a.key: a for a in session.exec(select(Artifact).where(Artifact.project == project_id)).all()
        }
    if project is None:
        return []
    found = []
    for job in jobs.values():
        roles = job.spec.get("roles", {}) if job.spec else {}
        parties = tuple(p for role in ("guest", "host") for p in roles.get(role, []))
        for step in job.spec.get("steps", []) if job.spec else []:
            metrics = stored.get(f"{step.get('key')}:metrics")
            if step.get("component") != "psi" or metrics is None or metrics.job_id != job.id:
                continue
            outcome: Any = codec.decode(files.read_bytes(metrics.path))
            if not isinstance(outcome, dict) or not outcome.get("released"):
                continue
            data = stored.get(f"{step['key']}:data")
            found.append(
                PsiRelease(
                    job_id=job.id,
                    step=str(step.get("name")),
                    parties=parties,
                    released_to=released_to(str(outcome.get("release")), parties, project.initiator),
                    our_rows=None if data is None else _reader(files, data.path),
                )
            )
    return found


def _reader(files: ArtifactFiles, path: str) -> Callable[[], pd.DataFrame]:
    def read() -> pd.DataFrame:
        return files.read_table(path)

    return read
