"""`fedbench.ui.monitor(run)`: a live view of one run: each step's progress, logs, metrics, results, cancel.

The node streams a run's events (`runs.watch`: job and step states, progress, metrics, log lines); the monitor
follows that stream in a background thread and updates its widgets from there (ipywidgets sends changes
from any thread). `follow()` does the same synchronously, for tests and scripts. Metrics logged per
iteration are redrawn as a chart (at most twice a second); when the run ends its results are shown.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from html import escape
from typing import Any

import ipywidgets as widgets
import pandas as pd
import traitlets

from fedbench.client.records import TERMINAL, Event, RunInfo
from fedbench.client.runs import Output, Run, timing_words
from fedbench.errors import FedbenchError
from fedbench.ui.style import row, style_sheet

__all__ = ["RunMonitor", "monitor"]

log = logging.getLogger("fedbench.ui")

_STATE_WORDS = {
    "pending": "waiting",
    "queued": "waiting",
    "running": "running",
    "succeeded": "done",
    "reused": "done (reused an earlier result)",
    "failed": "failed",
    "cancelled": "cancelled",
    "not_run": "not run (the run stopped first)",
}
_UNSTARTED = frozenset({"pending", "queued"})
_STOPPED = frozenset({"failed", "cancelled"})
_BAR_STYLES = {"succeeded": "success", "reused": "success", "failed": "danger", "cancelled": "warning"}
_REDRAW_SECONDS = 0.5
_MAX_LOG_LINES = 400


class _StepRow:
    """One step's row: name, progress bar and state text."""

    def __init__(self, step: str, component: str) -> None:
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="240px"))
        self.bar.add_class("fb-step-bar")
        self.state = widgets.HTML("")
        self.state.add_class("fb-step-state")
        name = escape(step) + (
            f' <span class="fb-help">({escape(component)})</span>' if component != step else ""
        )
        self.box = row(
            [widgets.HTML(f"<b>{name}</b>", layout=widgets.Layout(width="200px")), self.bar, self.state]
        )
        self.box.add_class("fb-step")
        self.box.add_class(f"fb-step-{step}")
        self.value = "pending"
        self.message = ""
        self.started: float | None = None
        """When the step started (seconds since the epoch): from the node, else when we first saw it run."""

    def update(
        self, state: str | None = None, fraction: float | None = None, message: str | None = None
    ) -> None:
        if state is not None:
            self.value = state
            if state in ("succeeded", "reused"):
                self.bar.value = 1.0
        if fraction is not None:
            self.bar.value = max(self.bar.value, min(1.0, float(fraction)))
        if message is not None:
            self.message = message
        if self.value == "running" and self.started is None:
            self.started = time.time()
        self.bar.bar_style = _BAR_STYLES.get(self.value, "info" if self.value == "running" else "")
        words = _STATE_WORDS.get(self.value, self.value)
        running = self.value == "running"
        timing = timing_words(self.started, self.bar.value) if running and self.started is not None else ""
        detail = " · ".join(escape(part) for part in (self.message, timing) if part) if running else ""
        detail = f" · {detail}" if detail else ""
        self.state.value = (
            f'<span class="fb-state fb-state-{escape(self.value)}">{escape(words)}</span>{detail}'
        )


