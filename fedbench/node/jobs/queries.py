"""Reading jobs: a job with its steps, a project's jobs, metrics, logs, artifacts and the live event stream.

What the control API serves (`runs.get`, `runs.list`, `runs.metrics`, `runs.logs`, `artifacts.list`, the
`watch` stream); every read checks the caller may see the job's project.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlmodel import col, select

from fedbench.errors import NotFound
from fedbench.node.jobs.context import JobContext
from fedbench.node.jobs.events import JobEvents
from fedbench.node.jobs.plan import step_inputs
from fedbench.node.jobs.spec import JobSpec
from fedbench.node.users import Caller
from fedbench.store import Artifact, Job, Metric, Task
from fedbench.store.models import StepWarning

__all__ = ["JobQueries"]


class JobQueries:
    """The read side of the job service, as plain data for the control API."""

    def __init__(self, ctx: JobContext, events: JobEvents) -> None:
        self._ctx = ctx
        self._events = events

    def get(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """A job with its steps (this party's tasks), as plain data."""
        job = self._ctx.job(caller, job_id)
        with self._ctx.db.session() as session:
            tasks = session.exec(select(Task).where(Task.job_id == job_id)).all()
            warned = session.exec(
                select(StepWarning).where(StepWarning.job_id == job_id).order_by(col(StepWarning.id))
            ).all()
        spec = JobSpec.from_wire(job.spec)
        order = [s.name for s in spec.steps]
        inputs = step_inputs(spec)
        params = {s.name: dict(s.params) for s in spec.steps}
        steps = sorted(
            (
                {
                    "step": t.step,
                    "component": t.component,
                    "role": t.role,
                    "state": t.state,
                    "progress": t.progress,
                    "message": t.message,
                    "error": t.error,
                    "error_code": t.error_code,
                    "key": t.step_key,
                    "inputs": inputs.get(t.step, {}),
                    "params": params.get(t.step, {}),
                    "warnings": [w.message for w in warned if w.step == t.step],
                    "started_at": t.started_at.isoformat() if t.started_at else None,
                }
                for t in tasks
            ),
            key=lambda s: order.index(s["step"]) if s["step"] in order else len(order),
        )
        return {
            "job_id": job.id,
            "project": self._ctx.project(job.project).name,
            "name": job.name,
            "state": job.state,
            "error": job.error,
            "error_code": job.error_code,
            "initiator": job.initiator,
            "steps": steps,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        }

    def list_for(self, caller: Caller, project: str) -> list[dict[str, Any]]:
        """The jobs of a project, newest first."""
        row = self._ctx.projects.project_row(caller, project)
        with self._ctx.db.session() as session:
            jobs = session.exec(
                select(Job)
                .where(Job.project == row.id, col(Job.spec).is_not(None))
                .order_by(col(Job.created_at).desc())
            ).all()
        return [self.get(caller, j.id) for j in jobs if j.spec]

    def metrics(self, caller: Caller, job_id: str) -> list[dict[str, Any]]:
        """Every metric value logged by the job's steps on this party."""
        self._ctx.job(caller, job_id)
        with self._ctx.db.session() as session:
            rows = session.exec(select(Metric).where(Metric.job_id == job_id).order_by(col(Metric.id))).all()
        return [
            {
                "step": m.step,
                "party": m.party,
                "name": m.name,
                "iteration": m.iteration,
                "value": m.value,
                "ts": m.ts.isoformat(),
            }
            for m in rows
        ]

    def logs(self, caller: Caller, job_id: str) -> str:
        """The job's log on this party."""
        self._ctx.job(caller, job_id)
        path = self._events.log_path(job_id)
        return path.read_text() if path.exists() else ""

    def artifacts(self, caller: Caller, project: str) -> list[dict[str, Any]]:
        """Every artifact this party holds for a project."""
        row = self._ctx.projects.project_row(caller, project)
        with self._ctx.db.session() as session:
            items = session.exec(
                select(Artifact).where(Artifact.project == row.id).order_by(col(Artifact.created_at))
            ).all()
            steps = {t.step_key: t for t in session.exec(select(Task).where(Task.state == "succeeded")).all()}
        result = []
        for a in items:
            task = steps.get(a.key.split(":")[0])
            result.append(
                {
                    "id": a.key,
                    "name": a.name,
                    "kind": a.kind,
                    "job_id": a.job_id,
                    "size": a.size_bytes,
                    "step": task.step if task else None,
                    "component": task.component if task else None,
                    "created_at": a.created_at.isoformat(),
                }
            )
        return result

    def artifact(self, caller: Caller, artifact_id: str) -> Artifact:
        """One artifact of a project the caller may see."""
        with self._ctx.db.session() as session:
            item = session.get(Artifact, artifact_id)
        if item is None:
            raise NotFound(f"no artifact {artifact_id!r} on {self._ctx.party!r}")
        self._ctx.projects.project_row(caller, self._ctx.project(item.project).name)
        return item

    def watch(
        self, caller: Caller, job_id: str, since: int = 0, timeout: float = 3600.0
    ) -> Iterator[dict[str, Any]]:
        """Stream the job's events from index `since` until it ends (or `timeout` passes)."""
        job = self._ctx.job(caller, job_id)
        live = self._events.live.get(job_id)
        if live is None:
            yield {
                "type": "job",
                "state": job.state,
                "error": job.error,
                "error_code": job.error_code,
                "index": 0,
            }
            return
        index = since
        waited = 0.0
        while True:
            with live.changed:
                if index >= len(live.events) and not live.done:
                    live.changed.wait(1.0)
                    waited += 1.0
                pending, done = live.events[index:], live.done
            for event in pending:
                yield {**event, "index": index}
                index += 1
            if (done and index >= len(live.events)) or waited > timeout:
                return
