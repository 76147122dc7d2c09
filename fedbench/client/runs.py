"""Runs as an analyst sees them: `project.run(...)` returns a `Run` to wait on, watch, cancel and read.

Progress streams from the node (server streaming), shown as a bar that is a widget in a notebook and text in a
terminal. A finished run's outputs are artifacts: `run.output("data")` reads, downloads or feeds another run.
What the node says about a run is read through typed records (`records.py`: `RunInfo`, `StepInfo`, `Event`).
A failed run's `wait()` raises a `RunFailed` that is also the class of the error that failed it (`PsiRefused`,
`ParamsError`, ...), so a notebook can catch either.
"""

from __future__ import annotations

import html
import importlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from fedbench.client.control import NodeClient
from fedbench.client.records import TERMINAL, Event, RunInfo
from fedbench.errors import ERRORS_BY_CODE, FedbenchError, NotRunError
from fedbench.net import codec

__all__ = [
    "TERMINAL",
    "Output",
    "Run",
    "RunFailed",
    "duration_words",
    "run_failure",
    "timing_words",
]


class RunFailed(FedbenchError):
    """A run ended failed or cancelled; the message carries the party and reason.

    When the node knows the code of the error that failed the run, the exception raised is also an instance of
    that code's class (`except PsiRefused:` works as well as `except RunFailed:`).
    """

    code = "run_failed"


_ERROR_MODULES = ("fedbench.components.builtin",)
"""Modules that define the error classes of the shipped components, imported to look up a code not seen yet."""
_FAILURE_CLASSES: dict[type[FedbenchError], type[RunFailed]] = {}


def _error_class(code: str | None) -> type[FedbenchError] | None:
    """The error class registered for `code` (importing the shipped components' errors if needed), or None."""
    if not code:
        return None
    if code not in ERRORS_BY_CODE:
        for module in _ERROR_MODULES:
            importlib.import_module(module)
    return ERRORS_BY_CODE.get(code)


def run_failure(info: RunInfo) -> RunFailed:
    """The exception a run that did not succeed raises: a `RunFailed`, also of its error code's class if known.

    A code this kernel has no class for (e.g. an error of a component only the nodes load) gives a plain
    `RunFailed`; `info.error_code` still says which it was.
    """
    message = f"run {info.job_id[:8]} {info.state}: {info.error}"
    cause = _error_class(info.error_code) if info.state == "failed" else None
    if cause is None or issubclass(RunFailed, cause):
        return RunFailed(message)
    if cause not in _FAILURE_CLASSES:
        _FAILURE_CLASSES[cause] = type(
            cause.__name__,
            (RunFailed, cause),
            {
                "__module__": cause.__module__,
                "__qualname__": cause.__qualname__,
                "__doc__": f"A run failed with {cause.__name__}: both a RunFailed and a {cause.__name__}.",
                "code": cause.code,
            },
        )
    return _FAILURE_CLASSES[cause](message)


class Output:
    """One output artifact of a run: read it, download it, or pass it as another run's input."""

    def __init__(self, node: NodeClient, artifact_id: str, kind: str) -> None:
        self._node = node
        self.id = artifact_id
        self.kind = kind

    def as_ref(self) -> dict[str, str]:
        """The input reference another run or pipeline step uses."""
        return {"artifact": self.id}

    def _bytes(self) -> bytes:
        return bytes(self._node.download("artifacts.load", artifact_id=self.id))

    def to_pandas(self) -> pd.DataFrame:
        """A table output as a DataFrame."""
        if self.kind != "table":
            raise NotRunError(f"output {self.id} is a {self.kind}, not a table: use .value()")
        return pd.read_parquet(io.BytesIO(self._bytes()))

    def value(self) -> Any:
        """A model or metrics output as the value the step wrote."""
        if self.kind == "table":
            return self.to_pandas()
        return codec.decode(self._bytes())

    def download(self, path: str | Path) -> Path:
        """Write a table output to `path` as CSV or parquet (by suffix); other outputs as JSON."""
        target = Path(path)
        if self.kind == "table":
            frame = self.to_pandas()
            if target.suffix in (".parquet", ".pq"):
                frame.to_parquet(target, index=False)
            else:
                frame.to_csv(target, index=False)
        else:
            import json

            target.write_text(
                json.dumps(self.value(), default=lambda v: getattr(v, "tolist", lambda: str(v))())
            )
        return target

    def __repr__(self) -> str:
        return f"Output({self.id[:16]}…, kind={self.kind!r})"


