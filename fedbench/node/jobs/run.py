"""Running a job here: one runner thread per job, one worker process per step, stop and failure.

`Runner.start` runs this party's side of the steps in order (skipping the reused ones); `_run_step` hands the
step to a worker (`TaskSpec`) and follows its events; `fail` and `stop` end the job here and tell the other
parties; the heartbeat hook (`watch_peers`) fails a job whose partner stops answering.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from fedbench.errors import ERRORS_BY_CODE, FedbenchError, PeerUnavailable, Refused
from fedbench.node.heartbeat import Heartbeat, Ping
from fedbench.node.jobs.context import JobContext
from fedbench.node.jobs.events import TERMINAL, JobEvents, LiveJob
from fedbench.node.jobs.plan import Planner, role_of
from fedbench.node.jobs.spec import JobSpec, JobStep
from fedbench.node.task_spec import TaskInput, TaskSpec
from fedbench.node.worker_pool import WorkerPool

__all__ = ["Runner", "wire_code"]

log = logging.getLogger("fedbench.jobs")

_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Runner:
    """Runs this node's side of its jobs and stops them (cancel, a failure here or at a partner)."""

    def __init__(self, ctx: JobContext, events: JobEvents, planner: Planner, workers: WorkerPool) -> None:
        self._ctx = ctx
        self._events = events
        self._planner = planner
        self._workers = workers
        """Where each step's worker process comes from: warm from the node's pool, or started cold."""
        self.on_finished: Callable[[dict[str, Any], str], None] = lambda spec, state: None
        """Called with a job's spec (wire form) and final state once it has ended here."""
        self.task_settings: dict[str, float] = {}
        """Put in every step's task: the node's `send_deadline` and `recv_timeout` (set by the node)."""
        self.heartbeat: Heartbeat | None = None
        """Pings the other parties of each running job (set by `watch_peers`)."""

    def watch_peers(self, ping: Ping) -> None:
        """Ping the other parties of every job while it runs here; a silent one fails the job (`_peer_lost`)."""
        self.heartbeat = Heartbeat(ping)

    def start(self, spec: JobSpec, reuse: set[str]) -> None:
        """Run the job here in its own thread; the steps whose keys are in `reuse` are not executed."""
        live = self._events.live_for(spec.job_id)
        threading.Thread(
            target=self._run_job, args=(spec, reuse, live), name=f"job-{spec.job_id[:8]}", daemon=True
        ).start()

    def fail(self, spec: JobSpec, live: LiveJob, reason: str, code: str | None = None) -> None:
        """Fail the job here and tell every other party at once (with the error's code, when known)."""
        if live.stop_reason is None:
            live.stop_code = code
        live.stop_reason, live.stop_state = live.stop_reason or reason, "failed"
        project = self._ctx.project(spec.project)
        told: dict[str, Any] = {"job_id": spec.job_id, "reason": reason}
        if code is not None:
            told["code"] = code
        for member in spec.members:
            if member != self._ctx.party:
                self._ctx.tell(project, member, "job.fail", told)

    def stop(self, job_id: str, state: str, reason: str, code: str | None = None) -> None:
        """Stop a job here (`cancelled` or `failed`): its worker is ended, or its row updated if not running."""
        live = self._events.live.get(job_id)
        if live is not None and not live.done:
            if live.stop_reason is None:
                live.stop_reason, live.stop_state, live.stop_code = reason, state, code
            live.cancel.set()
            with live.changed:  # wakes the initiator waiting for the others' `done` (`_finish_together`)
                live.changed.notify_all()
            return
        job = self._ctx.stored(job_id)
        if job.state not in TERMINAL:
            self._events.set_job(job_id, state, reason, code)

    def stop_project(self, project_id: str, reason: str) -> None:
        """Cancel every job of a project that is running here."""
        for job_id, live in list(self._events.live.items()):
            if not live.done and self._ctx.stored(job_id).project == project_id:
                self.stop(job_id, "cancelled", reason)

    def stop_all(self, reason: str, timeout: float) -> None:
        """The node is stopping: fail every job running here, end its worker and wait (up to `timeout` s)
        for each job's thread to write its final state, so no step worker outlives the node."""
        running = [(job_id, live) for job_id, live in list(self._events.live.items()) if not live.done]
        for job_id, _ in running:
            self.stop(job_id, "failed", reason)
        give_up = time.monotonic() + timeout
        for _, live in running:
            _wait_done(live, give_up - time.monotonic())

    def _peer_lost(self, spec: JobSpec, party: str, silent: float) -> None:
        """The heartbeat lost `party`: fail the job here with a plain reason and tell the other parties.

        The job's own stop path ends our worker (nothing half-written is stored); the steps that succeeded
        stay stored, so running the job again once the party is back reuses them.
        """
        job_id = spec.job_id
        live = self._events.live.get(job_id)
        if live is None or live.done or live.stop_reason is not None:
            return
        reason = (
            f"{party} stopped answering (last heard {silent:.0f} s ago): its node may have stopped or lost its "
            f"network. Run the job again once {party} is back: the steps that finished are reused."
        )
        self._events.write_log(job_id, reason)
        self.stop(job_id, "failed", reason, PeerUnavailable.code)
        project = self._ctx.project(spec.project)
        told = {"job_id": job_id, "reason": reason, "code": PeerUnavailable.code}
        for member in spec.members:
            if member != self._ctx.party:
                threading.Thread(
                    target=self._ctx.tell,
                    args=(project, member, "job.fail", told),
                    name=f"tell-{member}",
                    daemon=True,
                ).start()

    def _run_job(self, spec: JobSpec, reuse: set[str], live: LiveJob) -> None:
        job_id, party = spec.job_id, self._ctx.party
        self._events.set_job(job_id, "running")
        live.emit({"type": "job", "state": "running"})
        if self.heartbeat is not None:
            others = [p for p in spec.members if p != party]
            self.heartbeat.watch(job_id, others, functools.partial(self._peer_lost, spec))
        try:
            self._charge_psi(spec, reuse, live)
            for step in spec.steps:
                if live.stop_reason is not None:
                    break
                role = role_of(spec.roles, party, step.component)
                if role is None:
                    continue
                if step.key in reuse:
                    self._events.set_task(
                        job_id, step.name, "reused", progress=1.0, message="reused stored outputs"
                    )
                    live.emit({"type": "step", "step": step.name, "state": "reused"})
                    continue
                self._run_step(spec, step, role, live)
            if live.stop_reason is None:
                self._finish_together(spec, live)
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            self.fail(spec, live, f"{party}: {type(exc).__name__}: {exc}")
        finally:
            if self.heartbeat is not None:
                self.heartbeat.unwatch(job_id)
        state = live.stop_state if live.stop_reason is not None else "succeeded"
        self._events.set_job(job_id, state, live.stop_reason, live.stop_code)
        initiator = self._ctx.stored(job_id).initiator
        if state == "succeeded" and initiator != party:
            self._ctx.tell(self._ctx.project(spec.project), initiator, "job.done", {"job_id": job_id})
        live.emit({"type": "job", "state": state, "error": live.stop_reason, "error_code": live.stop_code})
        with live.changed:
            live.done = True
            live.changed.notify_all()
        self.on_finished(spec.to_wire(), state)

    def _charge_psi(self, spec: JobSpec, reuse: set[str], live: LiveJob) -> None:
        """Count the PSI steps this node is about to run (not reuse) against the quota; fail the job if used up."""
        psi_keys = set(spec.psi_keys)
        running = sum(
            s.key in psi_keys
            and s.key not in reuse
            and role_of(spec.roles, self._ctx.party, s.component) is not None
            for s in spec.steps
        )
        try:
            self._ctx.projects.charge_psi_runs(spec.job_id, running)
        except Refused as exc:
            initiator = self._ctx.stored(spec.job_id).initiator
            reason = f"{self._ctx.party} refused to run the PSI: {exc}"
            self._ctx.projects.refusal(initiator, "job.psi", spec.project, reason)
            self.fail(spec, live, reason, exc.code)

    def _finish_together(self, spec: JobSpec, live: LiveJob, timeout: float = 600.0) -> None:
        """On the initiator: wait until every other party has finished and stored its outputs (`job.done`)."""
        if self._ctx.stored(spec.job_id).initiator != self._ctx.party:
            return
        others = set(spec.members) - {self._ctx.party}
        with live.changed:
            live.changed.wait_for(
                lambda: others <= live.finished_parties or live.stop_reason is not None, timeout
            )
        if not others <= live.finished_parties and live.stop_reason is None:
            self.fail(
                spec, live, f"{sorted(others - live.finished_parties)} did not finish within {timeout:g} s"
            )

    def _run_step(self, spec: JobSpec, step: JobStep, role: str, live: LiveJob) -> None:
        job_id, name, party = spec.job_id, step.name, self._ctx.party
        inputs = self._planner.resolve_inputs(spec, step, role)
        task = TaskSpec(
            home=str(self._ctx.home),
            project=spec.project,
            project_info=self._planner.project_info(spec.project),
            job_id=job_id,
            step=name,
            component=step.component,
            role=role,
            roles=spec.role_lists,
            params=dict(step.params),
            inputs={n: TaskInput(kind=str(i["kind"]), path=str(i["path"])) for n, i in inputs.items()},
            **self.task_settings,
        )
        self._events.set_task(job_id, name, "running", started=True)
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
            initiator = self._ctx.stored(job_id).initiator
            reason = f"{party} failed at step {name!r}: {ending['reason']}"
            self._ctx.projects.refusal(initiator, f"step.{step.component}", spec.project, reason)
        if live.stop_reason is not None:
            state = "failed" if live.stop_state == "failed" else "cancelled"
            self._events.set_task(job_id, name, state, error=live.stop_reason, code=live.stop_code)
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
            self._events.store_outputs(spec, step, outputs)
            self._events.set_task(job_id, name, "succeeded", progress=1.0)
            live.emit({"type": "step", "step": name, "state": "succeeded"})
            return
        reason = f"{party} failed at step {name!r}: {ending['reason']}"
        code = wire_code(ending.get("code"))
        self._events.write_log(job_id, f"[{name}] {reason}\n{ending.get('trace', '')}")
        self._events.set_task(job_id, name, "failed", error=reason, code=code)
        live.emit({"type": "step", "step": name, "state": "failed", "error": reason, "error_code": code})
        self.fail(spec, live, reason, code)

    def _handle(
        self, job_id: str, step: str, event: dict[str, Any], outputs: list[dict[str, Any]], live: LiveJob
    ) -> dict[str, Any] | None:
        """Take one event of a step's worker: store and pass it on; returns the worker's ending, if it is one."""
        kind = event.get("type")
        if kind in ("succeeded", "failed"):
            return event
        if kind == "output":
            outputs.append(event)
        elif kind == "progress":
            self._events.set_task(
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
            self._events.add_metric(job_id, step, event["name"], event["value"], event.get("step"))
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
            self._events.write_log(job_id, f"[{step}] {event['message']}")
            live.emit({"type": "log", "step": step, "message": event["message"]})
        elif kind == "warning":
            message = str(event.get("message", ""))[:2000]
            self._events.add_warning(job_id, step, message)
            live.emit({"type": "warning", "step": step, "message": message})
        return None


def wire_code(value: Any) -> str | None:
    """An error code as a worker or a partner reported it, if it has the form of one (else None)."""
    text = str(value) if value is not None else ""
    return text if _ERROR_CODE.fullmatch(text) else None


STOP_GRACE = 1.0
"""Seconds a stopped job's worker gets to end by itself before it is terminated. Its outputs are never stored
(only a succeeded step's are), and its channel sees the cancel within a one-second slice of any wait."""


def _wait_done(live: LiveJob, timeout: float) -> None:
    """Wait (at most `timeout` s) until the job's thread has written its final state."""
    with live.changed:
        live.changed.wait_for(lambda: live.done, max(0.0, timeout))


def _end(process: Any) -> None:
    """Give a cancelled worker a moment to stop by itself, then terminate it."""
    process.join(timeout=STOP_GRACE)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
    if process.is_alive():
        process.kill()
