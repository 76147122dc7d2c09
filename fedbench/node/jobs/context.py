"""`JobContext`: what every part of the job service shares: the node's party, home, stores and peer channel.

Also the few lookups they all make (a job's row, a project's row) and `tell`, the best-effort message to a
partner about a job (a failure, a cancel, a `done`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedbench.errors import FedbenchError, NotFound
from fedbench.node.projects import ProjectService
from fedbench.node.users import Caller
from fedbench.store import Database, DatasetRegistry, Job, Project

__all__ = ["JobContext", "Request"]

log = logging.getLogger("fedbench.jobs")

Request = Callable[[str, str, str | None, str | None, dict[str, Any]], Any]
"""Sends one control message to a partner: (party, action, project id, project token, body) -> answer."""


@dataclass
class JobContext:
    """The node's side of every job: who we are, where our files and records are, how we reach partners."""

    party: str
    home: Path
    db: Database
    datasets: DatasetRegistry
    projects: ProjectService
    request: Request

    def stored(self, job_id: str) -> Job:
        """The job's row (one with a spec: a job run here, not a mere admission)."""
        with self.db.session() as session:
            job = session.get(Job, job_id)
        if job is None or not job.spec:
            raise NotFound(f"no job {job_id!r} on {self.party!r}")
        return job

    def project(self, project_id: str) -> Project:
        """A project's row by id."""
        with self.db.session() as session:
            project = session.get(Project, project_id)
        if project is None:
            raise NotFound(f"no project {project_id!r} on {self.party!r}")
        return project

    def job(self, caller: Caller, job_id: str) -> Job:
        """The job's row, if the caller may see its project."""
        job = self.stored(job_id)
        self.projects.project_row(caller, self.project(job.project).name)
        return job

    def tell(self, project: Project, member: str, action: str, body: dict[str, Any]) -> None:
        """Send a job message to a partner; a partner we cannot reach is logged, not raised."""
        try:
            self.request(member, action, project.id, self.projects.token_for(project.id), body)
        except FedbenchError as exc:
            log.warning("could not tell %s about %s: %s", member, action, exc)