class RunMonitor(widgets.VBox):
    """A run's live view; `start()` follows it in a background thread, `follow()` in the caller's.

    `show_results=False` leaves out the generic results of a succeeded run (every output, every metric), for
    a dashboard that shows them its own way; a failure is still said here.
    """

    state = traitlets.Unicode("", help="the run's state as last seen")
    done = traitlets.Bool(False, help="whether the run has ended and its results are shown")

    def __init__(
        self, run: Run, *, on_end: Callable[[Run], None] | None = None, show_results: bool = True
    ) -> None:
        self.run = run
        self._on_end = on_end
        self._show_results = show_results
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._metrics: list[dict[str, Any]] = []
        self._logs: list[str] = []
        self._drawn_at = 0.0
        self._dirty = False
        self.header = widgets.HTML("")
        self.header.add_class("fb-monitor-header")
        self.cancel_button = widgets.Button(description="Cancel run", icon="stop", button_style="warning")
        self.cancel_button.add_class("fb-cancel-button")
        self.cancel_button.on_click(self._cancel_clicked)
        self.rows: dict[str, _StepRow] = {}
        self.steps_box = widgets.VBox([])
        self.chart = widgets.Output()
        self.chart.add_class("fb-monitor-chart")
        self.logs = widgets.HTML("")
        self.logs.add_class("fb-monitor-logs")
        log_box = widgets.Accordion(children=[self.logs], titles=("Log",))
        log_box.add_class("fb-monitor-log")
        self.results = widgets.HTML("")
        self.results.add_class("fb-monitor-results")
        super().__init__(
            [
                style_sheet(),
                row([self.header, self.cancel_button]),
                self.steps_box,
                self.chart,
                self.results,
                log_box,
            ],
            layout=widgets.Layout(border="1px solid #d0d7de", padding="8px 12px", margin="8px 0"),
        )
        self.add_class("fb-monitor")
        self._show_info(run.record)

    # ----- following the run ------------------------------------------------------------------------------

    def start(self) -> RunMonitor:
        """Follow the run in a background thread (returns at once)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._follow_quietly, name=f"fb-monitor-{self.run.job_id[:8]}", daemon=True
            )
            self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background thread to finish following."""
        if self._thread is not None:
            self._thread.join(timeout)

    def follow(self, timeout: float = 3600.0) -> Run:
        """Apply the run's events as they come until it ends, then show its results; returns the run."""
        try:
            for event in self.run.events(timeout=timeout):
                self.apply(event)
        finally:
            self._finish()
        return self.run

    def _follow_quietly(self) -> None:
        try:
            self.follow()
        except Exception as exc:
            log.warning("monitor of run %s stopped: %s", self.run.job_id[:8], exc)
            problem = f"Lost contact with the node while following this run: {exc}"
            self.results.value = f'<div class="fb-message">{escape(problem)}</div>'

    def apply(self, event: Event | Mapping[str, Any]) -> None:
        """Update the view with one event of the node's stream (an `Event`, or its plain-data form)."""
        if not isinstance(event, Event):
            event = Event.from_dict(event)
        kind, step = event.type, event.step or ""
        with self._lock:
            if kind == "job":
                self._set_state(event.state or "", event.error)
            elif kind == "step":
                self._row(step).update(state=event.state or "")
                if event.error:
                    self._log(f"[{step}] {event.error}")
            elif kind == "progress":
                self._row(step).update(state="running", fraction=event.fraction, message=event.message or "")
            elif kind == "metric":
                self._metrics.append(
                    {
                        "step": event.step,
                        "name": event.name,
                        "iteration": event.iteration,
                        "value": event.value,
                    }
                )
                self._dirty = True
                if time.monotonic() - self._drawn_at >= _REDRAW_SECONDS:
                    self._draw()
            elif kind == "log":
                self._log(f"[{step}] {event.message or ''}")
            elif kind == "warning":
                self._log(f"[{step}] warning: {event.message or ''}")

    def cancel(self) -> Run:
        """Stop the run on every party."""
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling…"
        try:
            self.run.cancel()
        except FedbenchError as exc:
            self.cancel_button.disabled = False
            self.cancel_button.description = "Cancel run"
            self.results.value = f'<div class="fb-message">Could not cancel: {escape(str(exc))}</div>'
            raise
        self._show_info(self.run.record)
        return self.run

    def _cancel_clicked(self, _button: widgets.Button) -> None:
        with contextlib.suppress(FedbenchError):
            self.cancel()

    # ----- drawing ----------------------------------------------------------------------------------------

    def _row(self, step: str, component: str | None = None) -> _StepRow:
        if step not in self.rows:
            self.rows[step] = _StepRow(step, component or step)
            self.steps_box.children = tuple(r.box for r in self.rows.values())
        return self.rows[step]

    def _show_info(self, info: RunInfo) -> None:
        # a step still waiting when its run failed or was cancelled will never run: not "waiting"
        stopped = info.state in _STOPPED
        for s in info.steps:
            step_row = self._row(s.step, s.component)
            step_row.started = s.started_at.timestamp() if s.started_at else step_row.started
            state = "not_run" if stopped and s.state in _UNSTARTED else s.state
            step_row.update(state=state, fraction=s.progress, message=s.message)
        self._set_state(info.state, info.error)

    def _set_state(self, state: str, error: str | None = None) -> None:
        self.state = state
        words = _STATE_WORDS.get(state, state)
        self.header.value = (
            f"<b>Run <code>{escape(self.run.job_id[:8])}</code></b> {escape(self.run.record.name)} "
            f'<span class="fb-state fb-state-{escape(state)}">{escape(words)}</span>'
        )
        ended = state in TERMINAL
        self.cancel_button.disabled = ended
        if ended:
            self.cancel_button.layout.display = "none"
        if error:
            self.results.value = f'<div class="fb-message">{escape(str(error))}</div>'

    def _log(self, line: str) -> None:
        self._logs.append(line)
        del self._logs[:-_MAX_LOG_LINES]
        self.logs.value = '<pre class="fb-log-lines">' + escape("\n".join(self._logs)) + "</pre>"

    def _draw(self) -> None:
        """Chart the model's metrics by iteration; timings (`*_seconds`) are said as time left, not drawn."""
        self._drawn_at = time.monotonic()
        self._dirty = False
        frame = pd.DataFrame(self._metrics)
        if frame.empty:
            return
        timing = frame["name"].astype(str).str.endswith("_seconds")
        per_iteration = frame[frame["iteration"].notna() & ~timing]
        if per_iteration.empty:
            return
        from fedbench.ui.plots import loss_curve

        figure = loss_curve(per_iteration)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
        data = base64.b64encode(buffer.getvalue()).decode()
        self.chart.outputs = (
            {
                "output_type": "display_data",
                "data": {"image/png": data, "text/plain": "metrics chart"},
                "metadata": {},
            },
        )

    def _finish(self) -> None:
        with contextlib.suppress(FedbenchError):
            self.run.refresh()
        with self._lock:
            info = self.run.record
            self._show_info(info)
            if info.finished:
                with contextlib.suppress(FedbenchError):
                    self._metrics = self.run.metrics.to_dict("records")
                    self._dirty = True
                if self._dirty:
                    self._draw()
                if self._show_results or info.state != "succeeded":
                    self.results.value = self._results_html(info)
                else:
                    self.results.value = _warnings_html(info)
                self.done = True
        if self.done and self._on_end is not None:
            with contextlib.suppress(Exception):
                self._on_end(self.run)

    def _results_html(self, info: RunInfo) -> str:
        if info.state != "succeeded":
            reason = info.error or "no reason was given"
            return f'<div class="fb-message">The run {escape(info.state)}: {escape(reason)}</div>'
        parts = [_warnings_html(info)]
        for step in info.steps:
            try:
                outputs = self.run.step_outputs(step.step)
            except FedbenchError:
                continue
            for name, output in outputs.items():
                parts.append(f"<div class='fb-result'><b>{escape(step.step)} → {escape(name)}</b>")
                parts.append(_describe_output(output))
                parts.append("</div>")
        scalars = [m for m in self._metrics if pd.isna(m.get("iteration"))]
        if scalars:
            rows = "".join(
                f"<tr><td>{escape(str(m['name']))}</td><td>{m['value']:,.6g}</td></tr>" for m in scalars
            )
            parts.append(f"<div class='fb-result'><b>Metrics</b><table class='fb-table'>{rows}</table></div>")
        return '<div class="fb-results"><div class="fb-section">Results</div>' + "".join(parts) + "</div>"


