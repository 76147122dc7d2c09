"""`fedbench.ui.form(project, "row_count")`: a form for any component, generated from its declaration.

The params model gives one field per parameter (type, bounds, default, help text); each input of the
component gets a picker listing the project's datasets and the earlier results of the project. The logic
is one plain `run()` method (testable without a browser): it validates with the params model, shows each
problem at its field, submits the run and returns it; the Run button only calls it. Called from code,
`run()` raises the same problems as a `FormError`.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
from datetime import datetime
from html import escape
from typing import Any

import ipywidgets as widgets
import traitlets

from fedbench import components
from fedbench.client.projects import Project
from fedbench.client.runs import Run
from fedbench.errors import FedbenchError
from fedbench.pipeline import Pipeline, Step
from fedbench.ui.errors import FormError
from fedbench.ui.fields import ModelFields
from fedbench.ui.style import style_sheet

__all__ = ["ComponentForm", "form"]

log = logging.getLogger("fedbench.ui")

_NONE = "none:"


def _when(stamp: str | None) -> str:
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(str(stamp)).astimezone().strftime("%d %b %H:%M")
    except ValueError:
        return str(stamp)


def _our_party(project: Project) -> str | None:
    """The party whose node this project handle talks to."""
    try:
        return str(project._node.health()["party"])
    except (FedbenchError, KeyError):
        return None


class ComponentForm(widgets.VBox):
    """A form that runs one component in one project; `run()` holds the logic, the button calls it."""

    errors = traitlets.Dict(help="the current problems, by field or input name ('' for the whole form)")
    status = traitlets.Unicode("ready", help="ready, invalid, submitting, submitted or failed")
    last_run = traitlets.Any(None, allow_none=True, help="the Run the last successful run() started")

    def __init__(self, project: Project, component: str, *, show_monitor: bool = True) -> None:
        self.project = project
        self.component = components.get(component)
        self.show_monitor = show_monitor
        self.params = ModelFields(self.component.params, prefix="fb-field")
        self.inputs: dict[str, widgets.Dropdown] = {}
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
            key = f"dataset:{value['dataset']}"
        else:
            text = str(value)
            key = text if text.split(":", 1)[0] in ("dataset", "artifact") else f"dataset:{text}"
        known = [v for _, v in picker.options]
        if key not in known:
            problem = "Not available in this project: choose one of the listed data."
            self._show_input(name, problem)
            raise FormError("Some values need fixing", {name: problem})
        picker.value = key
        self._show_input(name, None)

    def refresh_inputs(self) -> None:
        """Reload the choices of every input: the project's datasets and its earlier results."""
        if not self.inputs:
            return
        party = _our_party(self.project)
        with contextlib.suppress(FedbenchError):
            self.project.refresh()
        by_party: dict[str, list[dict[str, Any]]] = self.project.info.get("datasets", {})
        own = by_party.get(party or "", []) if party else []
        datasets = own or [d for items in by_party.values() for d in items]
        try:
            artifacts = self.project.artifacts()
        except FedbenchError:
            artifacts = None
        for port in self.component.inputs:
            options: list[tuple[str, str]] = []
            if port.optional:
                options.append(("(none)", _NONE))
            if port.kind == "table":
                seen = set()
                for d in datasets:
                    if d["name"] not in seen:
                        seen.add(d["name"])
                        options.append(
                            (
                                f"Dataset {d['name']} ({int(d.get('n_rows', 0)):,} rows)",
                                f"dataset:{d['name']}",
                            )
                        )
            if artifacts is not None and not artifacts.empty:
                for row in artifacts[artifacts["kind"] == port.kind].iloc[::-1].itertuples():
                    step = row.step or "earlier step"
                    origin = f"{step} ({row.component})" if row.component and row.component != step else step
                    options.append(
                        (f"Result of {origin}: {row.name}, {_when(row.created_at)}", f"artifact:{row.id}")
                    )
            picker = self.inputs[port.name]
            previous = picker.value
            picker.options = options
            picker.value = (
                previous if previous in [v for _, v in options] else (options[0][1] if options else None)
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
            refs[port.name] = {kind: value}
        return refs, problems

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