class Run:
    """A job on our node (one step or a pipeline)."""

    def __init__(self, node: NodeClient, info: dict[str, Any]) -> None:
        self._node = node
        self.info = info
        """The node's answer about the run as plain data (kept for notebooks; code reads the typed `record`)."""
        self._described: dict[str, dict[str, Any]] | None = None
        self._record: tuple[dict[str, Any], RunInfo] | None = None

    @property
    def record(self) -> RunInfo:
        """The run as of the last refresh, as a typed record (`refresh()` reloads it from the node).

        Built once per answer of the node (a new `info` gives a new record)."""
        if self._record is None or self._record[0] is not self.info:
            self._record = (self.info, RunInfo.from_dict(self.info))
        return self._record[1]

    @property
    def job_id(self) -> str:
        """The job's id, the same on every party."""
        return str(self.info["job_id"])

    def refresh(self) -> Run:
        """Reload state from the node."""
        self.info = self._node.call("runs.get", job_id=self.job_id)
        return self

    @property
    def status(self) -> str:
        """queued, running, succeeded, failed or cancelled."""
        return self.refresh().record.state

    @property
    def error_code(self) -> str | None:
        """The code of the error class that failed the run, ours or a partner's (None unless it failed)."""
        return self.refresh().record.error_code

    @property
    def progress(self) -> float:
        """Fraction done over our party's steps (a reused step counts as done)."""
        return self.refresh().record.progress

    def steps(self) -> pd.DataFrame:
        """Our party's steps with their state, progress and error."""
        return pd.DataFrame(self.refresh().info["steps"])

    @property
    def warnings(self) -> list[str]:
        """What our party's steps warned about their results (the run still succeeded), e.g. a model that may
        be under-trained; each prefixed with its step's name."""
        return [f"{s.step}: {w}" for s in self.refresh().record.steps for w in s.warnings]

    def events(self, timeout: float = 3600.0, since: int = 0) -> Iterator[Event]:
        """The run's events as the node streams them (from the `since`-th), until it ends or `timeout` passes."""
        for event in self._node.watch("runs.watch", job_id=self.job_id, since=since, timeout=timeout):
            yield Event.from_dict(event)

    def wait(
        self, timeout: float = 3600.0, *, show_progress: bool = True, raise_on_error: bool = True
    ) -> Run:
        """Follow the run's events until it ends; raises RunFailed if it failed (unless told not to).

        The exception is also of the class of the error that failed the run when its code is known here, so
        `except PsiRefused:` (or `ParamsError`, `Refused`...) catches it too.
        """
        bar = _progress_bar(self) if show_progress else None
        try:
            for event in self.events(timeout=timeout):
                if bar is not None:
                    bar.update_to(self, event)
        finally:
            if bar is not None:
                bar.close()
        record = self.refresh().record
        if raise_on_error and record.state != "succeeded":
            raise run_failure(record)
        for warning in self.warnings if show_progress else []:
            print(f"warning: {warning}")
        return self

    def cancel(self) -> Run:
        """Stop the run on every party."""
        self.info = self._node.call("runs.cancel", job_id=self.job_id)
        return self

    @property
    def metrics(self) -> pd.DataFrame:
        """Every metric the steps logged: step, party, name, iteration, value."""
        return pd.DataFrame(self._node.call("runs.metrics", job_id=self.job_id))

    def logs(self) -> str:
        """Our party's log of the run."""
        return str(self._node.call("runs.logs", job_id=self.job_id))

    def output(self, name: str, step: str | None = None) -> Output:
        """An output of the run (of its last step that has it, or of `step`)."""
        info = self.refresh().record
        if info.state != "succeeded":
            raise NotRunError(
                f"run {self.job_id[:8]} is {info.state}: its outputs exist once it has succeeded"
            )
        described = self._components()
        for entry in reversed(info.steps):
            if step is not None and entry.step != step:
                continue
            for port in described[entry.component]["outputs"]:
                if port["name"] == name:
                    return Output(self._node, f"{entry.key}:{name}", port["kind"])
        raise NotRunError(
            f"run {self.job_id[:8]} has no output {name!r}" + (f" in step {step!r}" if step else "")
        )

    def step_outputs(self, step: str) -> dict[str, Output]:
        """Every output of one step of the run by name, as our node describes the step's component (as of the
        last refresh; an output exists once the step succeeded or was reused on our party)."""
        entry = self.record.step(step)
        if entry is None:
            raise NotRunError(f"run {self.job_id[:8]} has no step {step!r} on our party")
        ports = self._components().get(entry.component, {}).get("outputs", [])
        return {p["name"]: Output(self._node, f"{entry.key}:{p['name']}", p["kind"]) for p in ports}

    def _components(self) -> dict[str, dict[str, Any]]:
        """The components our node runs, by name, as it describes them (asked once per run handle)."""
        if self._described is None:
            self._described = {c["name"]: c for c in self._node.call("components.list")}
        return self._described

    def __repr__(self) -> str:
        record = self.record
        return f"Run({self.job_id[:8]}, {record.name!r}, state={record.state!r})"

    def _repr_html_(self) -> str:
        record = self.record
        rows = "".join(
            f"<tr><td>{html.escape(s.step)}</td><td>{html.escape(s.component)}</td>"
            f"<td>{html.escape(s.state)}</td><td>{s.progress:.0%}</td>"
            f"<td>{html.escape(s.error or '')}"
            + "".join(f"<div class='fb-warning'>⚠ {html.escape(w)}</div>" for w in s.warnings)
            + "</td></tr>"
            for s in record.steps
        )
        return (
            f'<div class="fb-run"><b>run {self.job_id[:8]}</b> {html.escape(record.name)} '
            f"<code>{html.escape(record.state)}</code><table><tr><th>step</th><th>component</th>"
            f"<th>state</th><th>progress</th><th>error or warning</th></tr>{rows}</table></div>"
        )


