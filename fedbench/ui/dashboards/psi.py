"""The PSI dashboard: match the customers we share with a partner, see how many, download our matched rows.

`app()` builds the page as one widget (`notebooks/dashboards/psi.ipynb` only displays it). A business user
chooses an active project and one of our datasets authorised in it, then `run()` starts the `psi` component
with a progress bar; when it ends, `show_run(job_id)` shows our rows, the partner's, the intersection size and
rates, who received the matched rows under the release policy, and a download of ours when we received them.
Each party sees the project's PSI runs (whoever started them) with their results, so the partner's view works
the same way. Every action is a plain method, tested in-process; the buttons only call them.

The download is a link carrying the CSV inside the page (no server route, nothing written on the node), so it
is made after the page has opened and its figures show (`page_opened`), or when asked for a large intersection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from html import escape
from typing import Any

import ipywidgets as widgets
import pandas as pd
import traitlets

from fedbench import components
from fedbench.client.projects import Project
from fedbench.client.records import TERMINAL, RunInfo
from fedbench.client.runs import Run
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards.common import (
    DashboardApp,
    Notice,
    card,
    connect_from_env,
    download_link,
    format_when,
    table_html,
    unavailable_page,
)
from fedbench.ui.dashboards.projects import RELEASE_LABELS
from fedbench.ui.dashboards.psi_outcome import (
    COMPONENT,
    PsiOutcome,
    outcome_html,
    psi_step,
    read_outcome,
    terms_html,
)
from fedbench.ui.errors import FormError
from fedbench.ui.fields import ModelFields
from fedbench.ui.monitor import RunMonitor
from fedbench.ui.style import row

__all__ = ["PsiApp", "PsiOutcome", "app"]

log = logging.getLogger("fedbench.ui")

READY_ROWS = 50_000
"""Up to this many matched rows the download is prepared without asking; above, when the user asks."""
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
"""A larger CSV is not offered in the browser (an analyst saves it with `run.output("data").download(...)`)."""
RUNS_SHOWN = 12
_SETTINGS = ("normalise", "country_code", "lower", "strip", "duplicates", "release")
_SETTING_LABELS = {
    "normalise": "How the IDs are written",
    "country_code": "Country code added to national phone numbers",
    "lower": "Ignore upper and lower case",
    "strip": "Ignore spaces around IDs",
    "duplicates": "When an ID appears twice",
    "release": "Who receives the matched rows",
}
_SETTING_CHOICES: dict[str, dict[Any, str]] = {
    "normalise": {"text": "Plain text", "phone": "Phone numbers", "email": "E-mail addresses"},
    "duplicates": {"error": "Stop and say so", "first": "Keep the first row"},
    "release": {"project": "As the project agreed", **RELEASE_LABELS},
}


class PsiApp(DashboardApp):
    """The PSI dashboard of one party."""

    shown = traitlets.Unicode("", help="the job id of the run whose result is shown")
    outcome = traitlets.Instance(PsiOutcome, allow_none=True, help="the result shown")

    def __init__(self, workbench: Workbench) -> None:
        super().__init__()
        self.workbench = workbench
        self.party = workbench.party
        self.project_info: dict[str, Any] = {}
        self.monitor: RunMonitor | None = None
        self._shown_key = ""
        self._prepared = ""
        self._picked = ""
        """The job id whose download the page holds."""
        self._updating = False
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("fb-refresh")
        self.refresh_button.on_click(lambda _b: self._quietly(self._refresh_clicked))

        wide = widgets.Layout(width="300px")
        self.project = widgets.Dropdown(options=[], layout=wide)
        self.project.add_class("fb-psi-project")
        self.project.observe(self._project_picked, "value")
        self.dataset = widgets.Dropdown(options=[], layout=wide)
        self.dataset.add_class("fb-psi-dataset")
        self.dataset.observe(self._dataset_picked, "value")
        self.partner_dataset = widgets.Dropdown(options=[], layout=wide)
        self.partner_dataset.add_class("fb-psi-partner-dataset")
        self.terms = widgets.HTML("")
        self.terms.add_class("fb-psi-terms")
        self.settings = ModelFields(
            components.get(COMPONENT).params,
            prefix="fb-psi-setting",
            show_names=False,
            exclude=[f for f in components.get(COMPONENT).params.model_fields if f not in _SETTINGS],
            labels=_SETTING_LABELS,
            choice_labels=_SETTING_CHOICES,
        )
        advanced = widgets.Accordion(children=[self.settings.widget], titles=("How IDs are matched",))
        advanced.selected_index = None
        advanced.add_class("fb-psi-settings")
        self.run_button = widgets.Button(description="Run PSI", button_style="primary", icon="play")
        self.run_button.add_class("fb-psi-run")
        self.run_button.on_click(lambda _b: self._quietly(self.run))
        self.permission = widgets.HTML("")
        self.permission.add_class("fb-psi-permission")
        self.message = Notice("")
        self.message.add_class("fb-notice")
        self.monitor_area = widgets.VBox([])
        self.monitor_area.add_class("fb-psi-monitor")

        self.result = widgets.HTML('<div class="fb-muted">No result yet: run a PSI above.</div>')
        self.result.add_class("fb-psi-result")
        self.download = widgets.HTML("")
        self.download.add_class("fb-psi-download-area")
        self.prepare_button = widgets.Button(description="Prepare the download", icon="download")
        self.prepare_button.add_class("fb-psi-prepare")
        self.prepare_button.on_click(lambda _b: self._quietly(self.prepare_download))
        self.prepare_button.layout.display = "none"

        self.runs = widgets.HTML("")
        self.runs.add_class("fb-psi-runs")
        self.pick_run = widgets.Dropdown(
            options=[], description="Show the result of", style={"description_width": "initial"}
        )
        self.pick_run.layout.width = "520px"
        self.pick_run.add_class("fb-psi-run-select")
        self.pick_run.observe(self._run_picked, "value")

        def labelled(text: str, widget: widgets.Widget) -> widgets.VBox:
            return widgets.VBox([widgets.HTML(f'<span class="fb-label">{escape(text)}</span>'), widget])

        self.frame(
            workbench,
            "Match customers (PSI)",
            "Find the customers you and a partner both have. Neither side sees the other's other customers; "
            "who receives the matched rows is set by the project.",
            "psi",
            [
                card(
                    "Run a match",
                    [
                        row(
                            [
                                labelled("Project", self.project),
                                labelled("Your dataset", self.dataset),
                                labelled("Partner's dataset", self.partner_dataset),
                            ],
                            top=True,
                        ),
                        self.terms,
                        advanced,
                        row([self.run_button, self.permission]),
                        self.message,
                        self.monitor_area,
                    ],
                    "fb-psi-run-card",
                    "Only active projects that you are a member of are listed, with the datasets each side "
                    "authorised for them.",
                ),
                card("Result", [self.result, self.prepare_button, self.download], "fb-psi-result-card"),
                card(
                    "PSI runs of this project",
                    [self.runs, self.pick_run],
                    "fb-psi-runs-card",
                    "Every PSI of the project our node took part in, whoever started it, newest first.",
                ),
            ],
            tools=[self.refresh_button],
        )
        self.refresh()

    # ----- choosing ---------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the active projects, the chosen one's datasets and terms, and its PSI runs."""
        active = [p for p in self.workbench.projects.list() if p.state == "active"]
        names = [p.name for p in active]
        current = self.project.value if self.project.value in names else (names[0] if names else None)
        with self._quiet():
            self.project.options = names
            self.project.value = current
        if current is None:
            self.project_info = {}
            self.dataset.options = self.partner_dataset.options = []
            self.terms.value = ""
            self._show_runs([])
            self._set_permission(
                "There is no active project yet: a project both parties accepted is needed "
                "(see the Projects dashboard)."
            )
            return
        self.choose_project(current)

    def _refresh_clicked(self) -> None:
        self.refresh()
        self.offer_download()

    def choose_project(self, name: str) -> Project:
        """Show one project: our and the partner's authorised datasets, its terms, its PSI runs."""
        project = self.workbench.projects.get(name)
        info = project.info
        self.project_info = info
        with self._quiet():
            if self.project.value != name:
                self.project.value = name
            ours = [d["name"] for d in info.get("datasets", {}).get(self.party, [])]
            chosen = self.dataset.value if self.dataset.value in ours else (ours[0] if ours else None)
            self.dataset.options = ours
            self.dataset.value = chosen
        self._partner_datasets()
        self.terms.value = terms_html(info)
        self._set_permission(self.cannot_run())
        runs = self._psi_runs(name)
        self._show_runs(runs)
        self._follow_running(runs)
        return project

    def _follow_running(self, runs: list[RunInfo]) -> None:
        """A page opened (or reloaded) while a PSI of the project is in progress shows its live progress."""
        if self._running():
            return
        running = next((r for r in runs if not r.finished), None)
        if running is None:
            return
        self.run_button.disabled = True
        self.message.ok(f"PSI {running.job_id[:8]} is in progress: its progress shows below.")
        self.monitor = RunMonitor(self.workbench.run(running.job_id), on_end=self._ended, show_results=False)
        self.monitor_area.children = (self.monitor,)
        self.monitor.start()

    def _running(self) -> bool:
        return self.monitor is not None and self.monitor.state not in TERMINAL

    def choose_dataset(self, name: str, partner_dataset: str | None = None) -> None:
        """Choose our dataset (one authorised in the project) and, optionally, the partner's."""
        if name not in self.dataset.options:
            problem = f"{name!r} is not one of your datasets authorised in this project."
            self.message.problem(problem)
            raise FormError(problem, {"dataset": problem})
        self.dataset.value = name
        if partner_dataset is not None:
            if partner_dataset not in self.partner_dataset.options:
                problem = f"The partner has not authorised a dataset named {partner_dataset!r} here."
                self.message.problem(problem)
                raise FormError(problem, {"partner_dataset": problem})
            self.partner_dataset.value = partner_dataset

    def partner(self) -> str | None:
        """The other party of the chosen project that brings data (None unless there is exactly one)."""
        others = [p for p in self.project_info.get("datasets", {}) if p != self.party]
        return others[0] if len(others) == 1 else None

    def cannot_run(self) -> str | None:
        """Why we cannot start a PSI in the chosen project now, in words; None when we can."""
        info = self.project_info
        if not info:
            return "Choose a project first."
        terms = info.get("terms", {})
        usage = info.get("usage", {})
        if COMPONENT not in terms.get("uses", []):
            return "This project does not allow matching IDs (PSI): you can only look at earlier runs."
        if int(usage.get("psi_runs", 0)) >= int(terms.get("psi_runs", 0)):
            return (
                f"This project's {int(terms.get('psi_runs', 0)):,} PSI runs are all used: the results of "
                "earlier ones stay below, and modeling runs that reuse them still run."
            )
        if self.partner() is None:
            return "A PSI matches two parties: this project needs exactly one partner with a dataset."
        if not self.dataset.options:
            return "You have not authorised any dataset for this project."
        try:
            role = str(self.workbench.whoami().get("role", ""))
        except FedbenchError:
            role = ""
        if role not in ("analyst", "admin"):
            return "Your user may look at results but not start runs (that needs the analyst role)."
        return None

    # ----- running ----------------------------------------------------------------------------------------

    def run(self, *, wait: bool = False) -> Run:
        """Start a PSI of the chosen project and datasets; its progress shows below and its result when it ends.

        The run is followed in the background (`wait=True`: here, returning once it ended). Problems are
        shown in the page and raised (`FormError` for choices, the node's error when it refuses).
        """
        self.message.clear()
        reason = self.cannot_run()
        if reason is not None:
            self.message.problem(reason)
            raise FormError(reason, {"project": reason})
        partner = self.partner()
        ours, theirs = self.dataset.value, self.partner_dataset.value
        if not ours or not theirs or partner is None:
            problem = "Choose your dataset and the partner's."
            self.message.problem(problem)
            raise FormError(problem, {"dataset": problem})
        try:
            params = self.settings.validate().model_dump(mode="json", exclude_defaults=True)
        except FormError:
            self.message.problem("Please fix the highlighted settings under “How IDs are matched”.")
            raise
        params["id_column"] = self._id_column(str(ours))
        pipeline = Pipeline(COMPONENT).add(
            COMPONENT, COMPONENT, inputs={"data": {self.party: str(ours), partner: str(theirs)}}, **params
        )
        project = self.workbench.projects.get(str(self.project.value))
        self.run_button.disabled = True
        try:
            run = project.run_pipeline(pipeline)
        except FedbenchError as exc:
            self.run_button.disabled = False
            self.message.problem(f"The PSI could not start: {exc}")
            raise
        except Exception as exc:
            self.run_button.disabled = False
            log.exception("starting a PSI failed")
            self.message.problem(
                f"Something went wrong while starting the PSI ({type(exc).__name__}: {exc})."
            )
            raise
        self.message.ok(f"PSI {run.job_id[:8]} started: {ours} against {partner}'s {theirs}.")
        self.monitor = RunMonitor(run, on_end=self._ended, show_results=False)
        self.monitor_area.children = (self.monitor,)
        if wait:
            self.monitor.follow()
        else:
            self.monitor.start()
        return run

    def _ended(self, run: Run) -> None:
        """A run we started ended: list it and show its result."""
        self.run_button.disabled = False
        try:
            self.choose_project(str(self.project.value))
            self.show_run(run.job_id)
        except FedbenchError as exc:
            self.message.problem(f"The PSI ended, but its result could not be read: {exc}")

    # ----- results ----------------------------------------------------------------------------------------

    def show_run(self, job_id: str, *, prepare: bool = True) -> PsiOutcome:
        """Show the result of one PSI run of the chosen project, as our party learned it.

        When the release policy gave us the matched rows, their download is prepared too (`prepare`, for up to
        `READY_ROWS` rows), else offered behind the "Prepare the download" button.
        """
        try:
            info = self.workbench.run(job_id).record
            outcome = read_outcome(self.workbench, info)
        except FedbenchError as exc:
            self.result.value = (
                f'<div class="fb-message">The result of run {escape(job_id[:8])} cannot be shown: '
                f"{escape(str(exc))}</div>"
            )
            raise
        step = psi_step(info)
        if job_id != self.shown or not outcome.we_received:
            self._forget_download()
        self._shown_key = step.key if step else ""
        self.shown = job_id
        self.outcome = outcome
        self.result.value = outcome_html(
            outcome, info, us=self.party, partner=self.partner() or "the partner"
        )
        with self._quiet():
            if job_id in [v for _, v in self.pick_run.options]:
                self.pick_run.value = job_id
        if prepare:
            self.offer_download()
        elif outcome.we_received and self._prepared != job_id:
            self._ask_to_prepare(outcome)
        return outcome

    def offer_download(self) -> None:
        """Offer our matched rows of the run shown: the download itself when small enough, else the button."""
        outcome = self.outcome
        if outcome is None or not outcome.we_received or self._prepared == outcome.job_id:
            return
        if (outcome.intersection or 0) <= READY_ROWS:
            self.prepare_download()
        else:
            self._ask_to_prepare(outcome)

    def page_opened(self) -> None:
        """The page was opened: reload (and mark the app opened) first, then prepare the download.

        The download carries the whole file inside the page, so it comes once the figures show.
        """
        super().page_opened()
        with contextlib.suppress(FedbenchError):
            self.offer_download()

    def _ask_to_prepare(self, outcome: PsiOutcome) -> None:
        self.prepare_button.description = f"Prepare the download ({outcome.intersection or 0:,} rows)"
        self.prepare_button.layout.display = None

    def intersection(self) -> pd.DataFrame:
        """Our rows in the intersection of the run shown (when the release policy gave them to us)."""
        outcome = self.outcome
        if outcome is None or not outcome.we_received:
            raise FormError(
                "No matched rows to download here",
                {"run": "Show a succeeded PSI whose matched rows were released to you."},
            )
        return self.workbench.output(f"{self._shown_key}:data", "table").to_pandas()

    def prepare_download(self) -> bytes:
        """Make the download of our matched rows (a CSV file) and offer it as a link; returns the file."""
        from fedbench.store.tables import table_to_csv_bytes

        try:
            frame = self.intersection()
            content = table_to_csv_bytes(frame)
        except FedbenchError as exc:
            self.download.value = f'<div class="fb-message">{escape(str(exc))}</div>'
            raise
        if len(content) > MAX_DOWNLOAD_BYTES:
            self.download.value = (
                f'<div class="fb-message">The matched rows make a {len(content) / 2**20:,.0f} MB file, too large '
                "to download in the browser: ask an analyst to save it from a notebook with "
                f"<code>run.output('data').download(...)</code> (run {escape(self.shown[:8])}).</div>"
            )
            return content
        self.prepare_button.layout.display = "none"
        self._prepared = self.shown
        self.download.value = download_link(
            content,
            self.download_name(),
            f"Download your {len(frame):,} matched rows (CSV)",
            css="fb-psi-download",
        )
        return content

    def download_name(self) -> str:
        """The file name the download gets: project, our party and the run."""
        return f"psi-{self.project.value}-{self.party}-{self.shown[:8]}.csv"

    def _forget_download(self) -> None:
        self._prepared = ""
        self.download.value = ""
        self.prepare_button.layout.display = "none"

    # ----- drawing ----------------------------------------------------------------------------------------

    def _psi_runs(self, project: str) -> list[RunInfo]:
        """The project's runs where a PSI ran (a pipeline that reused an earlier PSI is not one), newest first."""
        runs = [run.record for run in self.workbench.runs(project)]
        ran = [r for r in runs if (step := psi_step(r)) and step.state != "reused"]
        return ran[:RUNS_SHOWN]

    def _show_runs(self, runs: list[RunInfo]) -> None:
        rows = []
        choices = []
        for info in runs:
            outcome = self._list_outcome(info)
            matched = "" if outcome.intersection is None else f"{outcome.intersection:,}"
            rate = "" if outcome.rate_ours is None else f"{outcome.rate_ours:.1%}"
            rows.append(
                {
                    "run": info.job_id[:8],
                    "when": format_when(info.created_at),
                    "started by": self._who(info.initiator),
                    "state": info.state,
                    "matched": matched,
                    "of your IDs": rate,
                    "rows for you": "yes" if outcome.we_received else "no",
                }
            )
            label = f"{info.job_id[:8]} · {format_when(info.created_at)} · {info.state}"
            choices.append((label + (f" · {matched} matched" if matched else ""), info.job_id))
        self.runs.value = table_html(pd.DataFrame(rows), "No PSI has run in this project yet.")
        with self._quiet():
            self.pick_run.options = choices
            self.pick_run.value = None
        self.pick_run.layout.display = None if choices else "none"
        if choices:
            with contextlib.suppress(FedbenchError):
                picked = self._picked in [c for _, c in choices]
                latest = self._picked if picked else choices[0][1]
                self.show_run(latest, prepare=False)
        else:
            self.shown = ""
            self.outcome = None
            self._forget_download()
            self.result.value = '<div class="fb-muted">No result yet: run a PSI above.</div>'

    def _list_outcome(self, info: RunInfo) -> PsiOutcome:
        """A run's outcome for the list (its state alone when its metrics cannot be read)."""
        try:
            return read_outcome(self.workbench, info)
        except FedbenchError:
            return PsiOutcome(info.job_id, info.state)

    def _partner_datasets(self) -> None:
        partner = self.partner()
        theirs = (
            [d["name"] for d in self.project_info.get("datasets", {}).get(partner, [])] if partner else []
        )
        current = self.partner_dataset.value
        same = self.dataset.value if self.dataset.value in theirs else None
        with self._quiet():
            self.partner_dataset.options = theirs
            self.partner_dataset.value = same or (
                current if current in theirs else (theirs[0] if theirs else None)
            )

    def _id_column(self, dataset: str) -> str:
        try:
            return str(self.workbench.datasets.get(dataset).info.id_column)
        except FedbenchError:
            return "id"

    def _set_permission(self, reason: str | None) -> None:
        self.run_button.disabled = reason is not None or self._running()
        self.permission.value = f'<span class="fb-help">{escape(reason)}</span>' if reason else ""

    def _who(self, party: str) -> str:
        return f"you ({party})" if party == self.party else party

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change pickers from code without their observers acting on it."""
        previous, self._updating = self._updating, True
        try:
            yield
        finally:
            self._updating = previous

    def _project_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self.message.clear()
            self._quietly(self._project_chosen, change["new"])

    def _project_chosen(self, name: str) -> None:
        self.choose_project(name)
        self.offer_download()

    def _dataset_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self._partner_datasets()

    def _run_picked(self, change: Any) -> None:
        if not self._updating and change["new"] and change["new"] != self.shown:
            self._picked = change["new"]
            self._quietly(self.show_run, change["new"])

    def _quietly(self, action: Any, *args: Any) -> None:
        """Run an action from a button or picker: its problems are already shown in words in the page."""
        try:
            action(*args)
        except FedbenchError:
            pass
        except Exception as exc:
            log.exception("PSI dashboard action failed")
            self.message.problem(f"Something went wrong ({type(exc).__name__}: {exc}).")


def app(workbench: Workbench | None = None) -> PsiApp | widgets.VBox:
    """The PSI dashboard, on `workbench` or on the node the environment names (see `connect_from_env`).

    When the node cannot be reached, a page saying so (and what to do) instead of a traceback.
    """
    try:
        return PsiApp(workbench or connect_from_env())
    except FedbenchError as exc:
        return unavailable_page("Match customers (PSI)", exc, retry=app)
