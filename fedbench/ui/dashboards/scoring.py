"""The scoring dashboard: score customers with a trained model, look at the scores, download them.

`app()` builds the page as one widget (`notebooks/dashboards/scoring.ipynb` only displays it). A business user
chooses an active project, one of its trained models (each `hetero_lr` or `hetero_secureboost` step's model,
by run, step, date, kind (logistic regression or boosted trees) and validation AUC; or a model imported from
a file) and the rows to score: an earlier step's table whose rows are in the same order on both sides (a
split's test rows, a PSI's matched rows), or a dataset authorised in the project, which a PSI matches with the
partner's first (the run is then psi -> score). Options: a scorecard (base score, base odds, points to double
the odds; offered for logistic regression only) and the threshold. `score()` starts the run with the run
monitor; when it ends, `show_run(job_id)` shows the rows scored, the score distribution, the first rows and
a download of the scores (CSV or parquet).

The partner's page lists the project's scoring runs with the model each used (its part of it) and how many of
its rows it scored; the scores themselves exist only on the guest. Every action is a plain method, tested
in-process; the buttons only call them.
"""

from __future__ import annotations

import contextlib
import io
from html import escape
from typing import Any

import ipywidgets as widgets
import pandas as pd
import traitlets

from fedbench import components
from fedbench.client.records import TERMINAL, RunInfo
from fedbench.client.runs import Run
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards.acting import RunsApp
from fedbench.ui.dashboards.common import (
    card,
    connect_from_env,
    download_link,
    format_when,
    labelled,
    table_html,
    unavailable_page,
)
from fedbench.ui.dashboards.model_runs import (
    SCORING_NAME,
    ModelEntry,
    Outputs,
    TableEntry,
    aligned_tables,
    default_model,
    model_of_run,
    step_of,
    trained_models,
)
from fedbench.ui.dashboards.scoring_result import charts_html, features_used, model_summary, result_html
from fedbench.ui.errors import FormError
from fedbench.ui.fields import ModelFields
from fedbench.ui.monitor import RunMonitor
from fedbench.ui.style import row

__all__ = ["ScoringApp", "app"]

COMPONENT = "score"
RUNS_SHOWN = 12
PREVIEW_ROWS = 10
READY_ROWS = 50_000
"""Up to this many scored rows the download is prepared without asking; above, when the user asks."""
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
"""A larger file is not offered in the browser (an analyst saves it with `run.output("scores").download(...)`)."""
PARQUET = "application/vnd.apache.parquet"
SCORECARD = ("base_score", "base_odds", "pdo")
_LABELS = {
    "scorecard": "Add scorecard points (higher: lower risk)",
    "base_score": "Points at the base odds",
    "base_odds": "Good:bad odds that earn those points",
    "pdo": "Points that double the odds",
    "threshold": "Score from which a customer is predicted positive (empty: the model's own)",
}


