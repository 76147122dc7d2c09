"""The modeling dashboard: train a model from a pipeline template, see how good it is, change a setting, retrain.

`app()` builds the page as one widget (`notebooks/dashboards/modeling.ipynb` only displays it). A business user
chooses an active project, then each party's dataset of that project (ours from those we authorised, with the
label and ID columns our registry holds for it; the partner's by the name the project lists), then the model:
logistic regression or boosted trees (`MODEL_KINDS`), then the steps: a template of `templates/pipelines/` that
trains a model of that kind is the starting point, its optional steps (preprocessing; binning and selection)
can be left out, and the training settings are a form generated from the training component's params model
(one form per kind; the page shows the chosen kind's). `train()` builds the pipeline for the chosen data
(`PipelineTemplate.build`) and runs it with the run monitor (progress per step, the loss as it falls). When it
ends, `show_run(job_id)` says which steps were reused and which ran again, and shows the metrics on training and
validation rows, the charts (for boosted trees also the feature importance and the first tree) and our part of
the model; `compare(a, b)` sets two modeling runs side by side, of the same kind of model or not. On a trained
binary model the guest's "What does the partner add?" (`partner_adds`) runs the `compare` component and shows
its verdict, both models' metrics and curves, and the one-page model report to download (`modeling_uplift`).

The party that proposed the project plays guest in its jobs and holds the labels; the partner's page lists the
same runs with what each left with it (its part of the model: its features and their weights, or the thresholds
of the trees' splits on them; its training rows), never the guest's metrics. Every action is a plain method,
tested in-process; the buttons only call them.
"""

from __future__ import annotations

import contextlib
from html import escape
from typing import TYPE_CHECKING, Any

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
    format_when,
    labelled,
    table_html,
    unavailable_page,
)
from fedbench.ui.dashboards.figures import figure_html
from fedbench.ui.dashboards.horizontal import HorizontalTraining, is_horizontal, train_component
from fedbench.ui.dashboards.model_runs import Outputs, reuse_sentence, run_state_words, step_of
from fedbench.ui.dashboards.modeling_result import (
    TREES,
    final_metrics,
    guest_charts,
    headline,
    kind_of,
    losses_of,
    metric_frame,
    metrics_table,
    model_part_html,
    partner_figures,
    refine_from_of,
    settings_differences,
    settings_text,
    train_step,
    tree_charts,
)
from fedbench.ui.dashboards.modeling_uplift import (
    cannot_compare,
    uplift_html,
    uplift_pipeline,
)
from fedbench.ui.dashboards.projects import RELEASE_LABELS
from fedbench.ui.dashboards.templates import (
    MODEL_KINDS,
    OPTIONAL_STEPS,
    PipelineTemplate,
    modeling_templates,
)
from fedbench.ui.errors import FormError, PlotError
from fedbench.ui.fields import ModelFields
from fedbench.ui.monitor import RunMonitor
from fedbench.ui.style import row

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ModelingApp", "app"]

RUNS_SHOWN = 12
MAIN_SETTINGS: dict[str, tuple[str, ...]] = {
    "hetero_lr": ("epochs", "learning_rate", "batch_size", "alpha", "key_bits"),
    TREES: ("trees", "max_depth", "learning_rate", "bins", "key_bits"),
}
"""The settings of each kind of model shown at once; the others are under "More settings"."""
_FIELD_CLASS = {"hetero_lr": "fb-modeling-param", TREES: "fb-modeling-trees-param"}
"""The CSS class prefix of each kind's fields (the page holds only the chosen kind's form at a time)."""
_LABELS = {
    "epochs": "Passes over the training rows (epochs)",
    "learning_rate": "Learning rate",
    "batch_size": "Rows per batch (0: all rows)",
    "alpha": "Strength of the penalty on large weights",
    "key_bits": "Encryption key size",
    "protocol": "Protocol",
    "approximation": "How the loss is approximated under encryption",
    "refine_epochs": "Last epochs on the closer approximation",
    "label": "Label column (from your data registry)",
    "id_column": "ID column (from your data registry)",
    "trees": "Number of trees",
    "max_depth": "Depth of each tree",
    "bins": "Bins per feature",
    "min_child_weight": "Least weight of rows in each branch",
    "min_rows_per_leaf": "Least training rows in each leaf",
    "reg_lambda": "Penalty on large leaf values",
    "gamma": "Least gain a split must bring",
    "subsample": "Share of rows each tree is grown on",
    "goss": "Gradient-based one-side sampling (instead of a share of rows)",
    "colsample": "Share of features each tree may use",
    "early_stopping_rounds": "Stop after this many trees without improvement (0: never)",
    "objective": "What to predict",
    "num_class": "Number of classes (several classes only)",
    "complete_secure": "Grow the first tree on your features only",
    "seed": "Seed of the random draws",
}
_GROUPS = {
    "preprocess": "Preprocess: fill missing values, cap outliers, scale",
    "selection": "Bin the features and keep those with enough information value",
}
"""The optional steps a user may leave out, as the page names them."""
SCORE_COMPONENT = "score"
_SCORECARD_KIND = "hetero_lr"
"""Scorecard points are offered for logistic regression models only."""
_CHOICES: dict[str, dict[Any, str]] = {
    "key_bits": {1024: "1024 bits (a quick try only)", 2048: "2048 bits", 3072: "3072 bits"},
    "protocol": {
        "sshe": "SSHE: two parties, secret-shared weights",
        "coordinated": "Coordinated by an arbiter",
    },
    "approximation": {
        "fourier": "As accurate as pooled data (Newton steps, then refine epochs)",
        "taylor": "Taylor, as FATE does (cheaper epochs, less accurate)",
    },
    "objective": {
        "binary": "Yes or no (binary)",
        "multiclass": "One of several classes",
        "regression": "A number (regression)",
    },
}
_NOT_DONE = {"failed": "failed", "cancelled": "was cancelled"}


