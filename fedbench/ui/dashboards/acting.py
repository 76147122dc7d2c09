"""What the dashboards that start runs in a project share (modeling, scoring): who may start runs, which
projects are active, pickers changed from code without their observers acting, and button actions whose
problems are already said in words in the page (never a traceback).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets

from fedbench.client.records import TERMINAL, RunInfo
from fedbench.client.runs import Run
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards.common import DashboardApp, Notice
from fedbench.ui.dashboards.projects import USE_LABELS
from fedbench.ui.errors import FormError
from fedbench.ui.monitor import RunMonitor

__all__ = ["RunsApp"]

log = logging.getLogger("fedbench.ui")


class RunsApp(DashboardApp):
    """The base of a dashboard that starts runs in our projects; `message` says how actions went.

    A subclass has a `project` picker, a `monitor_area` the run monitor goes in, and its own
    `choose_project` and `show_run`.
    """

    project: widgets.Dropdown
    monitor_area: widgets.VBox
    monitor: RunMonitor | None

    def __init__(self, workbench: Workbench) -> None:
        super().__init__()
        self.workbench = workbench
        self.party = workbench.party
        self._updating = False
        self.message = Notice("")
        self.message.add_class("fb-notice")

    def choose_project(self, name: str) -> Any:
        """Show the project `name` (the subclass's view of it)."""
        raise NotImplementedError

    def show_run(self, job_id: str) -> Any:
        """Show one run's result (the subclass's view of it)."""
        raise NotImplementedError

    def active_projects(self) -> list[str]:
        """The names of our active projects."""
        return [p.name for p in self.workbench.projects.list() if p.state == "active"]

    def role_reason(self) -> str | None:
        """Why our user may not start runs (viewers only look), or None when it may."""
        try:
            role = str(self.workbench.whoami().get("role", ""))
        except FedbenchError:
            role = ""
        if role not in ("analyst", "admin"):
            return "Your user may look at results but not start runs (that needs the analyst role)."
        return None

    @staticmethod
    def uses_reason(info: dict[str, Any], uses: set[str]) -> str | None:
        """Why the project's terms forbid a run with these uses (psi, train, score), or None.

        A used-up PSI quota does not stop a run here: a rerun that reuses its PSI costs none, and the nodes
        refuse, in words the monitor shows, a run whose PSI would really run again."""
        terms = info.get("terms", {})
        missing = [u for u in ("psi", "train", "score") if u in uses and u not in terms.get("uses", [])]
        if missing:
            words = " or ".join(USE_LABELS.get(u, u).lower() for u in missing)
            return f"This project does not allow this: its terms do not include {words}."
        return None

    def launch(
        self,
        pipeline: Pipeline,
        button: widgets.Button,
        what: str,
        started: str,
        *,
        wait: bool = False,
        roles: dict[str, list[str]] | None = None,
    ) -> Run:
        """Start `pipeline` in the chosen project with a run monitor below; when it ends, show its result.

        `button` stays disabled while the run lasts; `what` names the action in messages ("training"). The run
        is followed in the background (`wait=True`: here, returning once it ended). Problems are shown in the
        page and raised (`FormError` for choices, the node's error when it refuses). `roles` names who plays
        what (default: the project's guest, host and arbiter).
        """
        project = self.workbench.projects.get(str(self.project.value))
        button.disabled = True
        try:
            run = project.run_pipeline(pipeline, roles=roles)
        except FedbenchError as exc:
            button.disabled = False
            self.message.problem(f"The {what} could not start: {exc}")
            raise
        self.message.ok(started.format(run=run.job_id[:8], project=project.name))
        self.follow(run, button, what, wait=wait)
        return run

    def follow(self, run: Run, button: widgets.Button, what: str, *, wait: bool = False) -> None:
        """Show `run`'s live monitor below, `button` disabled until it ends; then its result."""
        button.disabled = True

        def ended(run: Run) -> None:
            button.disabled = False
            try:
                self.choose_project(str(self.project.value))
                self.show_run(run.job_id)
            except FedbenchError as exc:
                self.message.problem(f"The {what} ended, but its result could not be read: {exc}")

        self.monitor = RunMonitor(run, on_end=ended, show_results=False)
        self.monitor_area.children = (self.monitor,)
        if wait:
            self.monitor.follow()
        else:
            self.monitor.start()

    def attach_running(self, runs: list[RunInfo], button: widgets.Button, what: str) -> RunInfo | None:
        """A page opened (or reloaded) while one of the project's runs is in progress follows that run.

        `runs` are the project's runs of this page's kind, newest first. Returns the run followed (None when
        none is in progress or the page already follows one).
        """
        if self.monitor is not None and self.monitor.state not in TERMINAL:
            return None
        running = next((r for r in runs if not r.finished), None)
        if running is None:
            return None
        self.follow(self.workbench.run(running.job_id), button, what)
        self.message.ok(f"Run {running.job_id[:8]} is in progress: its progress shows below.")
        return running

    def refuse(self, reason: str | None) -> None:
        """Show and raise why the action cannot run now (nothing happens when `reason` is None)."""
        if reason is not None:
            self.message.problem(reason)
            raise FormError(reason, {"project": reason})

    def who(self, party: str) -> str:
        """A party as the page names it: "you (guest)" for us."""
        return f"you ({party})" if party == self.party else party

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change pickers from code without their observers acting on it."""
        previous, self._updating = self._updating, True
        try:
            yield
        finally:
            self._updating = previous

    def _quietly(self, action: Callable[..., Any], *args: Any) -> None:
        """Run an action from a button or picker: its problems are already shown in words in the page."""
        try:
            action(*args)
        except FedbenchError:
            pass
        except Exception as exc:
            log.exception("dashboard action failed")
            self.message.problem(f"Something went wrong ({type(exc).__name__}: {exc}).")
