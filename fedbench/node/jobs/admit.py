"""Admitting a job: the initiator's `submit` and `cancel`, and the peer-facing handlers of every job message.

The initiator validates the pipeline, computes the job (`plan.job_spec`), has each member admit it (project
checks and quotas, see `projects.py`) and learns which steps every member can reuse; then it starts the job on
each member (`job.start`) and here. Both sides of each exchange are here: `submit` and `on_job`, `job.start`,
`job.fail`, `job.cancel`, `job.done`.
"""

from __future__ import annotations

from typing import Any

from fedbench.errors import FedbenchError, Refused
from fedbench.node.jobs.context import JobContext
from fedbench.node.jobs.events import TERMINAL, JobEvents
from fedbench.node.jobs.plan import Planner, default_roles, job_spec
from fedbench.node.jobs.run import Runner, wire_code
from fedbench.node.jobs.spec import JobSpec
from fedbench.node.users import Caller
from fedbench.pipeline import Pipeline
from fedbench.store import Job, Project

__all__ = ["Admission"]


class Admission:
    """Starts and cancels jobs on every party, and answers partners' messages about theirs."""

    def __init__(self, ctx: JobContext, events: JobEvents, planner: Planner, runner: Runner) -> None:
        self._ctx = ctx
        self._events = events
        self._planner = planner
        self._runner = runner

    def submit(
        self,
        caller: Caller,
        project: str,
        pipeline: dict[str, Any],
        *,
        roles: dict[str, list[str]] | None = None,
        force: bool = False,
    ) -> str:
        """Validate, admit on every member, decide reuse, start; returns the job's id."""
        caller.require("analyst", "run jobs")
        projects = self._ctx.projects
        row = projects.project_row(caller, project)
        projects.require_active(caller, row)
        plan = Pipeline.from_dict(pipeline)
        roles = roles or default_roles(row, plan)
        ordered = plan.validate(roles)
        try:
            spec = job_spec(row, plan.name, ordered, roles, force)
        except Refused as exc:
            raise projects.refused_here(caller, row, "job.submit", str(exc)) from None
        self._planner.check_artifact_inputs(row, ordered, roles)
        answers = projects.authorize_job(caller, project, spec=spec.to_wire())["answers"]
        reuse = set() if force else self._planner.reusable(spec)
        for answer in answers.values():
            reuse &= set(answer.get("have", []))
        self._events.record(row, spec, self._ctx.party)
        started: list[str] = []
        self._events.live_for(spec.job_id)
        for member in spec.members:
            if member == self._ctx.party:
                continue
            try:
                self._ctx.request(
                    member,
                    "job.start",
                    row.id,
                    projects.token_for(row.id),
                    {"job_id": spec.job_id, "reuse": sorted(reuse)},
                )
            except FedbenchError as exc:
                reason = f"{member} could not start the job: {exc}"
                self._events.set_job(spec.job_id, "failed", reason)
                for other in started:
                    self._ctx.tell(row, other, "job.cancel", {"job_id": spec.job_id, "reason": reason})
                raise
            started.append(member)
        self._runner.start(spec, reuse)
        return spec.job_id

    def cancel(self, caller: Caller, job_id: str) -> None:
        """Stop a job on every party; its state becomes `cancelled`."""
        caller.require("analyst", "cancel jobs")
        job = self._ctx.job(caller, job_id)
        if job.state not in TERMINAL:
            party = self._ctx.party
            self._runner.stop(job_id, "cancelled", f"cancelled by {caller.name} at {party}")
            project = self._ctx.project(job.project)
            for member in JobSpec.from_wire(job.spec).members:
                if member != party:
                    self._ctx.tell(
                        project, member, "job.cancel", {"job_id": job_id, "reason": f"cancelled by {party}"}
                    )

    def announce_recovery(self, interrupted: list[Job]) -> None:
        """Tell the other parties of jobs interrupted by our restart that those jobs failed."""
        party = self._ctx.party
        for job in interrupted:
            reason = f"{party} was restarted while the job ran"
            project = self._ctx.project(job.project)
            for member in JobSpec.from_wire(job.spec).members:
                if member != party:
                    self._ctx.tell(project, member, "job.fail", {"job_id": job.id, "reason": reason})

    # ----- the partner's side ---------------------------------------------------------------------------

    def plan_job(self, sender: str, project: Project, wire: Any) -> dict[str, Any]:
        """A partner's spec as we recompute it (`Planner.plan_job`), in wire form for the project service."""
        return self._planner.plan_job(sender, project, wire).to_wire()

    def held(self, wire: dict[str, Any]) -> set[str]:
        """The steps of a job (as we recomputed it) this node would reuse as they stand."""
        return self._planner.held(JobSpec.from_wire(wire))

    def on_job(self, sender: str, project: Project, expected: dict[str, Any]) -> dict[str, Any]:
        """Record an admitted job (as we recomputed it) and say which of its steps we could reuse."""
        spec = JobSpec.from_wire(expected)
        if self._ctx.party in spec.members:
            self._events.record(project, spec, sender)
        return {"have": sorted(self._planner.reusable(spec))}

    def on_start(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        job, spec = self._job_of(sender, project, body)
        if job.initiator != sender:
            raise Refused("only the job's initiator can start it")
        if job.state != "queued":
            raise Refused(f"job {job.id} is {job.state}: a job starts once")
        reuse = body.get("reuse", [])
        if not isinstance(reuse, list):
            raise Refused("job.start carries the reuse set as a list of step keys")
        self._runner.start(spec, {str(k) for k in reuse})
        return {"started": True}

    def on_fail(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        job, _ = self._job_of(sender, project, body)
        reason = str(body.get("reason"))[:2000]
        said = reason if reason.split(" ", 1)[0].rstrip(":") == sender else f"{sender} failed: {reason}"
        self._runner.stop(job.id, "failed", said, wire_code(body.get("code")))
        return {"received": True}

    def on_done(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        job, _ = self._job_of(sender, project, body)
        if job.initiator != self._ctx.party:
            raise Refused("only the job's initiator collects `done` messages")
        live = self._events.live_for(job.id)
        with live.changed:
            live.finished_parties.add(sender)
            live.changed.notify_all()
        return {"received": True}

    def on_cancel(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        job, _ = self._job_of(sender, project, body)
        self._runner.stop(job.id, "cancelled", str(body.get("reason", f"cancelled by {sender}"))[:2000])
        return {"received": True}

    def _job_of(self, sender: str, project: Project | None, body: dict[str, Any]) -> tuple[Job, JobSpec]:
        """The job a control message names: of the project whose token was presented, with `sender` a party.

        The refusal says the same whether the job exists in another project or not at all.
        """
        assert project is not None
        job_id = str(body.get("job_id"))
        with self._ctx.db.session() as session:
            job = session.get(Job, job_id)
        if job is None or not job.spec or job.project != project.id:
            raise Refused(f"no job {job_id[:64]!r} of project {project.name!r} here")
        spec = JobSpec.from_wire(job.spec)
        if sender not in spec.members:
            raise Refused(f"{sender} is not a party of job {job_id}")
        return job, spec
