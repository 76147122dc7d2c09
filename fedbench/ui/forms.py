"""`fedbench.ui.form(project, "row_count")`: a form for any component, generated from its declaration.

The declaration is the one the project's node reports (`node_components.py`), so a component the node loads
from its `component_modules` gets a form even when this kernel never imported it. The params model gives one
field per parameter (type, bounds, default, help text); each input of the
component gets a picker listing the earlier results of the project (each once, newest first, named by run
and step) and its datasets, starting at something that runs (`choices.default_choices`: the latest aligned
rows for a step that reads rows, never the raw dataset a PSI has not matched yet). The logic
is one plain `run()` method (testable without a browser): it validates with the params model, shows each
problem at its field, submits the run and returns it; the Run button only calls it. Called from code,
`run()` raises the same problems as a `FormError`.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
from html import escape
from typing import Any

import ipywidgets as widgets
import traitlets

from fedbench.client.projects import Project
from fedbench.client.runs import Run
from fedbench.errors import FedbenchError
from fedbench.pipeline import Pipeline, Step
from fedbench.ui.choices import Earlier, default_choices, earlier_results
from fedbench.ui.errors import FormError
from fedbench.ui.fields import ModelFields
from fedbench.ui.node_components import node_component
from fedbench.ui.style import style_sheet

__all__ = ["ComponentForm", "form"]

log = logging.getLogger("fedbench.ui")

_NONE = "none:"


def _our_party(project: Project) -> str | None:
    """The party whose node this project handle talks to."""
    try:
        return project.our_party
    except (FedbenchError, KeyError):
        return None


class ComponentForm(widgets.VBox):
    """A form that runs one component in one project; `run()` holds the logic, the button calls it."""

    errors = traitlets.Dict(help="the current problems, by field or input name ('' for the whole form)")
    status = traitlets.Unicode("ready", help="ready, invalid, submitting, submitted or failed")
    last_run = traitlets.Any(None, allow_none=True, help="the Run the last successful run() started")

    def __init__(self, project: Project, component: str, *, show_monitor: bool = True) -> None:
        self.project = project
        self.component = node_component(project, component)
        self.show_monitor = show_monitor
        self.params = ModelFields(self.component.params, prefix="fb-field")
        self.inputs: dict[str, widgets.Dropdown] = {}
        self._chosen: dict[str, bool] = {}
        """Inputs the user picked (kept across refreshes); the others follow their defaults."""
        self._refreshing = False
        self._party: str | None = None
        self._input_messages: dict[str, widgets.HTML] = {}
        input_boxes = []
        for port in self.component.inputs:
            picker = widgets.Dropdown(options=[], layout=widgets.Layout(width="420px"))
            picker.add_class("fb-input-picker")
            picker.tooltip = port.description or f"the {port.kind} this step reads"
            message = widgets.HTML("")
            message.add_class("fb-field-message")
            label = widgets.HTML(
                f'<span class="fb-label">{escape(port.description.capitalize() or port.name)}</span> '
                f'<code class="fb-param-name">{escape(port.name)}</code>'
            )
            box = widgets.VBox([label, picker, message], layout=widgets.Layout(margin="0 0 10px 0"))
            box.add_class("fb-field")
            box.add_class(f"fb-input-{port.name}")
            self.inputs[port.name] = picker
            picker.observe(lambda _change, n=port.name: self._picked(n), "value")
            self._input_messages[port.name] = message
            input_boxes.append(box)
        self.refresh_inputs()
        self.button = widgets.Button(
            description=f"Run {self.component.name}", button_style="primary", icon="play"
        )
        self.button.add_class("fb-run-button")
        self.button.on_click(self._clicked)
        self.message = widgets.HTML("")
        self.message.add_class("fb-form-error")
        self.notice = widgets.HTML("")
        self.notice.add_class("fb-form-notice")
        self.monitor_area = widgets.VBox([])
        title = widgets.HTML(
            f'<div class="fb-form-title"><b>{escape(self.component.name)}</b> '
            f'<span class="fb-help">{escape(self.component.description)}</span></div>'
        )
        sections: list[widgets.Widget] = [style_sheet(), title]
        if input_boxes:
            sections += [widgets.HTML('<div class="fb-section">Data</div>'), *input_boxes]
        if self.params.fields:
            sections += [widgets.HTML('<div class="fb-section">Settings</div>'), self.params.widget]
        sections += [self.message, self.button, self.notice, self.monitor_area]
        super().__init__(sections, layout=widgets.Layout(padding="8px 12px", max_width="760px"))
        self.add_class("fb-form")
        self.add_class(f"fb-form-{self.component.name}")

    @property
    def fields(self) -> dict[str, widgets.DOMWidget]:
        """Each parameter's input widget, by parameter name."""
        return {name: field.input for name, field in self.params.fields.items()}

    def field_message(self, name: str) -> str:
        """The text shown under a parameter or input (empty when it is fine)."""
        if name in self._input_messages:
            return _strip_tags(self._input_messages[name].value)
        return _strip_tags(self.params.fields[name].message.value)

    def set(self, **values: Any) -> ComponentForm:
        """Fill parameters (by name) and inputs (a dataset name or an `Output`), as a user would."""
        params = {k: v for k, v in values.items() if k not in self.inputs}
        for name in set(values) & set(self.inputs):
            self.choose_input(name, values[name])
        self.params.set(**params)
        return self

    def choose_input(self, name: str, value: Any) -> None:
        """Select an input: a dataset name, an artifact id, or anything with `as_ref()`."""
        picker = self.inputs[name]
        if hasattr(value, "as_ref"):
            value = value.as_ref()
        if isinstance(value, dict) and "artifact" in value:
            key = f"artifact:{value['artifact']}"
        elif isinstance(value, dict) and "dataset" in value:
            dataset = value["dataset"]
            key = f"dataset:{dataset.get(self._party) if isinstance(dataset, dict) else dataset}"
        else:
            text = str(value)
            key = text if text.split(":", 1)[0] in ("dataset", "artifact") else f"dataset:{text}"
        known = [v for _, v in picker.options]
        if key not in known:
            problem = "Not available in this project: choose one of the listed data."
            self._show_input(name, problem)
            raise FormError("Some values need fixing", {name: problem})
        picker.value = key
        self._show_input(name, self._hint(name, key))

    def refresh_inputs(self) -> None:
        """Reload the choices of every input: the project's earlier results and its datasets.

        A choice the user made is kept while it is still offered; otherwise the input starts at its default
        (`default_choices`), so a fresh form runs as it is.
        """
        if not self.inputs:
            return
        party = self._party = _our_party(self.project)
        with contextlib.suppress(FedbenchError):
            self.project.refresh()
        by_party: dict[str, list[dict[str, Any]]] = self.project.info.get("datasets", {})
        own = by_party.get(party or "", []) if party else []
        datasets: dict[str, int] = {}
        for d in own or [d for items in by_party.values() for d in items]:
            datasets.setdefault(str(d["name"]), int(d.get("n_rows", 0)))
        results = self._earlier()
        defaults = default_choices(self.component, results, list(datasets))
        raw_first = self.component.use == "psi"
        for port in self.component.inputs:
            from_datasets = (
                [(f"Dataset {name} ({rows:,} rows)", f"dataset:{name}") for name, rows in datasets.items()]
                if port.kind == "table"
                else []
            )
            from_runs = [(r.label(), f"artifact:{r.artifact_id}") for r in results if r.kind == port.kind]
            options: list[tuple[str, str]] = [("(none)", _NONE)] if port.optional else []
            options += from_datasets + from_runs if raw_first else from_runs + from_datasets
            values = [v for _, v in options]
            start = defaults.get(port.name) or _NONE
            picker = self.inputs[port.name]
            previous = picker.value if self._chosen.get(port.name) else None
            self._refreshing = True
            try:
                picker.options = options
                if previous in values:
                    picker.value = previous
                else:
                    picker.value = start if start in values else (values[0] if values else None)
                    self._chosen.pop(port.name, None)
            finally:
                self._refreshing = False
            self._show_input(port.name, self._hint(port.name, picker.value))

    def _picked(self, name: str) -> None:
        """The user chose an input: keep it when the choices are reloaded."""
        if not self._refreshing:
            self._chosen[name] = True
            self._show_input(name, self._hint(name, self.inputs[name].value))

    def _earlier(self) -> list[Earlier]:
        """The project's earlier results our node holds (none when the node cannot be asked now)."""
        try:
            artifacts = self.project.artifact_records()
            runs = [run.record for run in self.project.list_runs()]
        except FedbenchError:
            return []
        return earlier_results(artifacts, runs)

    def _hint(self, name: str, value: Any) -> str | None:
        """A note under an input that reads aligned rows but starts at a raw dataset (no PSI has run yet)."""
        port = next(p for p in self.component.inputs if p.name == name)
        if (
            self.component.use == "psi"
            or "aligned" not in port.description
            or not str(value).startswith("dataset:")
        ):
            return None
        return (
            "A raw dataset's rows are not matched with the partner's: run a PSI first and pick its matched "
            "rows here."
        )

    def _show_input(self, name: str, problem: str | None) -> None:
        message = self._input_messages[name]
        message.value = f'<span class="fb-message">{escape(problem)}</span>' if problem else ""

    def _input_refs(self) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        refs: dict[str, dict[str, Any]] = {}
        problems: dict[str, str] = {}
        for port in self.component.inputs:
            key = self.inputs[port.name].value
            if not key or key == _NONE:
                if not port.optional:
                    if self.inputs[port.name].options:
                        problems[port.name] = "Choose the data this step reads."
                    else:
                        problems[port.name] = (
                            f"This project has no {port.kind} to use here yet: authorise a dataset or run "
                            "the step that makes one first."
                        )
                continue
            kind, _, value = str(key).partition(":")
            refs[port.name] = {kind: self._dataset_ref(value) if kind == "dataset" else value}
        return refs, problems

    def _dataset_ref(self, name: str) -> str | dict[str, str]:
        """Our dataset `name` as a step input: with each partner's dataset of that name, or its only one.

        A plain name means the same name on every party; a project whose parties named their data
        differently (`customers` here, `accounts` there) gets a name per party.
        """
        by_party: dict[str, list[dict[str, Any]]] = self.project.info.get("datasets", {})
        if not self._party or all(name in {d["name"] for d in items} for items in by_party.values() if items):
            return name
        mapping = {self._party: name}
        for party, items in by_party.items():
            names = [str(d["name"]) for d in items]
            if party == self._party or not names:
                continue
            if name in names or len(names) == 1:
                mapping[party] = name if name in names else names[0]
            else:
                return name
        return mapping

    def validate(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The validated params (as plain data) and input references; FormError shown in the form if not."""
        refs, input_problems = self._input_refs()
        for port in self.component.inputs:
            self._show_input(port.name, input_problems.get(port.name))
        try:
            model = self.params.validate()
        except FormError as exc:
            self._fail({**input_problems, **exc.fields})
            raise FormError("Some values need fixing", {**input_problems, **exc.fields}) from None
        if input_problems:
            self._fail(input_problems)
            raise FormError("Some values need fixing", input_problems)
        return model.model_dump(mode="json"), refs

    def run(self) -> Run:
        """Validate, submit the run to the project and return it; problems are shown here and raised."""
        self.notice.value = ""
        params, refs = self.validate()
        self.errors = {}
        self.message.value = ""
        self.status = "submitting"
        self.button.disabled = True
        self.button.description = "Starting…"
        name = self.component.name
        pipeline = Pipeline(name, [Step(name, name, params, refs)])
        try:
            run = self.project.run_pipeline(pipeline)
        except FedbenchError as exc:
            self._fail({"": f"The run could not start: {exc}"})
            raise
        except Exception as exc:
            log.exception("submitting %s failed", name)
            self._fail({"": f"Something went wrong while starting the run ({type(exc).__name__}: {exc})."})
            raise
        finally:
            self.button.disabled = False
            self.button.description = f"Run {name}"
        self.status = "submitted"
        self.last_run = run
        self.notice.value = f'<span class="fb-ok">Run <code>{escape(run.job_id[:8])}</code> started.</span>'
        if self.show_monitor:
            from fedbench.ui.monitor import RunMonitor

            monitor = RunMonitor(run, on_end=lambda _run: self.refresh_inputs())
            self.monitor_area.children = (monitor,)
            monitor.start()
        return run

    def _fail(self, problems: dict[str, str]) -> None:
        self.errors = problems
        self.status = "invalid" if set(problems) - {""} else "failed"
        if "" in problems:
            text = problems[""]
        else:
            text = "Please fix the highlighted fields: " + ", ".join(sorted(problems)) + "."
        self.message.value = f'<div class="fb-message">{escape(text)}</div>'

    def _clicked(self, _button: widgets.Button) -> None:
        with contextlib.suppress(Exception):
            self.run()


def _strip_tags(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def form(project: Project, component: str, *, show_monitor: bool = True) -> ComponentForm:
    """A form running `component` in `project` (each param a field, each input a picker, a Run button)."""
    return ComponentForm(project, component, show_monitor=show_monitor)