def _warnings_html(info: RunInfo) -> str:
    """The warnings of a succeeded run's steps, in a box that stands out (nothing when there are none)."""
    items = [(s.step, w) for s in info.steps for w in s.warnings]
    if not items:
        return ""
    lines = "".join(f"<li><b>{escape(step)}</b>: {escape(text)}</li>" for step, text in items)
    return (
        '<div class="fb-message fb-warning fb-run-warnings"><b>⚠ The run succeeded with warnings; check them '
        f"before using its results:</b><ul>{lines}</ul></div>"
    )


def _describe_output(output: Output) -> str:
    try:
        if output.kind == "table":
            frame = output.to_pandas()
            table = frame.head(8).to_html(index=False, border=0, classes="fb-table", max_cols=10)
            return f"<div class='fb-help'>{len(frame):,} rows × {frame.shape[1]} columns</div>{table}"
        value = output.value()
    except FedbenchError:
        return "<div class='fb-help'>not kept on this party</div>"
    if output.kind == "metrics" and isinstance(value, dict):
        rows = "".join(
            f"<tr><td>{escape(key)}</td><td>{escape(_show(item))}</td></tr>"
            for key, item in _flatten(value)[:200]
        )
        return f"<table class='fb-table fb-metrics'>{rows}</table>"
    return f"<div class='fb-help'>{escape(output.kind)} ready (<code>{escape(output.id[:16])}…</code>)</div>"


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested metrics as (dotted key, value) pairs: {"rows": {"guest": 3}} -> [("rows.guest", 3)]."""
    if isinstance(value, dict):
        pairs: list[tuple[str, Any]] = []
        for key, item in value.items():
            pairs += _flatten(item, f"{prefix}{key}.")
        return pairs
    return [(prefix.rstrip("."), value)]


def _show(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value, default=str) if isinstance(value, list | tuple) else str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"


def monitor(run: Run, *, start: bool = True) -> RunMonitor:
    """A live view of `run` (following it in the background unless `start=False`; then call `follow()`)."""
    view = RunMonitor(run)
    return view.start() if start else view