class _Bar:
    """A tqdm bar (a widget in notebooks, text in a terminal) driven by the run's events."""

    def __init__(self, total: int, description: str) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=description, unit="step", leave=True)
        self._started: dict[str, float] = {}

    def update_to(self, run: Run, event: Event) -> None:
        if event.type not in ("step", "progress", "job"):
            return
        done = run.progress
        self._bar.n = round(done * self._bar.total, 3)
        step = event.step or ""
        if event.type == "job":
            text = event.state or ""
        elif event.type == "step":
            text = f"{step} {event.state or ''}"
        else:
            info = run.record.step(step)
            known = info.started_at.timestamp() if info is not None and info.started_at else None
            started = self._started.setdefault(step, known or time.time())
            timing = timing_words(started, event.fraction or 0.0)
            text = f"{step} {event.message or ''}" + (f" · {timing}" if timing else "")
        self._bar.set_postfix_str(text.strip())
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _progress_bar(run: Run) -> _Bar | None:
    try:
        return _Bar(max(1, len(run.record.steps)), f"run {run.job_id[:8]}")
    except ImportError:
        return None


def duration_words(seconds: float) -> str:
    """A duration as people say it: "40 s", "3 min 5 s", "1 h 12 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def timing_words(started: float, fraction: float, now: float | None = None) -> str:
    """Time elapsed since a step started and, once it reports some progress, an estimate of the time left
    (elapsed time scaled by the fraction still to do): "1 min 5 s elapsed, about 2 min 10 s left"."""
    elapsed = (time.time() if now is None else now) - started
    if elapsed < 0:
        return ""
    words = f"{duration_words(elapsed)} elapsed"
    if 0.02 <= fraction < 1.0 and elapsed >= 1.0:
        words += f", about {duration_words(elapsed * (1.0 - fraction) / fraction)} left"
    return words
