"""Typed records of what the node says about runs: `RunInfo` (one run), `StepInfo` (one of its steps on our
party) and `Event` (one item of a run's live stream).

They are frozen dataclasses built from the plain data of `runs.get`, `runs.list` and `runs.watch`, so code
reads `info.state` instead of `info["state"]` and a missing field is a default, not a `KeyError` (a node of an
earlier release may not send every field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["DONE", "TERMINAL", "Event", "RunInfo", "StepInfo"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
"""The states a run does not leave."""

DONE = frozenset({"succeeded", "reused"})
"""The states of a step whose outputs exist."""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class StepInfo:
    """One step of a run as our party ran it (or reused it): state, progress, error and settings."""

    step: str
    component: str
    role: str = ""
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    error_code: str | None = None
    """The code of the error class that failed the step (`fedbench.errors.ERRORS_BY_CODE`), if it failed."""
    key: str = ""
    """The step's cache key; its outputs are the artifacts `<key>:<output>`."""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    started_at: datetime | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepInfo:
        """The record of one entry of `runs.get`'s `steps`."""
        return cls(
            step=str(data["step"]),
            component=str(data.get("component", "")),
            role=str(data.get("role") or ""),
            state=str(data.get("state") or "queued"),
            progress=float(data.get("progress") or 0.0),
            message=str(data.get("message") or ""),
            error=_text(data.get("error")),
            error_code=_text(data.get("error_code")),
            key=str(data.get("key") or ""),
            inputs=dict(data.get("inputs") or {}),
            params=dict(data.get("params") or {}),
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
            started_at=_when(data.get("started_at")),
        )

    @property
    def done(self) -> bool:
        """Whether the step's outputs exist on our party (it succeeded or was reused)."""
        return self.state in DONE

    @property
    def fraction(self) -> float:
        """How far the step is, from 0 to 1 (a done step counts as 1)."""
        return 1.0 if self.done else self.progress


@dataclass(frozen=True)
class RunInfo:
    """One run (a job) as our node knows it: its state, error and our party's steps in pipeline order."""

    job_id: str
    project: str = ""
    name: str = ""
    state: str = "queued"
    error: str | None = None
    error_code: str | None = None
    """The code of the error class that failed the run, ours or a partner's (None if it did not fail)."""
    initiator: str = ""
    steps: tuple[StepInfo, ...] = ()
    created_at: datetime | None = None
    finished_at: datetime | None = None
    """When the run ended (None while it runs, or from a node of an earlier release)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunInfo:
        """The record of a `runs.get` (or `runs.list` entry) answer."""
        return cls(
            job_id=str(data["job_id"]),
            project=str(data.get("project") or ""),
            name=str(data.get("name") or ""),
            state=str(data.get("state") or "queued"),
            error=_text(data.get("error")),
            error_code=_text(data.get("error_code")),
            initiator=str(data.get("initiator") or ""),
            steps=tuple(StepInfo.from_dict(s) for s in data.get("steps") or ()),
            created_at=_when(data.get("created_at")),
            finished_at=_when(data.get("finished_at")),
        )

    @property
    def finished(self) -> bool:
        """Whether the run has ended (succeeded, failed or cancelled)."""
        return self.state in TERMINAL

    @property
    def progress(self) -> float:
        """Fraction done over our party's steps (a reused step counts as done)."""
        if not self.steps:
            return 1.0
        return sum(s.fraction for s in self.steps) / len(self.steps)

    @property
    def reason(self) -> str:
        """Why the run did not succeed: its own error, else the first error of its steps ("" when none)."""
        return self.error or next((s.error for s in self.steps if s.error), "")

    @property
    def warnings(self) -> tuple[str, ...]:
        """What our party's steps warned about their results, each once, in step order."""
        return tuple(dict.fromkeys(w for s in self.steps for w in s.warnings))

    def duration(self, now: datetime | None = None) -> float | None:
        """Seconds from the run's creation to its end (or to `now` while it runs); None if unknown."""
        if self.created_at is None:
            return None
        if self.finished:
            end = self.finished_at
            if end is None:
                return None
        else:
            end = now or datetime.now(UTC)
        return max(0.0, (end - self.created_at).total_seconds())

    def step(self, name: str) -> StepInfo | None:
        """Our party's record of step `name`, or None if we play no part in it."""
        return next((s for s in self.steps if s.step == name), None)

    def step_of(self, component: str) -> StepInfo | None:
        """Our party's first step that runs `component`, or None when the run has none."""
        return next((s for s in self.steps if s.component == component), None)


@dataclass(frozen=True)
class Event:
    """One event of a run's live stream: `type` is job, step, progress, metric, log or warning.

    Only the fields of its type are set: `state`/`error`/`error_code` (job, step), `fraction`/`message`
    (progress, log, warning), `name`/`value`/`iteration` (metric).
    """

    type: str
    index: int = 0
    step: str | None = None
    state: str | None = None
    error: str | None = None
    error_code: str | None = None
    fraction: float | None = None
    message: str | None = None
    name: str | None = None
    value: Any = None
    iteration: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """The record of one item of `runs.watch`."""
        fraction, iteration = data.get("fraction"), data.get("iteration")
        return cls(
            type=str(data.get("type") or ""),
            index=int(data.get("index") or 0),
            step=_text(data.get("step")),
            state=_text(data.get("state")),
            error=_text(data.get("error")),
            error_code=_text(data.get("error_code")),
            fraction=None if fraction is None else float(fraction),
            message=_text(data.get("message")),
            name=_text(data.get("name")),
            value=data.get("value"),
            iteration=None if iteration is None else int(iteration),
        )


def _when(text: Any) -> datetime | None:
    """A timestamp of the node (ISO text, UTC when it carries no zone), or None."""
    if not text:
        return None
    when = datetime.fromisoformat(str(text))
    return when if when.tzinfo else when.replace(tzinfo=UTC)
