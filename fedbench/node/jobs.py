"""Jobs: pipelines run by the nodes (not the kernel), one worker process per step and party.

The initiator's node validates the pipeline, computes every step's cache key, has each member admit the job
(project checks and quotas, see `projects.py`) and learns which steps every member can reuse; then each node
runs its own side of the steps in order. A step reused on every party is not executed; a step that fails on
one party fails the job on all of them at once, with that party's reason. Both sides of each exchange are
here: `submit` and `_on_job` (validation and reuse answer), `_start` and `_on_start`, `_fail` and `_on_fail`,
`cancel` and `_on_cancel`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from fedbench import components
from fedbench.errors import ERRORS_BY_CODE, FedbenchError, NotFound, PeerUnavailable, Refused
from fedbench.node.heartbeat import Heartbeat, Ping
from fedbench.node.projects import ProjectService
from fedbench.node.task_spec import TaskInput, TaskSpec
from fedbench.node.users import Caller
from fedbench.node.worker_pool import WorkerPool
from fedbench.pipeline import Pipeline, PipelineError, Step, step_keys
from fedbench.store import Artifact, Database, DatasetRegistry, Job, Metric, Project, Task
from fedbench.store.models import StepWarning, utcnow

__all__ = ["JobService", "job_spec"]

log = logging.getLogger("fedbench.jobs")

TERMINAL = {"succeeded", "failed", "cancelled"}
ARBITER = "arbiter"
"""The role of a party that brings no data and only coordinates: a dataset named once is not its input."""
_SPAWN = multiprocessing.get_context("spawn")
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass
class _Live:
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


class JobService:
    """Runs the jobs of one node and answers its peers about theirs."""

    def __init__(
        self,
        party: str,
        home: Path,
        db: Database,
        datasets: DatasetRegistry,
        projects: ProjectService,
        request: Callable[[str, str, str | None, str | None, dict[str, Any]], Any],
        *,
        workers: WorkerPool | None = None,
    ) -> None:
        self.party = party
        self._workers = workers or WorkerPool(0)
        """Where each step's worker process comes from: warm from the node's pool, or started cold."""
        self._home = home
        self._db = db
        self._datasets = datasets
        self._projects = projects
        self._request = request
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        projects.plan_job = self._plan_job
        projects.on_job = self._on_job
        projects.held_steps = self._held
        projects.on_stop = self._stop_project
        self.on_finished: Callable[[dict[str, Any], str], None] = lambda spec, state: None
        """Called with a job's spec and final state once it has ended here (the audit anchors hook in)."""
        self.task_settings: dict[str, float] = {}
        """Put in every step's task: the node's `send_deadline` and `recv_timeout` (set by the node)."""
        self.heartbeat: Heartbeat | None = None
        """Pings the other parties of each running job (set by the node with `watch_peers`)."""
        projects.add_handler("job.start", self._on_start)
        projects.add_handler("job.fail", self._on_fail)
        projects.add_handler("job.cancel", self._on_cancel)
        projects.add_handler("job.done", self._on_done)
        self._recover()

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
        caller.require("analyst", "run jobs")
        row = self._projects.project_row(caller, project)
        self._projects.require_active(caller, row)
        plan = Pipeline.from_dict(pipeline)
        roles = roles or _default_roles(row)
        ordered = plan.validate(roles)
        try:
            spec = job_spec(row, plan.name, ordered, roles, force)
        except Refused as exc:
            raise self._projects.refused_here(caller, row, "job.submit", str(exc)) from None
        self._check_artifact_inputs(row, ordered, roles)
        answers = self._projects.authorize_job(caller, project, spec=spec)["answers"]
        reuse = set() if force else self._reusable(spec)
        for answer in answers.values():
            reuse &= set(answer.get("have", []))
        self._record(row, spec, self.party)
        started: list[str] = []
        self._live_for(spec["job_id"])
        for member in _members(spec):
            if member == self.party:
                continue
            try:
                self._request(
                    member,
                    "job.start",
                    row.id,
                    self._projects.token_for(row.id),
                    {"job_id": spec["job_id"], "reuse": sorted(reuse)},
                )
            except FedbenchError as exc:
                reason = f"{member} could not start the job: {exc}"
                self._set_job(spec["job_id"], "failed", reason)
                for other in started:
                    self._tell(row, other, "job.cancel", {"job_id": spec["job_id"], "reason": reason})
                raise
            started.append(member)
        self._start(spec, reuse)
        return self.get(caller, spec["job_id"])

    def cancel(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """Stop a job on every party; its state becomes `cancelled`."""
        caller.require("analyst", "cancel jobs")
        job = self._job(caller, job_id)
        if job.state not in TERMINAL:
            self._stop(job_id, "cancelled", f"cancelled by {caller.name} at {self.party}")
            project = self._project(job.project)
            for member in _members(job.spec):
                if member != self.party:
                    self._tell(
                        project,
                        member,
                        "job.cancel",
                        {"job_id": job_id, "reason": f"cancelled by {self.party}"},
                    )
        return self.get(caller, job_id)

    # ----- reading --------------------------------------------------------------------------------------

    def get(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """A job with its steps (this party's tasks), as plain data."""
        job = self._job(caller, job_id)
        with self._db.session() as session:
            tasks = session.exec(select(Task).where(Task.job_id == job_id)).all()
            warned = session.exec(
                select(StepWarning).where(StepWarning.job_id == job_id).order_by(col(StepWarning.id))
            ).all()
        order = [s["name"] for s in job.spec.get("steps", [])]
        inputs = _step_inputs(job.spec)
        params = {s["name"]: dict(s.get("params") or {}) for s in job.spec.get("steps", [])}
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
            "project": self._project(job.project).name,
            "name": job.name,
            "state": job.state,
            "error": job.error,
            "error_code": job.error_code,
            "initiator": job.initiator,
            "steps": steps,
            "created_at": job.created_at.isoformat(),
        }

    def list_for(self, caller: Caller, project: str) -> list[dict[str, Any]]:
        """The jobs of a project, newest first."""
        row = self._projects.project_row(caller, project)
        with self._db.session() as session:
            jobs = session.exec(
                select(Job)
                .where(Job.project == row.id, col(Job.spec).is_not(None))
                .order_by(col(Job.created_at).desc())
            ).all()
        return [self.get(caller, j.id) for j in jobs if j.spec]

    def metrics(self, caller: Caller, job_id: str) -> list[dict[str, Any]]:
        """Every metric value logged by the job's steps on this party."""
        self._job(caller, job_id)
        with self._db.session() as session:
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
        self._job(caller, job_id)
        path = self._log_path(job_id)
        return path.read_text() if path.exists() else ""

    def artifacts(self, caller: Caller, project: str) -> list[dict[str, Any]]:
        """Every artifact this party holds for a project."""
        row = self._projects.project_row(caller, project)
        with self._db.session() as session:
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
        with self._db.session() as session:
            item = session.get(Artifact, artifact_id)
        if item is None:
            raise NotFound(f"no artifact {artifact_id!r} on {self.party!r}")
        self._projects.project_row(caller, self._project(item.project).name)
        return item

    def watch(
        self, caller: Caller, job_id: str, since: int = 0, timeout: float = 3600.0
    ) -> Iterator[dict[str, Any]]:
        """Stream the job's events from index `since` until it ends (or `timeout` passes)."""
        job = self._job(caller, job_id)
        live = self._live.get(job_id)
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

    # ----- the partner's side ---------------------------------------------------------------------------

    def _plan_job(self, sender: str, project: Project, spec: Any) -> dict[str, Any]:
        """Validate a submitted spec exactly as its initiator did and recompute the job from it.

        Everything admission decides on (uses, our datasets, PSI sizes) comes from this recomputation with
        our own records (the project's pinned datasets, the component registry), never from the sender's
        description; the step keys must agree with the sender's, or the nodes disagree on what runs.
        """
        if not isinstance(spec, dict):
            raise Refused("a job's spec is a mapping: {job_id, name, roles, force, steps}")
        try:
            roles = _checked_roles(spec["roles"], project)
            job_id = _checked_job_id(spec["job_id"])
            steps = [{k: v for k, v in step.items() if k != "key"} for step in spec["steps"]]
            plan = Pipeline.from_dict({"name": str(spec.get("name", "pipeline")), "steps": steps})
            ordered = plan.validate(roles)
            expected = job_spec(project, plan.name, ordered, roles, bool(spec.get("force")), job_id=job_id)
            self._check_artifact_inputs(project, ordered, roles)
            theirs = [str(s["key"]) for s in spec["steps"]]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise Refused(f"malformed job spec from {sender}: {type(exc).__name__}: {exc}") from None
        if [s["key"] for s in expected["steps"]] != theirs:
            raise Refused(
                "the job's cache keys differ from ours: are both nodes on the same fedbench version?"
            )
        return expected

    def _on_job(self, sender: str, project: Project, expected: dict[str, Any]) -> dict[str, Any]:
        """Record an admitted job (as we recomputed it) and say which of its steps we could reuse."""
        if self.party in _members(expected):
            self._record(project, expected, sender)
        return {"have": sorted(self._reusable(expected))}

    def _job_of(self, sender: str, project: Project | None, body: dict[str, Any]) -> Job:
        """The job a control message names: of the project whose token was presented, with `sender` a party.

        The refusal says the same whether the job exists in another project or not at all.
        """
        assert project is not None
        job_id = str(body.get("job_id"))
        with self._db.session() as session:
            job = session.get(Job, job_id)
        if job is None or not job.spec or job.project != project.id:
            raise Refused(f"no job {job_id[:64]!r} of project {project.name!r} here")
        if sender not in _members(job.spec):
            raise Refused(f"{sender} is not a party of job {job_id}")
        return job

    def _on_start(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        job = self._job_of(sender, project, body)
        if job.initiator != sender:
            raise Refused("only the job's initiator can start it")
        if job.state != "queued":
            raise Refused(f"job {job.id} is {job.state}: a job starts once")
        reuse = body.get("reuse", [])
        if not isinstance(reuse, list):
            raise Refused("job.start carries the reuse set as a list of step keys")
        self._start(job.spec, {str(k) for k in reuse})
        return {"started": True}

    def _on_fail(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        job = self._job_of(sender, project, body)
        reason = str(body.get("reason"))[:2000]
        said = reason if reason.split(" ", 1)[0].rstrip(":") == sender else f"{sender} failed: {reason}"
        self._stop(job.id, "failed", said, _wire_code(body.get("code")))
        return {"received": True}

    def _on_done(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        job = self._job_of(sender, project, body)
        if job.initiator != self.party:
            raise Refused("only the job's initiator collects `done` messages")
        live = self._live_for(job.id)
        with live.changed:
            live.finished_parties.add(sender)
            live.changed.notify_all()
        return {"received": True}

    def _on_cancel(self, sender: str, project: Project | None, body: dict[str, Any]) -> dict[str, Any]:
        job = self._job_of(sender, project, body)
        self._stop(job.id, "cancelled", str(body.get("reason", f"cancelled by {sender}"))[:2000])
        return {"received": True}

    # ----- running ----------------------------------------------------------------------------------------

    def watch_peers(self, ping: Ping) -> None:
        """Ping the other parties of every job while it runs here; a silent one fails the job (`_peer_lost`)."""
        self.heartbeat = Heartbeat(ping)

    def _peer_lost(self, spec: dict[str, Any], party: str, silent: float) -> None:
        """The heartbeat lost `party`: fail the job here with a plain reason and tell the other parties.

        The job's own stop path ends our worker (nothing half-written is stored); the steps that succeeded
        stay stored, so running the job again once the party is back reuses them.
        """
        job_id = spec["job_id"]
        live = self._live.get(job_id)
        if live is None or live.done or live.stop_reason is not None:
            return
        reason = (
            f"{party} stopped answering (last heard {silent:.0f} s ago): its node may have stopped or lost its "
            f"network. Run the job again once {party} is back: the steps that finished are reused."
        )
        self._write_log(job_id, reason)
        self._stop(job_id, "failed", reason, PeerUnavailable.code)
        project = self._project(spec["project"])
        told = {"job_id": job_id, "reason": reason, "code": PeerUnavailable.code}
        for member in _members(spec):
            if member != self.party:
                threading.Thread(
                    target=self._tell,
                    args=(project, member, "job.fail", told),
                    name=f"tell-{member}",
                    daemon=True,
                ).start()

    def _live_for(self, job_id: str) -> _Live:
        """The in-memory state of a job, created on first use (a peer's `done` may come before our start)."""
        with self._lock:
            if job_id not in self._live:
                self._live[job_id] = _Live(job_id)
            return self._live[job_id]

    def _start(self, spec: dict[str, Any], reuse: set[str]) -> None:
        live = self._live_for(spec["job_id"])
        threading.Thread(
            target=self._run_job, args=(spec, reuse, live), name=f"job-{spec['job_id'][:8]}", daemon=True
        ).start()

    def _run_job(self, spec: dict[str, Any], reuse: set[str], live: _Live) -> None:
        job_id = spec["job_id"]
        self._set_job(job_id, "running")
        live.emit({"type": "job", "state": "running"})
        if self.heartbeat is not None:
            others = [p for p in _members(spec) if p != self.party]
            self.heartbeat.watch(job_id, others, functools.partial(self._peer_lost, spec))
        try:
            self._charge_psi(spec, reuse, live)
            for step in spec["steps"]:
                if live.stop_reason is not None:
                    break
                role = _role_of(spec["roles"], self.party, step["component"])
                if role is None:
                    continue
                if step["key"] in reuse:
                    self._set_task(
                        job_id, step["name"], "reused", progress=1.0, message="reused stored outputs"
                    )
                    live.emit({"type": "step", "step": step["name"], "state": "reused"})
                    continue
                self._run_step(spec, step, role, live)
            if live.stop_reason is None:
                self._finish_together(spec, live)
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            self._fail(spec, live, f"{self.party}: {type(exc).__name__}: {exc}")
        finally:
            if self.heartbeat is not None:
                self.heartbeat.unwatch(job_id)
        state = live.stop_state if live.stop_reason is not None else "succeeded"
        self._set_job(job_id, state, live.stop_reason, live.stop_code)
        initiator = self._stored(job_id).initiator
        if state == "succeeded" and initiator != self.party:
            self._tell(self._project(spec["project"]), initiator, "job.done", {"job_id": job_id})
        live.emit({"type": "job", "state": state, "error": live.stop_reason, "error_code": live.stop_code})
        with live.changed:
            live.done = True
            live.changed.notify_all()
        self.on_finished(spec, state)

    def _charge_psi(self, spec: dict[str, Any], reuse: set[str], live: _Live) -> None:
        """Count the PSI steps this node is about to run (not reuse) against the quota; fail the job if used up."""
        psi_keys = set(spec.get("psi_keys", []))
        running = sum(
            s["key"] in psi_keys
            and s["key"] not in reuse
            and _role_of(spec["roles"], self.party, s["component"]) is not None
            for s in spec["steps"]
        )
        try:
            self._projects.charge_psi_runs(spec["job_id"], running)
        except Refused as exc:
            initiator = self._stored(spec["job_id"]).initiator
            reason = f"{self.party} refused to run the PSI: {exc}"
            self._projects.refusal(initiator, "job.psi", spec["project"], reason)
            self._fail(spec, live, reason, exc.code)

    def _finish_together(self, spec: dict[str, Any], live: _Live, timeout: float = 600.0) -> None:
        """On the initiator: wait until every other party has finished and stored its outputs (`job.done`)."""
        if self._stored(spec["job_id"]).initiator != self.party:
            return
        others = set(_members(spec)) - {self.party}
        with live.changed:
            live.changed.wait_for(
                lambda: others <= live.finished_parties or live.stop_reason is not None, timeout
            )
        if not others <= live.finished_parties and live.stop_reason is None:
            self._fail(
                spec, live, f"{sorted(others - live.finished_parties)} did not finish within {timeout:g} s"
            )

    def _fail(self, spec: dict[str, Any], live: _Live, reason: str, code: str | None = None) -> None:
        """Fail the job here and tell every other party at once (with the error's code, when known)."""
        if live.stop_reason is None:
            live.stop_code = code
        live.stop_reason, live.stop_state = live.stop_reason or reason, "failed"
        project = self._project(spec["project"])
        told: dict[str, Any] = {"job_id": spec["job_id"], "reason": reason}
        if code is not None:
            told["code"] = code
        for member in _members(spec):
            if member != self.party:
                self._tell(project, member, "job.fail", told)

    def _run_step(self, spec: dict[str, Any], step: dict[str, Any], role: str, live: _Live) -> None:
        job_id, name = spec["job_id"], step["name"]
        inputs = self._resolve_inputs(spec, step, role)
        task = TaskSpec(
            home=str(self._home),
            project=spec["project"],
            project_info=self._project_info(spec["project"]),
            job_id=job_id,
            step=name,
            component=step["component"],
            role=role,
            roles=spec["roles"],
            params=step["params"],
            inputs={n: TaskInput(kind=str(i["kind"]), path=str(i["path"])) for n, i in inputs.items()},
            **self.task_settings,
        )
        self._set_task(job_id, name, "running", started=True)
        live.emit({"type": "step", "step": name, "state": "running"})
        worker = self._workers.take(task)
        process, events = worker.process, worker.events
        outputs: list[dict[str, Any]] = []
        ending: dict[str, Any] | None = None
        while ending is None:
            if live.stop_reason is not None:
                worker.cancel.set()
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if live.stop_reason is not None:
                    _end(process)
                if not process.is_alive():
                    with contextlib.suppress(queue.Empty):
                        while True:
                            event = events.get(timeout=0.5)
                            ending = ending or self._handle(job_id, name, event, outputs, live)
                    ending = ending or {
                        "type": "failed",
                        "reason": f"worker exited with code {process.exitcode}",
                    }
                continue
            ending = self._handle(job_id, name, event, outputs, live)
        process.join(timeout=10)
        if ending["type"] != "succeeded" and issubclass(
            ERRORS_BY_CODE.get(str(ending.get("code")), FedbenchError), Refused
        ):
            # our role function refused the peer's request (Refused or a subclass, e.g. PeerKeyError): audit it
            # here, also when the peer's own failure reached us first
            initiator = self._stored(job_id).initiator
            reason = f"{self.party} failed at step {name!r}: {ending['reason']}"
            self._projects.refusal(initiator, f"step.{step['component']}", spec["project"], reason)
        if live.stop_reason is not None:
            state = "failed" if live.stop_state == "failed" else "cancelled"
            self._set_task(job_id, name, state, error=live.stop_reason, code=live.stop_code)
            live.emit(
                {
                    "type": "step",
                    "step": name,
                    "state": state,
                    "error": live.stop_reason,
                    "error_code": live.stop_code,
                }
            )
            return
        if ending["type"] == "succeeded":
            self._store_outputs(spec, step, outputs)
            self._set_task(job_id, name, "succeeded", progress=1.0)
            live.emit({"type": "step", "step": name, "state": "succeeded"})
            return
        reason = f"{self.party} failed at step {name!r}: {ending['reason']}"
        code = _wire_code(ending.get("code"))
        self._write_log(job_id, f"[{name}] {reason}\n{ending.get('trace', '')}")
        self._set_task(job_id, name, "failed", error=reason, code=code)
        live.emit({"type": "step", "step": name, "state": "failed", "error": reason, "error_code": code})
        self._fail(spec, live, reason, code)

    def _handle(
        self, job_id: str, step: str, event: dict[str, Any], outputs: list[dict[str, Any]], live: _Live
    ) -> dict[str, Any] | None:
        kind = event.get("type")
        if kind in ("succeeded", "failed"):
            return event
        if kind == "output":
            outputs.append(event)
        elif kind == "progress":
            self._set_task(
                job_id, step, "running", progress=event["fraction"], message=event.get("message", "")
            )
            live.emit(
                {
                    "type": "progress",
                    "step": step,
                    "fraction": event["fraction"],
                    "message": event.get("message", ""),
                }
            )
        elif kind == "metric":
            with self._db.session() as session:
                session.add(
                    Metric(
                        job_id=job_id,
                        step=step,
                        party=self.party,
                        name=event["name"],
                        iteration=event.get("step"),
                        value=event["value"],
                    )
                )
            live.emit(
                {
                    "type": "metric",
                    "step": step,
                    "name": event["name"],
                    "value": event["value"],
                    "iteration": event.get("step"),
                }
            )
        elif kind == "log":
            self._write_log(job_id, f"[{step}] {event['message']}")
            live.emit({"type": "log", "step": step, "message": event["message"]})
        elif kind == "warning":
            message = str(event.get("message", ""))[:2000]
            with self._db.session() as session:
                session.add(StepWarning(job_id=job_id, step=step, party=self.party, message=message))
            self._write_log(job_id, f"[{step}] warning: {message}")
            live.emit({"type": "warning", "step": step, "message": message})
        return None

    def _stop_project(self, project_id: str, reason: str) -> None:
        """Cancel every job of a project that is running here."""
        for job_id, live in list(self._live.items()):
            if not live.done and self._stored(job_id).project == project_id:
                self._stop(job_id, "cancelled", reason)

    def _stop(self, job_id: str, state: str, reason: str, code: str | None = None) -> None:
        live = self._live.get(job_id)
        if live is not None and not live.done:
            if live.stop_reason is None:
                live.stop_reason, live.stop_state, live.stop_code = reason, state, code
            live.cancel.set()
            with live.changed:  # wakes the initiator waiting for the others' `done` (`_finish_together`)
                live.changed.notify_all()
            return
        job = self._stored(job_id)
        if job.state not in TERMINAL:
            self._set_job(job_id, state, reason, code)

    def _resolve_inputs(self, spec: dict[str, Any], step: dict[str, Any], role: str) -> dict[str, Any]:
        """Where this party's inputs of a step are: its own datasets, artifacts of the job's project only.

        The arbiter brings no data: a dataset named once is not resolved for it, nor an artifact it does
        not hold (an upstream step where it wrote no such output); its role function reads only what it has.
        """
        component = components.get(step["component"])
        steps = {s["name"]: s for s in spec["steps"]}
        project = self._project(spec["project"])
        resolved = {}
        for name, ref in step["inputs"].items():
            kind = component.port(name, output=False).kind
            if "dataset" in ref:
                dataset = _dataset_name(ref, self.party, spec["roles"])
                if dataset is None:
                    continue
                resolved[name] = {"kind": "table", "path": self._datasets.path_of(dataset)}
                continue
            artifact_id = (
                f"{steps[ref['step']]['key']}:{ref['output']}" if "step" in ref else str(ref["artifact"])
            )
            item = self._artifact_input(project, step["name"], name, kind, artifact_id, role == ARBITER)
            if item is not None:
                resolved[name] = {"kind": kind, "path": item.path}
        return resolved

    def _artifact_input(
        self, project: Project, step: str, name: str, kind: str, artifact_id: str, absent_ok: bool
    ) -> Artifact | None:
        """An artifact given as a step input: it must be of the job's project here and of the port's kind.

        Artifacts are looked up only within the project: a model made under one project's terms is never
        an input of another project's job (the message is the same whether the id exists elsewhere or not).
        """
        with self._db.session() as session:
            item = session.get(Artifact, artifact_id)
        if item is None and absent_ok:
            return None
        if item is None or item.project != project.id:
            raise PipelineError(
                f"input {name!r} of step {step!r}: {self.party!r} holds no artifact {artifact_id} in project "
                f"{project.name!r}; an artifact of one project is never used in another: run the step that "
                "makes it in this project (or import an exported model of this project)"
            )
        if item.kind != kind:
            raise PipelineError(
                f"input {name!r} of step {step!r} wants a {kind}, but artifact {artifact_id} is a {item.kind}"
            )
        return item

    def _project_info(self, project_id: str) -> dict[str, Any]:
        project = self._project(project_id)
        return {
            "id": project.id,
            "name": project.name,
            "initiator": project.initiator,
            "terms": dict(project.terms),
        }

    def _store_outputs(
        self, spec: dict[str, Any], step: dict[str, Any], outputs: list[dict[str, Any]]
    ) -> None:
        project_id = self._stored(spec["job_id"]).project
        with self._db.session() as session:
            for out in outputs:
                key = f"{step['key']}:{out['name']}"
                existing = session.get(Artifact, key)
                if existing is not None:
                    session.delete(existing)
                    session.flush()
                session.add(
                    Artifact(
                        key=key,
                        project=project_id,
                        job_id=spec["job_id"],
                        task_id=f"{spec['job_id']}:{step['name']}",
                        name=out["name"],
                        kind=out["kind"],
                        path=out["path"],
                        sha256=out["sha256"],
                        size_bytes=out["size"],
                    )
                )

    # ----- bookkeeping --------------------------------------------------------------------------------

    def _check_artifact_inputs(
        self, project: Project, ordered: list[Step], roles: dict[str, list[str]]
    ) -> None:
        """Before a job is admitted: every artifact input of a step we play is ours, of this project."""
        for step in ordered:
            role = _role_of(roles, self.party, step.component)
            if role is None:
                continue
            component = components.get(step.component)
            for name, ref in step.inputs.items():
                if "artifact" in ref:
                    kind = component.port(name, output=False).kind
                    self._artifact_input(
                        project, step.name, name, kind, str(ref["artifact"]), role == ARBITER
                    )

    def _reusable(self, spec: dict[str, Any]) -> set[str]:
        """Steps this party has run before with the same key and whose outputs are still stored intact.

        A step in which we play no role counts as reusable here: whether it runs is up to its parties.
        """
        have = set()
        with self._db.session() as session:
            for step in spec["steps"]:
                if _role_of(spec["roles"], self.party, step["component"]) is None:
                    have.add(step["key"])
                    continue
                done = session.exec(
                    select(Task).where(Task.step_key == step["key"], Task.state == "succeeded").limit(1)
                ).first()
                if done is None:
                    continue
                stored = session.exec(
                    select(Artifact).where(col(Artifact.key).startswith(f"{step['key']}:"))
                ).all()
                if all(self._datasets.files.absolute(a.path).is_file() for a in stored):
                    have.add(step["key"])
        return have

    def _held(self, spec: dict[str, Any]) -> set[str]:
        """The steps of a job this node would reuse as they stand (none when the job is forced to run all)."""
        return set() if spec.get("force") else self._reusable(spec)

    def _record(self, project: Project, spec: dict[str, Any], initiator: str) -> None:
        with self._db.session() as session:
            job = session.get(Job, spec["job_id"])
            if job is None:
                job = Job(id=spec["job_id"], project=project.id, use=",".join(spec["uses"]))
            job.name, job.spec, job.initiator, job.state = spec["name"], spec, initiator, "queued"
            session.add(job)
            for step in spec["steps"]:
                role = _role_of(spec["roles"], self.party, step["component"])
                if role is None:
                    continue
                session.add(
                    Task(
                        id=f"{spec['job_id']}:{step['name']}",
                        job_id=spec["job_id"],
                        step=step["name"],
                        step_key=step["key"],
                        component=step["component"],
                        role=role,
                        party=self.party,
                        state="queued",
                    )
                )

    def _recover(self) -> None:
        """After a restart: whatever was queued or running here was interrupted."""
        reason = f"interrupted: node {self.party} restarted"
        self._interrupted: list[Job] = []
        with self._db.session() as session:
            for task in session.exec(select(Task).where(col(Task.state).in_(["queued", "running"]))).all():
                task.state, task.error, task.finished_at = "failed", reason, utcnow()
                session.add(task)
            for job in session.exec(select(Job).where(col(Job.state).in_(["queued", "running"]))).all():
                job.state, job.error, job.finished_at = "failed", reason, utcnow()
                session.add(job)
                if job.spec:
                    self._interrupted.append(job)

    def announce_recovery(self) -> None:
        """Tell the other parties of jobs interrupted by our restart that those jobs failed (once serving)."""
        for job in self._interrupted:
            reason = f"{self.party} was restarted while the job ran"
            project = self._project(job.project)
            for member in _members(job.spec):
                if member != self.party:
                    self._tell(project, member, "job.fail", {"job_id": job.id, "reason": reason})
        self._interrupted = []

    def _set_job(self, job_id: str, state: str, error: str | None = None, code: str | None = None) -> None:
        with self._db.session() as session:
            job = session.get(Job, job_id)
            if job is not None:
                job.state, job.error, job.error_code = state, error, code
                if state in TERMINAL:
                    job.finished_at = utcnow()
                session.add(job)

    def _set_task(
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
        with self._db.session() as session:
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

    def _job(self, caller: Caller, job_id: str) -> Job:
        job = self._stored(job_id)
        self._projects.project_row(caller, self._project(job.project).name)
        return job

    def _stored(self, job_id: str) -> Job:
        with self._db.session() as session:
            job = session.get(Job, job_id)
        if job is None or not job.spec:
            raise NotFound(f"no job {job_id!r} on {self.party!r}")
        return job

    def _project(self, project_id: str) -> Project:
        with self._db.session() as session:
            project = session.get(Project, project_id)
        if project is None:
            raise NotFound(f"no project {project_id!r} on {self.party!r}")
        return project

    def _tell(self, project: Project, member: str, action: str, body: dict[str, Any]) -> None:
        try:
            self._request(member, action, project.id, self._projects.token_for(project.id), body)
        except FedbenchError as exc:
            log.warning("could not tell %s about %s: %s", member, action, exc)

    def _log_path(self, job_id: str) -> Path:
        return self._home / "jobs" / f"{job_id}.log"

    def _write_log(self, job_id: str, line: str) -> None:
        path = self._log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(line.rstrip("\n") + "\n")


def job_spec(
    project: Project,
    name: str,
    ordered: list[Step],
    roles: dict[str, list[str]],
    force: bool,
    job_id: str | None = None,
) -> dict[str, Any]:
    """A validated pipeline as a job of `project`: its step keys, uses, datasets and PSI sizes per party.

    `psi_steps` counts the steps that use PSI and `psi_keys` names them: each one this node runs (rather
    than reuses) is one PSI run against the project's quota.

    Computed from the project as this node holds it (pinned datasets, terms) and the component registry, on
    the initiator and again on every member: admission decides on this, never on a description sent along.
    A dataset input a party did not authorise for the project is refused.
    """
    import uuid

    pinned = {party: {d["name"]: d for d in items} for party, items in project.datasets.items()}
    parties = sorted({p for members in roles.values() for p in members})
    touched: dict[str, set[str]] = {p: set() for p in parties}
    psi_rows: dict[str, int] = {}

    def dataset_key(ref: dict[str, Any]) -> str:
        parts = []
        for party in parties:
            dataset = _dataset_name(ref, party, roles)
            if dataset is None:
                continue
            entry = pinned.get(party, {}).get(dataset)
            if entry is None:
                raise Refused(
                    f"dataset {dataset!r} of {party!r} is not authorised for project {project.name!r}; "
                    f"authorised: {sorted(pinned.get(party, {}))}"
                )
            touched[party].add(dataset)
            psi_rows[party] = max(psi_rows.get(party, 0), int(entry["n_rows"]))
            parts.append(f"{party}={entry['fingerprint']}")
        return "dataset:" + "|".join(parts)

    keys = step_keys(ordered, roles, dataset_key, project.id)
    step_uses = [{components.get(s.component).use} for s in ordered]
    uses = sorted({u for found in step_uses for u in found})
    return {
        "job_id": job_id or uuid.uuid4().hex,
        "project": project.id,
        "name": name,
        "roles": roles,
        "force": force,
        "uses": uses,
        "datasets": {p: sorted(d) for p, d in touched.items() if d},
        "psi_rows": psi_rows if "psi" in uses else {},
        "psi_steps": sum("psi" in found for found in step_uses),
        "psi_keys": [keys[s.name] for s, found in zip(ordered, step_uses, strict=True) if "psi" in found],
        "steps": [{**s.to_dict(), "key": keys[s.name]} for s in ordered],
    }


def _step_inputs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each step's inputs with a pipeline step's output named as the artifact it is (`<key>:<output>`).

    What a run's listing shows of where a step's rows came from, so a form can tell which tables are aligned.
    """
    keys = {s["name"]: s.get("key") for s in spec.get("steps", [])}
    found: dict[str, dict[str, Any]] = {}
    for step in spec.get("steps", []):
        refs: dict[str, Any] = {}
        for port, ref in dict(step.get("inputs") or {}).items():
            if "step" in ref and keys.get(ref["step"]):
                refs[port] = {"artifact": f"{keys[ref['step']]}:{ref.get('output')}"}
            else:
                refs[port] = dict(ref)
        found[step["name"]] = refs
    return found


def _checked_roles(roles: Any, project: Project) -> dict[str, list[str]]:
    """A peer's role mapping: {role: [party]}, every party a member of the project."""
    if not isinstance(roles, dict) or not all(
        isinstance(r, str) and isinstance(ps, list) and all(isinstance(p, str) for p in ps)
        for r, ps in roles.items()
    ):
        raise Refused("a job's roles are {role: [party, ...]}")
    strangers = sorted({p for ps in roles.values() for p in ps} - set(project.members))
    if strangers:
        raise Refused(
            f"{strangers} are not members of project {project.name!r}: they play no role in its jobs"
        )
    return {r: list(ps) for r, ps in roles.items()}


def _checked_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise Refused("a job id is 1 to 64 letters, digits, '_' or '-'")
    return job_id


def _default_roles(project: Project) -> dict[str, list[str]]:
    """The initiator plays guest; a member that authorised datasets plays host, one that authorised none arbiter.

    `project.datasets` is keyed by party (each member's pinned datasets); an arbiter brings no data and only
    coordinates. The arbiter role is left out when no member is data-less, so two-party jobs look as before.
    """
    others = [m for m in project.members if m != project.initiator]
    roles = {
        "guest": [project.initiator],
        "host": [m for m in others if project.datasets.get(m)],
    }
    arbiters = [m for m in others if not project.datasets.get(m)]
    if arbiters:
        roles[ARBITER] = arbiters
    return roles


def _members(spec: dict[str, Any]) -> list[str]:
    return sorted({p for parties in spec["roles"].values() for p in parties})


def _role_of(roles: dict[str, list[str]], party: str, component: str) -> str | None:
    for role in components.get(component).roles:
        if party in roles.get(role, []):
            return role
    return None


def _dataset_name(ref: dict[str, Any], party: str, roles: dict[str, list[str]]) -> str | None:
    """The dataset `party` reads for a dataset input: one name is every party's but a mere arbiter's."""
    dataset = ref["dataset"]
    if isinstance(dataset, str):
        plays = {role for role, parties in roles.items() if party in parties}
        return None if plays == {ARBITER} else dataset
    return dataset.get(party)


def _wire_code(value: Any) -> str | None:
    """An error code as a worker or a partner reported it, if it has the form of one (else None)."""
    text = str(value) if value is not None else ""
    return text if _ERROR_CODE.fullmatch(text) else None


def _end(process: Any) -> None:
    """Give a cancelled worker a moment to stop by itself, then terminate it."""
    process.join(timeout=3)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
    if process.is_alive():
        process.kill()
