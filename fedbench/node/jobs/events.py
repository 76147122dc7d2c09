"""A job's events and state on this node: the live event log (`LiveJob`), the job and task rows, logs, outputs.

Everything the job service writes goes through here: the runner reports, `queries` reads back.
"""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from fedbench.node.jobs.context import JobContext
from fedbench.node.jobs.plan import role_of
from fedbench.node.jobs.spec import JobSpec, JobStep
from fedbench.store import Artifact, Job, Metric, Project, Task
from fedbench.store.models import StepWarning, utcnow

__all__ = ["TERMINAL", "JobEvents", "LiveJob"]

TERMINAL = {"succeeded", "failed", "cancelled"}
_SPAWN = multiprocessing.get_context("spawn")


@dataclass
class LiveJob:
    """In-memory state of a job this node is running: its event log and its stop signals."""

    job_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    cancel: Any = field(default_factory=_SPAWN.Event)
    stop_reason: str | None = None
    stop_state: str = "cancelled"
    stop_code: str | None = None
    """The code of the error class that stopped the job (ours or a partner's), when known."""
    done: bool = False
    finished_parties: set[str] = field(default_factory=set)

    def emit(self, event: dict[str, Any]) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()


class JobEvents:
    """The live state of the jobs running here and every write of a job's rows, metrics, warnings and log."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self.live: dict[str, LiveJob] = {}
        self._lock = threading.Lock()

    def live_for(self, job_id: str) -> LiveJob:
        """The in-memory state of a job, created on first use (a peer's `done` may come before our start)."""
        with self._lock:
            if job_id not in self.live:
                self.live[job_id] = LiveJob(job_id)
            return self.live[job_id]

    def record(self, project: Project, spec: JobSpec, initiator: str) -> None:
        """Store an admitted job (its spec in wire form) and a queued task for each step we play."""
        party = self._ctx.party
        with self._ctx.db.session() as session:
            job = session.get(Job, spec.job_id)
            if job is None:
                job = Job(id=spec.job_id, project=project.id, use=",".join(spec.uses))
            job.name, job.spec, job.initiator, job.state = spec.name, spec.to_wire(), initiator, "queued"
            session.add(job)
            for step in spec.steps:
                role = role_of(spec.roles, party, step.component)
                if role is None:
                    continue
                session.add(
                    Task(
                        id=f"{spec.job_id}:{step.name}",
                        job_id=spec.job_id,
                        step=step.name,
                        step_key=step.key,
                        component=step.component,
                        role=role,
                        party=party,
                        state="queued",
                    )
                )

    def recover(self) -> list[Job]:
        """After a restart: whatever was queued or running here was interrupted; returns those jobs."""
        reason = f"interrupted: node {self._ctx.party} restarted"
        interrupted: list[Job] = []
        with self._ctx.db.session() as session:
            for task in session.exec(select(Task).where(col(Task.state).in_(["queued", "running"]))).all():
                task.state, task.error, task.finished_at = "failed", reason, utcnow()
                session.add(task)
            for job in session.exec(select(Job).where(col(Job.state).in_(["queued", "running"]))).all():
                job.state, job.error, job.finished_at = "failed", reason, utcnow()
                session.add(job)
                if job.spec:
                    interrupted.append(job)
        return interrupted

    def set_job(self, job_id: str, state: str, error: str | None = None, code: str | None = None) -> None:
        """Write a job's state (and its error and the error's code, when it failed)."""
        with self._ctx.db.session() as session:
            job = session.get(Job, job_id)
            if job is not None:
                job.state, job.error, job.error_code = state, error, code
                if state in TERMINAL:
                    job.finished_at = utcnow()
                session.add(job)

    def set_task(
        self,
        job_id: str,
        step: str,
        state: str,
        *,
        progress: float | None = None,
        message: str | None = None,
        error: str | None = None,
        code: str | None = None,
        started: bool = False,
    ) -> None:
        """Write this party's task of a step: its state, progress, message or error."""
        with self._ctx.db.session() as session:
            task = session.get(Task, f"{job_id}:{step}")
            if task is None:
                return
            task.state = state
            if progress is not None:
                task.progress = progress
            if message is not None:
                task.message = message
            if error is not None:
                task.error = error
                task.error_code = code
            if started:
                task.started_at = utcnow()
            if state in TERMINAL or state == "reused":
                task.finished_at = utcnow()
            session.add(task)

    def add_metric(self, job_id: str, step: str, name: str, value: Any, iteration: Any) -> None:
        """Store one metric value a step logged."""
        with self._ctx.db.session() as session:
            session.add(
                Metric(
                    job_id=job_id,
                    step=step,
                    party=self._ctx.party,
                    name=name,
                    iteration=iteration,
                    value=value,
                )
            )

    def add_warning(self, job_id: str, step: str, message: str) -> None:
        """Store a step's warning (shown with the step) and write it to the job's log."""
        with self._ctx.db.session() as session:
            session.add(StepWarning(job_id=job_id, step=step, party=self._ctx.party, message=message))
        self.write_log(job_id, f"[{step}] warning: {message}")

    def store_outputs(self, spec: JobSpec, step: JobStep, outputs: list[dict[str, Any]]) -> None:
        """Record a succeeded step's outputs as artifacts keyed `<step key>:<output>` (replacing older ones)."""
        project_id = self._ctx.stored(spec.job_id).project
        with self._ctx.db.session() as session:
            for out in outputs:
                key = f"{step.key}:{out['name']}"
                existing = session.get(Artifact, key)
                if existing is not None:
                    session.delete(existing)
                    session.flush()
                session.add(
                    Artifact(
                        key=key,
                        project=project_id,
                        job_id=spec.job_id,
                        task_id=f"{spec.job_id}:{step.name}",
                        name=out["name"],
                        kind=out["kind"],
                        path=out["path"],
                        sha256=out["sha256"],
                        size_bytes=out["size"],
                    )
                )

    def log_path(self, job_id: str) -> Path:
        """Where the job's log on this party is."""
        return self._ctx.home / "jobs" / f"{job_id}.log"

    def write_log(self, job_id: str, line: str) -> None:
        """Append a line to the job's log."""
        path = self.log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(line.rstrip("\n") + "\n")
