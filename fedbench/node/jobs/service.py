"""`JobService`: the node's job service, a thin facade over its parts (plan, admit, run, events, queries).

It wires the parts together, hooks them into the project service (admission, the peer-facing job messages,
stopping a project's jobs) and exposes what the node and its control API call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fedbench.node.heartbeat import Heartbeat, Ping
from fedbench.node.jobs.admit import Admission
from fedbench.node.jobs.context import JobContext, Request
from fedbench.node.jobs.events import JobEvents
from fedbench.node.jobs.plan import Planner
from fedbench.node.jobs.queries import JobQueries
from fedbench.node.jobs.run import Runner
from fedbench.node.projects import ProjectService
from fedbench.node.users import Caller
from fedbench.node.worker_pool import WorkerPool
from fedbench.store import Artifact, Database, DatasetRegistry

__all__ = ["JobService"]


class JobService:
    """Runs the jobs of one node and answers its peers about theirs."""

    def __init__(
        self,
        party: str,
        home: Path,
        db: Database,
        datasets: DatasetRegistry,
        projects: ProjectService,
        request: Request,
        *,
        workers: WorkerPool | None = None,
    ) -> None:
        self.party = party
        ctx = JobContext(party, home, db, datasets, projects, request)
        self._events = JobEvents(ctx)
        planner = Planner(ctx)
        self._runner = Runner(ctx, self._events, planner, workers or WorkerPool(0))
        self._admission = Admission(ctx, self._events, planner, self._runner)
        self._queries = JobQueries(ctx, self._events)
        projects.plan_job = self._admission.plan_job
        projects.on_job = self._admission.on_job
        projects.held_steps = self._admission.held
        projects.on_stop = self._runner.stop_project
        projects.add_handler("job.start", self._admission.on_start)
        projects.add_handler("job.fail", self._admission.on_fail)
        projects.add_handler("job.cancel", self._admission.on_cancel)
        projects.add_handler("job.done", self._admission.on_done)
        self._interrupted = self._events.recover()

    # ----- what the node sets -------------------------------------------------------------------------

    @property
    def on_finished(self) -> Callable[[dict[str, Any], str], None]:
        """Called with a job's spec (wire form) and final state once it has ended here (audit anchors hook in)."""
        return self._runner.on_finished

    @on_finished.setter
    def on_finished(self, hook: Callable[[dict[str, Any], str], None]) -> None:
        self._runner.on_finished = hook

    @property
    def task_settings(self) -> dict[str, float]:
        """Put in every step's task: the node's `send_deadline` and `recv_timeout` (set by the node)."""
        return self._runner.task_settings

    @task_settings.setter
    def task_settings(self, settings: dict[str, float]) -> None:
        self._runner.task_settings = settings

    @property
    def heartbeat(self) -> Heartbeat | None:
        """Pings the other parties of each running job (set by `watch_peers`)."""
        return self._runner.heartbeat

    def watch_peers(self, ping: Ping) -> None:
        """Ping the other parties of every job while it runs here; a silent one fails the job."""
        self._runner.watch_peers(ping)

    def stop_all(self, reason: str, timeout: float) -> None:
        """The node is stopping: fail the jobs running here and end their workers (`Runner.stop_all`)."""
        self._runner.stop_all(reason, timeout)

    def announce_recovery(self) -> None:
        """Tell the other parties of jobs interrupted by our restart that those jobs failed (once serving)."""
        interrupted, self._interrupted = self._interrupted, []
        self._admission.announce_recovery(interrupted)

    # ----- the initiator's side -----------------------------------------------------------------------

    def submit(
        self,
        caller: Caller,
        project: str,
        pipeline: dict[str, Any],
        *,
        roles: dict[str, list[str]] | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Validate, admit on every member, decide reuse, start; returns the job as `get` shows it."""
        job_id = self._admission.submit(caller, project, pipeline, roles=roles, force=force)
        return self._queries.get(caller, job_id)

    def cancel(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """Stop a job on every party; its state becomes `cancelled`."""
        self._admission.cancel(caller, job_id)
        return self._queries.get(caller, job_id)

    # ----- reading --------------------------------------------------------------------------------------

    def get(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """A job with its steps (this party's tasks), as plain data."""
        return self._queries.get(caller, job_id)

    def list_for(self, caller: Caller, project: str) -> list[dict[str, Any]]:
        """The jobs of a project, newest first."""
        return self._queries.list_for(caller, project)

    def metrics(self, caller: Caller, job_id: str) -> list[dict[str, Any]]:
        """Every metric value logged by the job's steps on this party."""
        return self._queries.metrics(caller, job_id)

    def logs(self, caller: Caller, job_id: str) -> str:
        """The job's log on this party."""
        return self._queries.logs(caller, job_id)

    def artifacts(self, caller: Caller, project: str) -> list[dict[str, Any]]:
        """Every artifact this party holds for a project."""
        return self._queries.artifacts(caller, project)

    def artifact(self, caller: Caller, artifact_id: str) -> Artifact:
        """One artifact of a project the caller may see."""
        return self._queries.artifact(caller, artifact_id)

    def watch(
        self, caller: Caller, job_id: str, since: int = 0, timeout: float = 3600.0
    ) -> Iterator[dict[str, Any]]:
        """Stream the job's events from index `since` until it ends (or `timeout` passes)."""
        return self._queries.watch(caller, job_id, since, timeout)