class ScoringApp(RunsApp):
    """The scoring dashboard of one party."""

    shown = traitlets.Unicode("", help="the job id of the scoring run whose result is shown")

    def __init__(self, workbench: Workbench) -> None:
        super().__init__(workbench)
        self.outputs = Outputs(workbench)
        self.project_info: dict[str, Any] = {}
        self.models: list[ModelEntry] = []
        self.tables: list[TableEntry] = []
        self.project_runs: list[RunInfo] = []
        self.monitor: RunMonitor | None = None
        self.scores: pd.DataFrame | None = None
        """Our scores of the run shown (the guest's; the partner holds only the IDs it scored)."""
        self._prepared = ""
        self._drawn: dict[str, str] = {}

        wide = widgets.Layout(width="300px")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("fb-refresh")
        self.refresh_button.on_click(lambda _b: self._quietly(self._refresh_clicked))
        self.project = widgets.Dropdown(options=[], layout=wide)
        self.project.add_class("fb-scoring-project")
        self.project.observe(self._project_picked, "value")
        self.model = widgets.Dropdown(options=[], layout=widgets.Layout(width="520px"))
        self.model.add_class("fb-scoring-model")
        self.model.observe(self._model_picked, "value")
        self.model_info = widgets.HTML("")
        self.model_info.add_class("fb-scoring-model-info")
        self.data = widgets.Dropdown(options=[], layout=widgets.Layout(width="520px"))
        self.data.add_class("fb-scoring-data")
        self.data.observe(self._data_picked, "value")
        self.partner_dataset = widgets.Dropdown(options=[], layout=wide)
        self.partner_dataset.add_class("fb-scoring-partner-dataset")
        self.partner_box = labelled("Partner's dataset", self.partner_dataset)
        self.partner_box.layout.display = "none"
        self.data_info = widgets.HTML("")
        self.data_info.add_class("fb-scoring-data-info")
        self.options = ModelFields(
            components.get(COMPONENT).params,
            prefix="fb-scoring-option",
            show_names=False,
            exclude=["ids"],
            labels=_LABELS,
        )
        self.options.fields["scorecard"].input.observe(lambda _c: self._scorecard_shown(), "value")
        self.options.widget.add_class("fb-scoring-options")
        self.score_button = widgets.Button(description="Score", button_style="primary", icon="play")
        self.score_button.add_class("fb-scoring-run")
        self.score_button.on_click(lambda _b: self._quietly(self.score))
        self.permission = widgets.HTML("")
        self.permission.add_class("fb-scoring-permission")
        self.monitor_area = widgets.VBox([])
        self.monitor_area.add_class("fb-scoring-monitor")
        self.form = widgets.VBox(
            [
                labelled("Model", self.model),
                self.model_info,
                row([labelled("Rows to score", self.data), self.partner_box], top=True),
                self.data_info,
                widgets.HTML('<div class="fb-subsection">Options</div>'),
                self.options.widget,
            ]
        )

        self.result = widgets.HTML('<div class="fb-muted">No scores yet: score customers above.</div>')
        self.result.add_class("fb-scoring-result")
        self.chart = widgets.HTML("")
        self.chart.add_class("fb-scoring-plot")
        self.preview = widgets.HTML("")
        self.preview.add_class("fb-scoring-preview")
        self.download = widgets.HTML("")
        self.download.add_class("fb-scoring-download-area")
        self.prepare_button = widgets.Button(description="Prepare the download", icon="download")
        self.prepare_button.add_class("fb-scoring-prepare")
        self.prepare_button.on_click(lambda _b: self._quietly(self.prepare_download))
        self.prepare_button.layout.display = "none"

        self.runs = widgets.HTML("")
        self.runs.add_class("fb-scoring-runs")
        self.pick_run = widgets.Dropdown(
            options=[], description="Show the result of", style={"description_width": "initial"}
        )
        self.pick_run.layout.width = "560px"
        self.pick_run.add_class("fb-scoring-run-select")
        self.pick_run.observe(self._run_picked, "value")

        self.frame(
            workbench,
            "Score customers",
            "Score customers with a model trained with a partner: each side applies its own part of the model, "
            "the scores come to the side that holds the labels.",
            "scoring",
            [
                card(
                    "Score",
                    [
                        labelled("Project", self.project),
                        self.form,
                        row([self.score_button, self.permission]),
                        self.message,
                        self.monitor_area,
                    ],
                    "fb-scoring-run-card",
                    "Rows from an earlier step (a split, a PSI) are in the same order on both sides and are "
                    "scored as they are; a dataset is matched with the partner's by a PSI first.",
                ),
                card(
                    "Scores",
                    [self.result, self.chart, self.preview, self.prepare_button, self.download],
                    "fb-scoring-result-card",
                ),
                card(
                    "Scoring runs of this project",
                    [self.runs, self.pick_run],
                    "fb-scoring-runs-card",
                    "Every run of the project that scored rows, whoever started it, newest first.",
                ),
            ],
            tools=[self.refresh_button],
        )
        self._scorecard_shown()
        self.refresh()

    # ----- choosing ---------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the active projects, the chosen one's models and rows to score, and its scoring runs."""
        names = self.active_projects()
        current = self.project.value if self.project.value in names else (names[0] if names else None)
        with self._quiet():
            self.project.options = names
            self.project.value = current
        if current is None:
            self.project_info = {}
            self.models, self.tables, self.project_runs = [], [], []
            with self._quiet():
                self.model.options, self.data.options = [], []
            self._set_permission()
            self._show_runs()
            return
        self.choose_project(current)

    def _refresh_clicked(self) -> None:
        self.refresh()
        self.offer_download()

    def choose_project(self, name: str) -> None:
        """Show one project: its trained models, the rows one can score, its scoring runs."""
        project = self.workbench.projects.get(name)
        self.project_info = project.info
        with self._quiet():
            if self.project.value != name:
                self.project.value = name
        self.project_runs = [run.record for run in self.workbench.runs(name)]
        artifacts = project.artifacts()
        held = set(artifacts["id"]) if "id" in artifacts.columns else set()
        guest = self.scores_here()
        self.models = trained_models(self.project_runs, self.outputs, artifacts, with_auc=guest)
        self.tables = aligned_tables(self.project_runs, held)
        model_choices = [(m.label(), m.artifact_id) for m in self.models]
        with self._quiet():
            previous = self.model.value
            self.model.options = model_choices
            values = [v for _, v in model_choices]
            # never a model trained with warnings by default (failed trainings are not listed at all)
            fallback = default_model(self.models)
            self.model.value = (
                previous if previous in values else (fallback.artifact_id if fallback else None)
            )
        self._model_changed(keep_data=True)
        self._show_runs()
        scorings = [r for r in self.project_runs if step_of(r, COMPONENT)]
        self.attach_running(scorings, self.score_button, "scoring")

    def choose_model(self, artifact_id: str) -> ModelEntry:
        """Choose a model (by artifact id); the rows to score default to the test rows of its run."""
        entry = next((m for m in self.models if m.artifact_id == artifact_id), None)
        if entry is None:
            problem = "This model is not one of the project's trained models."
            self.message.problem(problem)
            raise FormError(problem, {"model": problem})
        with self._quiet():
            self.model.value = artifact_id
        self._model_changed(keep_data=False)
        return entry

    def choose_data(self, value: str, partner_dataset: str | None = None) -> None:
        """Choose the rows to score: `artifact:<id>` (an earlier step's table) or `dataset:<name>` (ours,
        matched with the partner's `partner_dataset` by a PSI first)."""
        if value not in [v for _, v in self.data.options]:
            problem = "These rows cannot be scored here: choose one of the listed tables or datasets."
            self.message.problem(problem)
            raise FormError(problem, {"data": problem})
        with self._quiet():
            self.data.value = value
        self._data_changed()
        if partner_dataset is not None:
            if partner_dataset not in self.partner_dataset.options:
                problem = f"The partner has not authorised a dataset named {partner_dataset!r} here."
                self.message.problem(problem)
                raise FormError(problem, {"partner_dataset": problem})
            self.partner_dataset.value = partner_dataset

    def chosen_model(self) -> ModelEntry | None:
        """The model chosen."""
        return next((m for m in self.models if m.artifact_id == self.model.value), None)

    def _model_changed(self, *, keep_data: bool) -> None:
        entry = self.chosen_model()
        self._scorecard_shown()
        model = self.outputs.maybe(entry.artifact_id, "model") if entry is not None else None
        self.model_info.value = model_summary(model, entry.validation_auc if entry is not None else None) + (
            "".join(f'<div class="fb-message fb-warning">⚠ {escape(w)}</div>' for w in entry.warnings)
            if entry is not None
            else ""
        )
        choices = [(t.label(), f"artifact:{t.artifact_id}") for t in self.tables]
        ours = [d["name"] for d in self.project_info.get("datasets", {}).get(self.party, [])]
        sizes = {
            d["name"]: d.get("n_rows") for d in self.project_info.get("datasets", {}).get(self.party, [])
        }
        choices += [
            (f"dataset {name} ({int(sizes[name] or 0):,} rows; matched by a PSI first)", f"dataset:{name}")
            for name in ours
        ]
        values = [v for _, v in choices]
        previous = self.data.value
        own_test = self._test_rows_of(entry)
        fallback = own_test if own_test in values else (values[0] if values else None)
        chosen = previous if keep_data and previous in values else fallback
        with self._quiet():
            self.data.options = choices
            self.data.value = chosen
        self._data_changed()

    def _test_rows_of(self, entry: ModelEntry | None) -> str | None:
        """The test rows of the run that trained `entry`, as that run's own scoring read them (prepared as the
        model was trained, e.g. preprocessed), else the test rows its split made (None if it made none)."""
        info = next((r for r in self.project_runs if entry is not None and r.job_id == entry.job_id), None)
        if info is None:
            return None
        score = step_of(info, COMPONENT)
        read = score.inputs.get("data") if score is not None else None
        if isinstance(read, dict) and isinstance(read.get("artifact"), str):
            return f"artifact:{read['artifact']}"
        split = step_of(info, "split")
        return f"artifact:{split.key}:test" if split is not None else None

    def _data_changed(self) -> None:
        value = str(self.data.value or "")
        if value.startswith("dataset:"):
            theirs = self._partner_datasets()
            ours = value.split(":", 1)[1]
            with self._quiet():
                current = self.partner_dataset.value
                self.partner_dataset.options = theirs
                self.partner_dataset.value = (
                    ours
                    if ours in theirs
                    else current
                    if current in theirs
                    else (theirs[0] if theirs else None)
                )
            self.partner_box.layout.display = None
            self.data_info.value = (
                '<div class="fb-help fb-scoring-psi-first">A dataset\'s rows are not in the same order as the '
                "partner's: a PSI matches them first, then the matched customers are scored (psi → score). It "
                "counts as one of the project's PSI runs.</div>"
            )
        else:
            self.partner_box.layout.display = "none"
            self.data_info.value = (
                '<div class="fb-help">These rows are in the same order on both sides: they are scored as they '
                "are.</div>"
                if value
                else ""
            )
        self._set_permission()

    def _partner_datasets(self) -> list[str]:
        partner = self.partner()
        return [d["name"] for d in self.project_info.get("datasets", {}).get(partner or "", [])]

    def partner(self) -> str | None:
        """The other party of the project that brings data (None unless there is exactly one)."""
        others = [
            p for p, items in self.project_info.get("datasets", {}).items() if p != self.party and items
        ]
        return others[0] if len(others) == 1 else None

    def scores_here(self) -> bool:
        """Whether we play guest in the project's jobs (the party that proposed it): the scores come to us."""
        return bool(self.project_info) and self.project_info.get("initiator") == self.party

    def cannot_score(self) -> str | None:
        """Why we cannot score with the chosen project, model and rows now, in words; None when we can."""
        info = self.project_info
        if not info:
            return (
                "There is no active project yet: a project both parties accepted is needed "
                "(see the Projects dashboard)."
            )
        if not self.scores_here():
            return (
                f"In this project {info.get('initiator')} holds the labels, starts the scoring and receives the "
                "scores; below is each scoring run that used your part of a model."
            )
        if not self.models:
            return "No model has been trained in this project yet: train one on the Modeling dashboard."
        if self.chosen_model() is None:
            return (
                "Choose a model: each model of this project was trained with warnings (marked ⚠). Read them on "
                "the Modeling dashboard, or train again with the settings they suggest."
            )
        data = str(self.data.value or "")
        if not data:
            return "There are no rows to score yet: authorise a dataset or run a PSI or a split first."
        uses = {"score", "psi"} if data.startswith("dataset:") else {"score"}
        reason = self.uses_reason(info, uses)
        if reason:
            return reason
        if data.startswith("dataset:"):
            release = str(info.get("terms", {}).get("release", ""))
            if release != "both":
                return (
                    "Scoring a dataset matches its rows with the partner's first, and both sides need the "
                    "matched rows; this project's PSI does not give them to both: score an earlier step's rows "
                    "instead (e.g. a split's test rows)."
                )
            if self.partner() is None or not self.partner_dataset.value:
                return "Choose the partner's dataset to match yours with."
        return self.role_reason()

    def _set_permission(self) -> None:
        reason = self.cannot_score()
        guest = self.scores_here()
        self.form.layout.display = None if guest else "none"
        self.score_button.layout.display = None if guest else "none"
        running = self.monitor is not None and self.monitor.state not in TERMINAL
        self.score_button.disabled = reason is not None or running
        self.permission.value = f'<span class="fb-help">{escape(reason)}</span>' if reason else ""

    def scorecard_offered(self) -> bool:
        """Whether the chosen model can add scorecard points: logistic regression only, not boosted trees."""
        entry = self.chosen_model()
        return entry is None or not entry.trees

    def _scorecard_shown(self) -> None:
        offered = self.scorecard_offered()
        fields = self.options.fields
        fields["scorecard"].box.layout.display = None if offered else "none"
        shown = offered and bool(fields["scorecard"].input.value)
        for name in SCORECARD:
            fields[name].box.layout.display = None if shown else "none"

    # ----- scoring ----------------------------------------------------------------------------------------

    def pipeline(self) -> Pipeline:
        """The scoring run: score the chosen rows with the chosen model (a PSI first for a dataset)."""
        entry = self.chosen_model()
        data = str(self.data.value or "")
        if entry is None or not data:
            problem = "Choose a model and the rows to score."
            self.message.problem(problem)
            raise FormError(problem, {"model": problem})
        try:
            params = self.options.validate().model_dump(mode="json", exclude_defaults=True)
        except FormError:
            self.message.problem("Please fix the highlighted options.")
            raise
        if entry.trees:
            # A boosted-trees model has no scorecard: its points settings are hidden and never sent.
            for name in ("scorecard", *SCORECARD):
                params.pop(name, None)
        model = {"artifact": entry.artifact_id}
        pipeline = Pipeline(f"{SCORING_NAME}{entry.key[:20]}")
        kind, _, value = data.partition(":")
        if kind == "dataset":
            partner = self.partner()
            theirs = self.partner_dataset.value
            if partner is None or not theirs:
                problem = "Choose the partner's dataset to match yours with."
                self.message.problem(problem)
                raise FormError(problem, {"partner_dataset": problem})
            pipeline.add(
                "psi",
                "psi",
                inputs={"data": {self.party: value, partner: str(theirs)}},
                id_column=self._id_column(value),
            )
            return pipeline.add(
                COMPONENT, COMPONENT, inputs={"model": model, "data": Pipeline.ref("psi", "data")}, **params
            )
        return pipeline.add(
            COMPONENT, COMPONENT, inputs={"model": model, "data": {"artifact": value}}, **params
        )

    def _id_column(self, dataset: str) -> str:
        try:
            return str(self.workbench.datasets.get(dataset).info.id_column)
        except FedbenchError:
            return "id"

    def score(self, *, wait: bool = False) -> Run:
        """Start scoring the chosen rows with the chosen model; progress shows below and the scores when it ends.

        The run is followed in the background (`wait=True`: here, returning once it ended). Problems are
        shown in the page and raised (`FormError` for choices, the node's error when it refuses).
        """
        self.message.clear()
        self.refuse(self.cannot_score())
        return self.launch(self.pipeline(), self.score_button, "scoring", "Scoring {run} started.", wait=wait)

    # ----- results ----------------------------------------------------------------------------------------

    def show_run(self, job_id: str, *, prepare: bool = True) -> RunInfo:
        """Show one scoring run as our party holds it; on the guest with its download (prepared at once up to
        `READY_ROWS` rows when `prepare`, else behind a button). Returns the run's record."""
        try:
            info = self.workbench.run(job_id).record
        except FedbenchError as exc:
            self.result.value = f'<div class="fb-message">{escape(str(exc))}</div>'
            raise
        if job_id != self.shown:
            self._forget_download()
        self.shown = job_id
        step = step_of(info, COMPONENT)
        done = info.state == "succeeded" and step is not None
        scores = self.outputs.maybe(f"{step.key}:scores", "table") if done and step else None
        metrics = self.outputs.maybe(f"{step.key}:metrics", "metrics") if done and step else None
        ours = isinstance(scores, pd.DataFrame) and "score" in scores.columns
        self.scores = scores if ours else None
        entry, model_words = model_of_run(info, self.models)
        self.result.value = result_html(
            info,
            metrics,
            scores,
            model_words=model_words,
            started_by=self.who(info.initiator),
            guest=str(self.project_info.get("initiator", "the guest")),
            trees=entry is not None and entry.trees,
        )
        if job_id not in self._drawn:
            drawn = charts_html(scores) if ours else ""
            if info.finished:
                self._drawn[job_id] = drawn
        else:
            drawn = self._drawn[job_id]
        self.chart.value = drawn
        self.preview.value = (
            '<div class="fb-subsection">First rows</div>' + table_html(scores.head(PREVIEW_ROWS))
            if ours and isinstance(scores, pd.DataFrame)
            else ""
        )
        with self._quiet():
            if job_id in [v for _, v in self.pick_run.options]:
                self.pick_run.value = job_id
        if prepare:
            self.offer_download()
        elif self.scores is not None and self._prepared != job_id:
            self._ask_to_prepare()
        return info

    # ----- the download -----------------------------------------------------------------------------------

    def offer_download(self) -> None:
        """Offer the scores of the run shown: the download itself when small enough, else the button."""
        if self.scores is None or self._prepared == self.shown:
            return
        if len(self.scores) <= READY_ROWS:
            self.prepare_download()
        else:
            self._ask_to_prepare()

    def page_opened(self) -> None:
        """The page was opened: show the newest scoring run (a pre-heated page may have picked an older one),
        reload (and mark the app opened), then prepare the download."""
        if self.monitor is None or self.monitor.state in TERMINAL:
            self.shown = ""
        super().page_opened()
        with contextlib.suppress(FedbenchError):
            self.offer_download()

    def _ask_to_prepare(self) -> None:
        rows = 0 if self.scores is None else len(self.scores)
        self.prepare_button.description = f"Prepare the download ({rows:,} rows)"
        self.prepare_button.layout.display = None

    def _forget_download(self) -> None:
        self._prepared = ""
        self.download.value = ""
        self.prepare_button.layout.display = "none"

    def download_name(self, suffix: str = "csv") -> str:
        """The file name the download gets: project, run and format."""
        return f"scores-{self.project.value}-{self.shown[:8]}.{suffix}"

    def prepare_download(self) -> tuple[bytes, bytes]:
        """Make the downloads of the scores shown (CSV and parquet) and offer them as links; returns both files."""
        if self.scores is None:
            problem = "No scores to download here: show a succeeded scoring run (the scores are the guest's)."
            self.download.value = f'<div class="fb-message">{escape(problem)}</div>'
            raise FormError(problem, {"run": problem})
        from fedbench.store.tables import table_to_csv_bytes

        csv = table_to_csv_bytes(self.scores)
        buffer = io.BytesIO()
        self.scores.to_parquet(buffer, index=False)
        parquet = buffer.getvalue()
        if max(len(csv), len(parquet)) > MAX_DOWNLOAD_BYTES:
            self.download.value = (
                f'<div class="fb-message">The scores make a {len(csv) / 2**20:,.0f} MB file, too large to download '
                "in the browser: ask an analyst to save them from a notebook with "
                f"<code>run.output('scores').download(...)</code> (run {escape(self.shown[:8])}).</div>"
            )
            return csv, parquet
        rows = len(self.scores)
        self.prepare_button.layout.display = "none"
        self._prepared = self.shown
        self.download.value = (
            download_link(
                csv,
                self.download_name("csv"),
                f"Download the {rows:,} scores (CSV)",
                css="fb-scoring-download-csv",
            )
            + " "
            + download_link(
                parquet,
                self.download_name("parquet"),
                "Download (parquet)",
                mime=PARQUET,
                css="fb-scoring-download-parquet",
            )
        )
        return csv, parquet

    # ----- runs -------------------------------------------------------------------------------------------

    def scoring_runs(self) -> list[RunInfo]:
        """The project's runs that scored rows, newest first."""
        return [r for r in self.project_runs if step_of(r, COMPONENT)][:RUNS_SHOWN]

    def _show_runs(self) -> None:
        runs = self.scoring_runs()
        rows = [self._run_row(info) for info in runs]
        self.runs.value = table_html(pd.DataFrame(rows), "Nothing has been scored in this project yet.")
        choices = [
            (
                f"{r.job_id[:8]} · {r.name} · {format_when(r.created_at)} · {r.state}",
                r.job_id,
            )
            for r in runs
        ]
        with self._quiet():
            self.pick_run.options = choices
            self.pick_run.value = None
        self.pick_run.layout.display = None if choices else "none"
        if not choices:
            self.shown = ""
            self.scores = None
            self._forget_download()
            self.result.value = '<div class="fb-muted">No scores yet: score customers above.</div>'
            self.chart.value = self.preview.value = ""
            return
        values = [v for _, v in choices]
        with contextlib.suppress(FedbenchError):
            self.show_run(self.shown if self.shown in values else values[0], prepare=False)

    def _run_row(self, info: RunInfo) -> dict[str, Any]:
        entry, words = model_of_run(info, self.models)
        step = step_of(info, COMPONENT)
        done = info.state == "succeeded" and step is not None
        metrics = self.outputs.maybe(f"{step.key}:metrics", "metrics") if done and step else None
        rows = metrics.get("rows") if isinstance(metrics, dict) else None
        line: dict[str, Any] = {
            "run": info.job_id[:8],
            "when": format_when(info.created_at),
            "started by": self.who(info.initiator),
            "model": words,
            "state": info.state,
            "rows scored": "" if rows is None else f"{int(rows):,}",
        }
        if not self.scores_here():
            model = self.outputs.maybe(entry.artifact_id, "model") if entry is not None else None
            used = features_used(model)
            line["your features used"] = used if used is not None else ""
        return line

    # ----- pickers ----------------------------------------------------------------------------------------

    def _project_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self.message.clear()
            self._quietly(self._project_chosen, change["new"])

    def _project_chosen(self, name: str) -> None:
        self.choose_project(name)
        self.offer_download()

    def _model_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self._quietly(self.choose_model, change["new"])

    def _data_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self._quietly(self._data_changed)

    def _run_picked(self, change: Any) -> None:
        if not self._updating and change["new"] and change["new"] != self.shown:
            self._quietly(self.show_run, change["new"])


def app(workbench: Workbench | None = None) -> ScoringApp | widgets.VBox:
    """The scoring dashboard, on `workbench` or on the node the environment names (see `connect_from_env`).

    When the node cannot be reached, a page saying so (and what to do) instead of a traceback.
    """
    try:
        return ScoringApp(workbench or connect_from_env())
    except FedbenchError as exc:
        return unavailable_page("Score customers", exc, retry=app)