class ModelingApp(RunsApp):
    """The modeling dashboard of one party."""

    shown = traitlets.Unicode("", help="the job id of the run whose result is shown")

    def __init__(self, workbench: Workbench, templates: list[PipelineTemplate] | None = None) -> None:
        super().__init__(workbench)
        self.outputs = Outputs(workbench)
        self.project_info: dict[str, Any] = {}
        self.monitor: RunMonitor | None = None
        self.modeling_runs: list[RunInfo] = []
        self._drawn: dict[str, tuple[str, str, str]] = {}
        """The result of each ended run, drawn once (a finished run never changes)."""
        try:
            found = modeling_templates() if templates is None else templates
            self._templates_problem = ""
        except FedbenchError as exc:
            found = []
            self._templates_problem = f"The pipeline templates cannot be found: {exc}"
        self.templates = {t.name: t for t in found}

        wide = widgets.Layout(width="300px")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("fb-refresh")
        self.refresh_button.on_click(lambda _b: self._quietly(self.refresh))
        self.project = widgets.Dropdown(options=[], layout=wide)
        self.project.add_class("fb-modeling-project")
        self.project.observe(self._project_picked, "value")
        offered = [k for k in MODEL_KINDS if any(t.model_kind == k for t in found)]
        self.kind = widgets.ToggleButtons(
            options=[(MODEL_KINDS[k], k) for k in offered], value=offered[0] if offered else None
        )
        self.kind.add_class("fb-modeling-kind")
        self.kind.observe(self._kind_picked, "value")
        self.kind_box = labelled("Model", self.kind)
        self.template = widgets.Dropdown(options=[], layout=wide)
        self.template.add_class("fb-modeling-template")
        self.template.observe(self._template_picked, "value")
        self.template_box = labelled("Steps (start from a template)", self.template)
        self.template_info = widgets.HTML("")
        self.template_info.add_class("fb-modeling-template-info")
        self.registry: dict[str, Any] = {}
        """Our registered datasets by name (their label and ID columns)."""
        self.our_dataset = widgets.Dropdown(options=[], layout=wide)
        self.our_dataset.add_class("fb-modeling-our-dataset")
        self.our_dataset.observe(self._dataset_picked, "value")
        self.partner_pickers: dict[str, widgets.Dropdown] = {}
        self.partner_box = widgets.HBox([])
        self.dataset_info = widgets.HTML("")
        self.dataset_info.add_class("fb-modeling-dataset-info")
        self.data_box = widgets.VBox(
            [
                widgets.HTML('<div class="fb-subsection">Data</div>'),
                row([labelled("Your dataset", self.our_dataset), self.partner_box], top=True),
                self.dataset_info,
            ]
        )
        self.data_box.add_class("fb-modeling-data")
        self.include = {
            g: widgets.Checkbox(value=True, description=text, indent=False) for g, text in _GROUPS.items()
        }
        for group, box in self.include.items():
            box.add_class(f"fb-modeling-include-{group}")
            box.layout.width = "560px"
        self.scorecard = widgets.Checkbox(
            value=False, description="Score the test rows with scorecard points", indent=False
        )
        self.scorecard.add_class("fb-modeling-scorecard")
        self.scorecard.layout.width = "560px"
        self.steps_box = widgets.VBox([*self.include.values(), self.scorecard])
        self.steps_box.add_class("fb-modeling-steps")

        self.forms: dict[str, ModelFields] = {}
        """The training settings of each kind of model, a form from its component's params."""
        self._settings_parts: dict[str, tuple[widgets.Widget, ...]] = {}
        for kind in MODEL_KINDS:
            form = ModelFields(
                components.get(kind).params,
                prefix=_FIELD_CLASS.get(kind, f"fb-modeling-{kind}-param"),
                show_names=False,
                labels=_LABELS,
                choice_labels=_CHOICES,
            )
            main = widgets.HBox([form.fields[n].box for n in MAIN_SETTINGS.get(kind, ())])
            main.add_class("fb-row")
            main.add_class("fb-row-top")
            more = widgets.VBox(
                [f.box for n, f in form.fields.items() if n not in MAIN_SETTINGS.get(kind, ())]
            )
            more_settings = widgets.Accordion(children=[more], titles=("More settings",))
            more_settings.selected_index = None
            self.forms[kind] = form
            self._settings_parts[kind] = (main, more_settings)
        self._settings_title = widgets.HTML('<div class="fb-subsection">Training settings</div>')
        self.settings_box = widgets.VBox([self._settings_title, *self._settings_parts[self.model_kind]])
        self.settings_box.add_class("fb-modeling-settings")
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.train_button.add_class("fb-modeling-train")
        self.train_button.on_click(lambda _b: self._quietly(self.train))
        self.permission = widgets.HTML("")
        self.permission.add_class("fb-modeling-permission")
        self.monitor_area = widgets.VBox([])
        self.monitor_area.add_class("fb-modeling-monitor")

        self.result = widgets.HTML(self._nothing_yet())
        self.result.add_class("fb-modeling-result")
        self.charts = widgets.HTML("")
        self.charts.add_class("fb-modeling-plots")
        self.model_part = widgets.HTML("")
        self.model_part.add_class("fb-modeling-model-part")
        self.uplift_button = widgets.Button(
            description="What does the partner add?",
            icon="balance-scale",
            layout=widgets.Layout(width="260px"),
        )
        self.uplift_button.add_class("fb-modeling-uplift")
        self.uplift_button.layout.display = "none"
        self.uplift_button.on_click(lambda _b: self._quietly(self.partner_adds))
        self.uplift_monitor = widgets.VBox([])
        self.uplift_monitor.add_class("fb-modeling-uplift-monitor")
        self.uplift = widgets.HTML("")
        self.uplift.add_class("fb-modeling-uplift-result")
        self._uplifts: dict[str, str] = {}
        """The comparison drawn for each training run (a finished comparison never changes)."""

        self.runs = widgets.HTML("")
        self.runs.add_class("fb-modeling-runs")
        self.pick_run = widgets.Dropdown(
            options=[], description="Show the result of", style={"description_width": "initial"}
        )
        self.pick_run.layout.width = "560px"
        self.pick_run.add_class("fb-modeling-run-select")
        self.pick_run.observe(self._run_picked, "value")
        self.compare_a = widgets.Dropdown(options=[], layout=wide)
        self.compare_a.add_class("fb-modeling-compare-a")
        self.compare_b = widgets.Dropdown(options=[], layout=wide)
        self.compare_b.add_class("fb-modeling-compare-b")
        self.compare_button = widgets.Button(description="Compare", icon="columns")
        self.compare_button.add_class("fb-modeling-compare")
        self.compare_button.on_click(lambda _b: self._quietly(self.compare))
        self.comparison = widgets.HTML("")
        self.comparison.add_class("fb-modeling-comparison")
        self.compare_box = widgets.VBox(
            [
                widgets.HTML(
                    '<div class="fb-subsection">Compare two runs</div>'
                    '<div class="fb-help">Their settings that differ, their final metrics and their loss per '
                    "epoch (per tree for boosted trees), for two runs of one kind of model or of both.</div>"
                ),
                row(
                    [labelled("First run", self.compare_a), labelled("Second run", self.compare_b)],
                    top=True,
                ),
                self.compare_button,
                self.comparison,
            ]
        )
        self.compare_box.add_class("fb-modeling-compare-box")

        self.horizontal = HorizontalTraining(self)
        steps_title = widgets.HTML('<div class="fb-subsection">Steps</div>')
        train_row = row([self.train_button, self.permission])
        self._vertical_parts = [
            self.data_box,
            self.kind_box,
            steps_title,
            self.template_box,
            self.template_info,
            self.steps_box,
            self.settings_box,
            train_row,
        ]
        """What the page shows only for a vertical project (a horizontal one shows `self.horizontal.box`)."""
        self.frame(
            workbench,
            "Train a model",
            "Train a model with a partner's features without seeing them: choose the project and each "
            "party's data, the model, the steps and the training settings, train, and compare.",
            "modeling",
            [
                card(
                    "Train",
                    [
                        labelled("Project", self.project),
                        *self._vertical_parts,
                        self.horizontal.box,
                        self.message,
                        self.monitor_area,
                    ],
                    "fb-modeling-train-card",
                    "A template is a starting point: it runs on the data you choose, with the steps you keep "
                    "and your training settings. Steps whose data and settings did not change are reused, not "
                    "run again.",
                ),
                card(
                    "Result",
                    [
                        self.result,
                        self.uplift_button,
                        self.uplift_monitor,
                        self.uplift,
                        self.charts,
                        self.model_part,
                    ],
                    "fb-modeling-result-card",
                ),
                card(
                    "Modeling runs of this project",
                    [self.runs, self.pick_run, self.compare_box],
                    "fb-modeling-runs-card",
                    "Every run of the project that trained a model, whoever started it, newest first.",
                ),
            ],
            tools=[self.refresh_button],
        )
        self._vertical_cards = tuple(self.children[-2:])
        """The Result and the modeling runs cards (a horizontal run's result shows in the horizontal box)."""
        if offered:
            self.choose_kind(offered[0])
        self.refresh()

    # ----- choosing ---------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the active projects, the chosen one's terms and its modeling runs."""
        names = self.active_projects()
        current = self.project.value if self.project.value in names else (names[0] if names else None)
        with self._quiet():
            self.project.options = names
            self.project.value = current
        if current is None:
            self.project_info = {}
            self._fill_datasets()
            self._set_permission()
            self._show_runs([])
            return
        self.choose_project(current)

    def page_opened(self) -> None:
        """The page was opened: show the newest run (a pre-heated page may have picked an older one), reload."""
        if not self._running():
            self.shown = ""
        super().page_opened()

    def choose_project(self, name: str) -> None:
        """Show one project: whether we train in it, each party's datasets of it, its modeling runs.

        A horizontal project (three or more members with data, one without) shows the horizontal training.
        """
        info = self.workbench.projects.get(name).info
        self.project_info = info
        with self._quiet():
            if self.project.value != name:
                self.project.value = name
        horizontal = is_horizontal(info)
        for part in [*self._vertical_parts, *self._vertical_cards]:
            part.layout.display = "none" if horizontal else None
        if horizontal:
            self.horizontal.show_project(info)
            return
        self.horizontal.hide()
        self._fill_datasets()
        self._set_permission()
        runs = [r.record for r in self.workbench.runs(name) if train_step(r.record) is not None]
        self._show_runs(runs[:RUNS_SHOWN])
        running = self.attach_running(runs, self.train_button, "training")
        if running is not None:
            self._restore(running)

    def _restore(self, info: RunInfo) -> None:
        """Show the choices a run in progress was started with: its model, template, datasets and settings."""
        template = next((n for n, t in self.templates.items() if t.pipeline.name == info.name), None)
        kind = kind_of(info)
        if template is not None and self.templates[template].model_kind == kind:
            self.choose_template(template)
        elif kind is not None and kind != self.model_kind:
            with contextlib.suppress(FormError):
                self.choose_kind(kind)
        ran = {s.component for s in info.steps}
        for group, box in self.include.items():
            box.value = any(component in ran for component in OPTIONAL_STEPS[group])
        chosen: dict[str, str] = {}
        for step in info.steps:
            for ref in step.inputs.values():
                if isinstance(ref, dict) and isinstance(ref.get("dataset"), dict):
                    chosen.update({str(p): str(n) for p, n in ref["dataset"].items()})
        if self.party in chosen:
            ours = chosen.pop(self.party)
            with contextlib.suppress(FormError):
                self.choose_datasets(ours, chosen)
        train = train_step(info)
        if train is not None and train.component == self.model_kind:
            self._fill_settings(dict(train.params))
        score = step_of(info, SCORE_COMPONENT)
        if score is not None and self.model_kind == _SCORECARD_KIND:
            self.scorecard.value = bool(score.params.get("scorecard"))
        self._set_permission()

    @property
    def model_kind(self) -> str:
        """The chosen kind of model: the component that trains it ("hetero_lr", "hetero_secureboost")."""
        return str(self.kind.value) if self.kind.value in self.forms else next(iter(MODEL_KINDS))

    @property
    def settings(self) -> ModelFields:
        """The training settings of the chosen kind of model."""
        return self.forms[self.model_kind]

    def choose_kind(self, kind: str) -> PipelineTemplate:
        """Choose the kind of model (a `MODEL_KINDS` component): the templates that train it are offered, the
        chosen one if it does, else the first, with its training settings."""
        names = [n for n, t in self.templates.items() if t.model_kind == kind]
        if not names:
            words = MODEL_KINDS.get(kind, kind)
            problem = (
                f"No template of templates/pipelines/ trains this model ({words}); choose another model."
            )
            self.message.problem(problem)
            raise FormError(problem, {"kind": problem})
        return self.choose_template(str(self.template.value) if self.template.value in names else names[0])

    def choose_template(self, name: str) -> PipelineTemplate:
        """Choose a template: its kind of model, its description, and the training settings filled with the
        template's values."""
        if name not in self.templates:
            problem = f"There is no modeling template named {name!r}."
            self.message.problem(problem)
            raise FormError(problem, {"template": problem})
        template = self.templates[name]
        kind = template.model_kind or next(iter(MODEL_KINDS))
        with self._quiet():
            self.kind.value = kind
            self.template.options = [n for n, t in self.templates.items() if t.model_kind == kind]
            self.template.value = name
        self.settings_box.children = (self._settings_title, *self._settings_parts[kind])
        step = template.train_step
        self._fill_settings(step.params if step is not None else {})
        self._apply_columns()
        groups = template.optional_groups()
        for group, box in self.include.items():
            box.value = group in groups
            box.layout.display = None if group in groups else "none"
        score = template.step_of(SCORE_COMPONENT)
        scorecard = score is not None and kind == _SCORECARD_KIND
        self.scorecard.value = bool(scorecard and score is not None and score.params.get("scorecard"))
        self.scorecard.layout.display = None if scorecard else "none"
        self.template_info.value = (
            f'<div class="fb-help">{escape(template.summary)}</div>'
            f'<div class="fb-help">Steps: <b>{escape(template.steps_text())}</b></div>'
        )
        self._set_permission()
        self._fill_compare()
        return template

    def _fill_settings(self, values: dict[str, Any]) -> None:
        model = self.settings.model
        for field_name, field in self.settings.fields.items():
            info = model.model_fields[field_name]
            default = None if info.is_required() else info.get_default(call_default_factory=True)
            field.write(values.get(field_name, default))
        self.settings.check()

    @property
    def chosen(self) -> PipelineTemplate | None:
        """The chosen template."""
        return self.templates.get(str(self.template.value)) if self.template.value else None

    def trains_here(self) -> bool:
        """Whether we play guest in the chosen project's jobs (the party that proposed it: it holds the labels)."""
        return bool(self.project_info) and self.project_info.get("initiator") == self.party

    def cannot_train(self) -> str | None:
        """Why we cannot train with the chosen project and template now, in words; None when we can."""
        info = self.project_info
        if self._templates_problem:
            return self._templates_problem
        if not info:
            return (
                "There is no active project yet: a project both parties accepted is needed "
                "(see the Projects dashboard)."
            )
        if not self.trains_here():
            return (
                f"In this project {info.get('initiator')} holds the labels and starts the training; below is "
                "what each training left with you."
            )
        template = self.chosen
        if template is None:
            return "There is no pipeline template that trains a model (templates/pipelines/)."
        try:
            uses: set[str] = {components.get(s.component).use for s in template.pipeline.steps}
        except FedbenchError as exc:
            return f"This template cannot run here: {exc}"
        reason = self.uses_reason(info, uses)
        if reason:
            return reason
        release = str(info.get("terms", {}).get("release", ""))
        if release != "both" and any(s.component == "psi" for s in template.pipeline.steps):
            return (
                "A model is trained on the matched customers' rows of both parties, but in this project the "
                f"matched IDs go to: {RELEASE_LABELS.get(release, release).lower()}. Propose a project whose "
                "matched IDs go to both parties (Projects dashboard)."
            )
        return self.role_reason() or self.data_reason()

    def data_reason(self) -> str | None:
        """Why the chosen data cannot be trained on, in words; None when it can."""
        info = self.project_info
        ours = self.our_dataset.value
        if not ours:
            return (
                f"You have not authorised any dataset in project {info.get('name')!r}: add one on the "
                "Projects dashboard (Add your datasets to this project); the partner accepts it again."
            )
        registered = self.registry.get(str(ours))
        if registered is None:
            return (
                f"Your dataset {ours!r} is authorised in this project, but your user cannot read it in your "
                "data registry (it was deleted, or belongs to another user): ask its owner to share it, or "
                "upload it again on the Data dashboard and add it to the project."
            )
        if not registered.label_column:
            return (
                f"Your dataset {ours!r} has no label column, so there is nothing to learn: upload it again on "
                "the Data dashboard with its label column chosen, or choose another dataset."
            )
        if not self.partner_pickers:
            return "No partner has authorised a dataset in this project yet: a model needs their features."
        for party, picker in self.partner_pickers.items():
            if not picker.value:
                return f"Choose the dataset of {party}."
        return None

    def chosen_datasets(self) -> dict[str, str]:
        """The dataset each party reads: {party: name}, ours first."""
        chosen = {self.party: str(self.our_dataset.value)} if self.our_dataset.value else {}
        chosen.update({p: str(w.value) for p, w in self.partner_pickers.items() if w.value})
        return chosen

    def choose_datasets(self, ours: str, partners: dict[str, str] | None = None) -> dict[str, str]:
        """Choose our dataset (and the partners'): the label and ID columns follow our registry."""
        names = [v for _, v in self.our_dataset.options]
        if ours not in names:
            problem = (
                f"{ours!r} is not one of your datasets in this project (yours: {', '.join(names) or 'none'})."
            )
            self.message.problem(problem)
            raise FormError(problem, {"dataset": problem})
        for party, name in (partners or {}).items():
            picker = self.partner_pickers.get(party)
            if picker is None or name not in picker.options:
                listed = ", ".join(picker.options) if picker is not None else "none"
                problem = f"{party} has not authorised a dataset named {name!r} in this project ({listed})."
                self.message.problem(problem)
                raise FormError(problem, {"dataset": problem})
            with self._quiet():
                picker.value = name
        with self._quiet():
            self.our_dataset.value = ours
        self._apply_columns()
        self._set_permission()
        return self.chosen_datasets()

    def _fill_datasets(self) -> None:
        """Offer each party's datasets of the chosen project: ours (with their columns) and the partners'."""
        try:
            self.registry = {d.name: d for d in self.workbench.datasets.list()}
        except FedbenchError:
            self.registry = {}
        pinned = {
            p: [str(d["name"]) for d in items] for p, items in self.project_info.get("datasets", {}).items()
        }
        template = self.chosen
        wanted = template.datasets() if template is not None else []

        def pick(names: list[str], current: Any, preferred: list[str]) -> str | None:
            if current in names:
                return str(current)
            return next((n for n in preferred if n in names), names[0] if names else None)

        ours = pinned.get(self.party, [])
        labelled_first = [n for n in ours if getattr(self.registry.get(n), "label_column", None)]
        options = [(self._dataset_label(n), n) for n in ours]
        with self._quiet():
            current = self.our_dataset.value
            self.our_dataset.options = options
            self.our_dataset.value = pick(
                ours, current, [*[n for n in wanted if n in labelled_first], *labelled_first]
            )
        partners = [p for p in self.project_info.get("members", []) if p != self.party and pinned.get(p)]
        if list(self.partner_pickers) != partners:
            self.partner_pickers = {}
            for party in partners:
                picker = widgets.Dropdown(options=[], layout=widgets.Layout(width="300px"))
                picker.add_class(f"fb-modeling-partner-dataset-{party}")
                picker.observe(self._dataset_picked, "value")
                self.partner_pickers[party] = picker
            self.partner_box.children = tuple(
                labelled(f"Dataset of {party}", w) for party, w in self.partner_pickers.items()
            )
        for party, picker in self.partner_pickers.items():
            with self._quiet():
                current = picker.value
                picker.options = pinned[party]
                picker.value = pick(pinned[party], current, wanted)
        self._apply_columns()

    def _dataset_label(self, name: str) -> str:
        info = self.registry.get(name)
        if info is None:
            return f"{name} (not in your registry)"
        return f"{name} ({info.n_rows:,} rows)"

    def _apply_columns(self) -> None:
        """Put our chosen dataset's label and ID columns (as registered) in the form, and say which they are."""
        info = self.registry.get(str(self.our_dataset.value)) if self.our_dataset.value else None
        if info is None:
            self.dataset_info.value = ""
            return
        values: dict[str, Any] = {"id_column": info.id_column}
        if info.label_column:
            values["label"] = info.label_column
        for name, value in values.items():
            if name in self.settings.fields:
                self.settings.fields[name].write(value)
                self.settings.check(name)
        label = f"label <b>{escape(info.label_column)}</b>" if info.label_column else "<b>no label</b>"
        partners = ", ".join(self.partner_pickers) or "the partner"
        self.dataset_info.value = (
            f'<div class="fb-help">Your dataset <b>{escape(info.name)}</b>: {info.n_rows:,} rows, {label}, '
            f"ID column <b>{escape(info.id_column)}</b> (as registered). {escape(partners)} matches its rows on "
            f"its own column of the same name.</div>"
        )

    def _set_permission(self) -> None:
        reason = self.cannot_train()
        guest = self.trains_here() and not self._templates_problem
        for part in (
            self.data_box,
            self.kind_box,
            self.template_box,
            self.template_info,
            self.steps_box,
            self.settings_box,
            self.train_button,
            self.compare_box,
        ):
            part.layout.display = None if guest else "none"
        self.train_button.disabled = reason is not None or self._running()
        self.permission.value = f'<span class="fb-help">{escape(reason)}</span>' if reason else ""

    def _running(self) -> bool:
        return self.monitor is not None and self.monitor.state not in TERMINAL

    # ----- training ---------------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The training settings as the training step gets them; FormError (shown at the fields) if wrong."""
        try:
            model = self.settings.validate()
        except FormError as exc:
            whole = exc.fields.get("")
            self.message.problem(
                f"These training settings do not go together: {whole}"
                if whole
                else "Please fix the highlighted training settings."
            )
            raise
        return model.model_dump(mode="json", exclude_defaults=True)

    def pipeline(self) -> Pipeline:
        """The chosen template built for the chosen data, with the steps kept and our training settings."""
        template = self.chosen
        step = template.train_step if template is not None else None
        if template is None or step is None:
            problem = "Choose a template first."
            self.message.problem(problem)
            raise FormError(problem, {"template": problem})
        unusable = self.data_reason()
        if unusable:
            self.message.problem(unusable)
            raise FormError(unusable, {"dataset": unusable})
        train = self.params()
        params = {step.name: train}
        score = template.step_of(SCORE_COMPONENT)
        if score is not None and template.model_kind == _SCORECARD_KIND:
            params[score.name] = {**score.params, "scorecard": bool(self.scorecard.value)}
        without = [g for g, box in self.include.items() if g in template.optional_groups() and not box.value]
        try:
            return template.build(
                self.chosen_datasets(),
                label=train.get("label"),
                id_column=train.get("id_column", self.settings.model.model_fields["id_column"].default),
                params=params,
                without=without,
            )
        except FedbenchError as exc:
            self.message.problem(f"These steps do not go together: {exc}")
            raise FormError(str(exc), {"steps": str(exc)}) from None

    def train(self, *, wait: bool = False) -> Run:
        """Run the chosen template with our settings; progress shows below and the result when it ends.

        The run is followed in the background (`wait=True`: here, returning once it ended). Problems are
        shown in the page and raised (`FormError` for choices, the node's error when it refuses).
        """
        self.message.clear()
        self.refuse(self.cannot_train())
        pipeline = self.pipeline()
        name = pipeline.name.replace("{", "{{").replace("}", "}}")
        started = f"Run {{run}} started: {name} in project {{project}}."
        return self.launch(pipeline, self.train_button, "training", started, wait=wait)

    # ----- results ----------------------------------------------------------------------------------------

    def show_run(self, job_id: str) -> RunInfo:
        """Show one modeling run: what was reused and what ran, then the model as our party holds it.

        The guest sees the metrics on training and validation rows, the charts and its part of the model; the
        partner its part of the model and its training rows. Returns the run's record.
        """
        try:
            info = self.workbench.run(job_id).record
            if train_component(info) is not None:
                self.horizontal.show_run(info)
                self.shown = job_id
                return info
            if job_id not in self._drawn or not info.finished:
                drawn = self._draw(info)
                if info.finished:
                    self._drawn[job_id] = drawn
            else:
                drawn = self._drawn[job_id]
        except FedbenchError as exc:
            self.result.value = (
                f'<div class="fb-message">The result of run {escape(job_id[:8])} cannot be shown: '
                f"{escape(str(exc))}</div>"
            )
            raise
        self.result.value, self.charts.value, self.model_part.value = drawn
        self.shown = job_id
        self._offer_uplift(info)
        with self._quiet():
            if job_id in [v for _, v in self.pick_run.options]:
                self.pick_run.value = job_id
        return info

    def _draw(self, info: RunInfo) -> tuple[str, str, str]:
        """The result, the charts and the model part of a run, as HTML."""
        state = info.state
        kind = kind_of(info) or self.model_kind
        model = self.outputs.step_output(info, kind, "model", "model")
        params = (model or {}).get("card", {}).get("params")
        top = (
            f'<div class="fb-help">Run <code>{escape(info.job_id[:8])}</code> '
            f"({escape(info.name)}, {escape(MODEL_KINDS.get(kind, kind).lower())}), started by "
            f"{escape(self.who(info.initiator))} "
            f"on {escape(format_when(info.created_at))}"
            + (f" · {escape(settings_text(params))}" if params else "")
            + "</div>"
        )
        if not info.finished:
            return (
                top + f'<div class="fb-help">This run is {escape(state)}; its result shows here when it '
                "ends.</div>",
                "",
                "",
            )
        if state != "succeeded":
            error = info.reason
            words = _NOT_DONE.get(state, state)
            return (
                top + f'<div class="fb-message fb-modeling-failed">This training {escape(words)}'
                f"{escape(': ' + str(error) if error else '.')}</div>",
                "",
                "",
            )
        reuse = f'<div class="fb-reuse fb-modeling-reuse">{escape(reuse_sentence(info))}</div>'
        train_metrics = self.outputs.step_output(info, kind, "metrics", "metrics")
        part = model_part_html(model)
        guest = self._is_guest_model(model) if model is not None else self.trains_here()
        if not guest:
            guest_party = str(self.project_info.get("initiator", "the guest"))
            return top + reuse + partner_figures(model, train_metrics, guest_party), "", part
        evaluation = self.outputs.step_output(info, "evaluate", "metrics", "metrics")
        body = headline(evaluation, train_metrics, kind=kind)
        if isinstance(evaluation, dict):
            body += '<div class="fb-subsection">Metrics</div>' + metrics_table(evaluation)
        else:
            body += '<div class="fb-help">This pipeline has no evaluate step: no metrics were computed.</div>'
        scores, which = self._scores(info, kind)
        per = "tree" if kind == TREES else "epoch"
        charts = guest_charts(
            scores, losses_of(train_metrics), which=which, per=per, refine_from=refine_from_of(train_metrics)
        )
        trees = tree_charts(model)
        if trees:
            charts += (
                '<div class="fb-subsection">What the trees use</div><div class="fb-help">Which features the '
                "trees split on (the partner's by anonymous id), and the first tree.</div>" + trees
            )
        return top + reuse + body, charts, part

    # ----- what the partner adds ---------------------------------------------------------------------------

    def _offer_uplift(self, info: RunInfo) -> None:
        """The button on a model we can compare, and its comparison if drawn in this page already (asked
        again, an earlier comparison of the model is reused, not run again)."""
        model = self.outputs.step_output(info, kind_of(info) or self.model_kind, "model", "model")
        offered = cannot_compare(info, model) is None
        self.uplift_button.layout.display = None if offered else "none"
        if self.uplift_monitor.children and not self._uplift_running():
            self.uplift_monitor.children = ()
        self.uplift.value = self._uplifts.get(info.job_id, "")

    def _uplift_running(self) -> bool:
        monitor = next(iter(self.uplift_monitor.children), None)
        return isinstance(monitor, RunMonitor) and monitor.state not in TERMINAL

    def partner_adds(self, job_id: str | None = None, *, wait: bool = False) -> Run:
        """Compare a trained model (the shown run's) with the same model on our features alone: a `compare`
        run whose verdict, metrics, curves and model report show below the button when it ends.

        Followed in the background (`wait=True`: here, returning once it ended). Problems are shown in the
        page and raised (`FormError` when the run's model cannot be compared, the node's error when it refuses).
        """
        job_id = job_id or self.shown
        info = self.workbench.run(job_id).record if job_id else None
        model = self.outputs.step_output(info, kind_of(info) or "", "model", "model") if info else None
        reason = (
            cannot_compare(info, model)
            or self.uses_reason(self.project_info, {"train"})
            or self.role_reason()
        )
        if reason is not None or info is None:
            problem = reason or "Choose a trained model first."
            self.uplift.value = f'<div class="fb-message">{escape(problem)}</div>'
            raise FormError(problem, {"run": problem})
        trained: RunInfo = info
        project = self.workbench.projects.get(str(self.project.value))
        self.uplift_button.disabled = True
        try:
            run = project.run_pipeline(uplift_pipeline(trained))
        except FedbenchError as exc:
            self.uplift_button.disabled = False
            self.uplift.value = (
                f'<div class="fb-message">The comparison could not start: {escape(str(exc))}</div>'
            )
            raise
        self.uplift.value = (
            '<div class="fb-help">Training the same model on your features alone and comparing both on the '
            "validation rows…</div>"
        )

        def ended(done: Run) -> None:
            self.uplift_button.disabled = False
            try:
                self.show_uplift(done.job_id, trained)
            except Exception as exc:  # the monitor's thread would swallow it: say it in the page
                self.uplift.value = (
                    f'<div class="fb-message">The comparison ended, but its result could not be read: '
                    f"{escape(str(exc))}</div>"
                )

        monitor = RunMonitor(run, on_end=ended, show_results=False)
        self.uplift_monitor.children = (monitor,)
        if wait:
            monitor.follow()
        else:
            monitor.start()
        return run

    def show_uplift(self, compare_job: str, info: RunInfo) -> str:
        """Draw a comparison run's result for the training run `info`: the verdict, the metrics, the curves and
        the model report's download links. Returns the HTML."""
        record = self.workbench.run(compare_job).record
        if record.state != "succeeded":
            html = (
                f'<div class="fb-message fb-modeling-uplift-failed">The comparison {escape(record.state)}'
                f"{escape(': ' + str(record.reason) if record.reason else '.')}</div>"
            )
            self.uplift.value = html
            return html
        report = self.outputs.step_output(record, "compare", "report", "metrics")
        if not isinstance(report, dict):
            raise FormError("The comparison's report cannot be read on this node.", {"run": compare_job})
        kind = kind_of(info) or self.model_kind
        model = self.outputs.step_output(info, kind, "model", "model") or {}
        evaluation = self.outputs.step_output(info, "evaluate", "metrics", "metrics")
        html = uplift_html(report, job_id=info.job_id, card=model.get("card"), evaluation=evaluation)
        self._uplifts[info.job_id] = html
        if self.shown == info.job_id:
            self.uplift.value = html
        return html

    @staticmethod
    def _is_guest_model(model: Any) -> bool:
        return isinstance(model, dict) and model.get("role") == "guest"

    def _scores(self, info: RunInfo, kind: str) -> tuple[pd.DataFrame | None, str]:
        """The scores the charts are drawn from: the validation rows', else the training rows'."""
        validation = self.outputs.step_output(info, kind, "validation_scores", "table")
        if isinstance(validation, pd.DataFrame) and len(validation):
            return validation, "validation rows"
        scores = self.outputs.step_output(info, kind, "scores", "table")
        return (scores, "training rows") if isinstance(scores, pd.DataFrame) else (None, "")

    # ----- runs and comparing -----------------------------------------------------------------------------

    def _show_runs(self, runs: list[RunInfo]) -> None:
        self.modeling_runs = runs
        guest = self.trains_here()
        rows = [self._run_row(info, guest) for info in runs]
        self.runs.value = table_html(pd.DataFrame(rows), "No model has been trained in this project yet.")
        choices = [
            (
                f"{info.job_id[:8]} · {info.name} · {format_when(info.created_at)} · {info.state}",
                info.job_id,
            )
            for info in runs
        ]
        with self._quiet():
            self.pick_run.options = choices
            self.pick_run.value = None
        self.pick_run.layout.display = None if choices else "none"
        self._fill_compare()
        if not choices:
            self.shown = ""
            self.result.value, self.charts.value, self.model_part.value = self._nothing_yet(), "", ""
            self.uplift_button.layout.display = "none"
            self.uplift.value = ""
            return
        values = [c for _, c in choices]
        latest = self.shown if self.shown in values else values[0]
        with contextlib.suppress(FedbenchError):
            self.show_run(latest)

    def _run_row(self, info: RunInfo, guest: bool) -> dict[str, Any]:
        steps = info.steps
        ran = sum(1 for s in steps if s.state == "succeeded")
        done = info.state == "succeeded"
        kind = kind_of(info) or ""
        line: dict[str, Any] = {
            "run": info.job_id[:8],
            "when": format_when(info.created_at),
            "template": info.name,
            "model": MODEL_KINDS.get(kind, kind),
            "started by": self.who(info.initiator),
            "state": run_state_words(info),
            "steps run": f"{ran} of {len(steps)}" if done else "",
        }
        model = self.outputs.step_output(info, kind, "model", "model") if done else None
        params = (model or {}).get("card", {}).get("params") or {}
        line["learning rate"] = f"{params['learning_rate']:g}" if "learning_rate" in params else ""
        line["epochs"] = params.get("epochs", "")
        line["trees"] = params.get("trees", "")
        if guest:
            evaluation = self.outputs.step_output(info, "evaluate", "metrics", "metrics") if done else None
            part = (evaluation or {}).get("validation") or (evaluation or {}).get("train") or {}
            line["validation AUC"] = f"{part['auc']:.3f}" if part.get("auc") is not None else ""
            line["validation KS"] = f"{part['ks']:.3f}" if part.get("ks") is not None else ""
        else:
            names = (
                (model or {}).get("features")
                if kind == TREES
                else (model or {}).get("design", {}).get("features")
            )
            line["your features"] = len(names or []) if model else ""
            rows = (model or {}).get("card", {}).get("rows")
            line["your training rows"] = f"{int(rows):,}" if rows is not None else ""
        return line

    def _fill_compare(self) -> None:
        """Offer every succeeded modeling run for comparing, of either kind of model; preselected: the latest two
        of the chosen template, else the latest two."""
        runs = [r for r in self.modeling_runs if r.state == "succeeded"]
        choices = [
            (
                f"{r.job_id[:8]} · {MODEL_KINDS.get(kind_of(r) or '', '')} · {format_when(r.created_at)}",
                r.job_id,
            )
            for r in runs
        ]
        template = self.chosen
        name = template.pipeline.name if template is not None else None
        ours = [r.job_id for r in runs if r.name == name]
        values = ours if len(ours) >= 2 else [v for _, v in choices]
        with self._quiet():
            for picker, index in ((self.compare_a, 1), (self.compare_b, 0)):
                current = picker.value
                same = tuple(picker.options) == tuple(choices)
                picker.options = choices
                default = values[index] if len(values) > index else (values[0] if values else None)
                picker.value = current if same and current in [v for _, v in choices] else default
        self.compare_button.disabled = len(choices) < 2

    def compare(self, first: str | None = None, second: str | None = None) -> Figure:
        """Set two succeeded modeling runs side by side: the settings that differ (or the two kinds of model),
        final metrics, loss curves (per epoch, per tree)."""
        first = first or self.compare_a.value
        second = second or self.compare_b.value
        if not first or not second or first == second:
            problem = "Choose two different runs to compare."
            self.comparison.value = f'<div class="fb-message">{escape(problem)}</div>'
            raise FormError(problem, {"runs": problem})
        try:
            infos = [self.workbench.run(j).record for j in (first, second)]
        except FedbenchError as exc:
            self.comparison.value = f'<div class="fb-message">{escape(str(exc))}</div>'
            raise
        unfinished = [i.job_id[:8] for i in infos if i.state != "succeeded"]
        if unfinished:
            problem = f"Run {', '.join(unfinished)} did not succeed: only trained models can be compared."
            self.comparison.value = f'<div class="fb-message">{escape(problem)}</div>'
            raise FormError(problem, {"runs": problem})
        from fedbench.ui import plots

        kinds = [kind_of(info) or "" for info in infos]
        if kinds[0] == kinds[1]:
            labels = (f"run {first[:8]}", f"run {second[:8]}")
        else:
            words = [MODEL_KINDS.get(k, k).lower() for k in kinds]
            labels = (f"run {first[:8]} ({words[0]})", f"run {second[:8]} ({words[1]})")
        frames, settings = [], []
        for info, kind in zip(infos, kinds, strict=True):
            evaluation = self.outputs.step_output(info, "evaluate", "metrics", "metrics")
            train_metrics = self.outputs.step_output(info, kind, "metrics", "metrics")
            frames.append(metric_frame(evaluation, train_metrics))
            model = self.outputs.step_output(info, kind, "model", "model") or {}
            settings.append(model.get("card", {}).get("params") or {})
        try:
            chart = plots.compare_runs(frames[0], frames[1], labels=labels)
        except PlotError as exc:
            self.comparison.value = f'<div class="fb-message">{escape(str(exc))}</div>'
            raise
        self.comparison.value = (
            settings_differences(infos, settings, labels, _LABELS)
            + figure_html(chart, f"{labels[0]} against {labels[1]}", "fb-chart-compare")
            + final_metrics(frames, labels)
        )
        return chart

    # ----- pickers ----------------------------------------------------------------------------------------

    def _nothing_yet(self) -> str:
        return '<div class="fb-muted">No result yet: train a model above.</div>'

    def _project_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self.message.clear()
            self._quietly(self.choose_project, change["new"])

    def _kind_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self.message.clear()
            self._quietly(self.choose_kind, change["new"])

    def _template_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self._quietly(self.choose_template, change["new"])

    def _dataset_picked(self, change: Any) -> None:
        if not self._updating and change["new"]:
            self.message.clear()
            self._apply_columns()
            self._set_permission()

    def _run_picked(self, change: Any) -> None:
        if not self._updating and change["new"] and change["new"] != self.shown:
            self._quietly(self.show_run, change["new"])


def app(workbench: Workbench | None = None) -> ModelingApp | widgets.VBox:
    """The modeling dashboard, on `workbench` or on the node the environment names (see `connect_from_env`).

    When the node cannot be reached, a page saying so (and what to do) instead of a traceback.
    """
    try:
        return ModelingApp(workbench or connect_from_env())
    except FedbenchError as exc:
        return unavailable_page("Train a model", exc, retry=app)
