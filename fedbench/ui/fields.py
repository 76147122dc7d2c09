"""Widgets generated from a pydantic model: one field per model field, validated by the model itself.

A component's params model (or a project's terms) is the single source of types, bounds, defaults and help
text; this module turns it into input widgets and turns pydantic's errors back into short sentences shown
under the field at fault. Numbers use plain number boxes rather than clamping ones (`BoundedIntText`
silently changes what was typed); their bounds are said in the help line and checked on every change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import ipywidgets as widgets
import traitlets
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from fedbench.ui.errors import FormError

__all__ = ["ChoiceSet", "Field", "ModelFields", "field_schema", "friendly_error", "problems_by_field"]

_MESSAGES = {
    "missing": "Required.",
    "greater_than_equal": "Must be at least {ge}.",
    "greater_than": "Must be more than {gt}.",
    "less_than_equal": "Must be at most {le}.",
    "less_than": "Must be less than {lt}.",
    "multiple_of": "Must be a multiple of {multiple_of}.",
    "int_parsing": "Must be a whole number.",
    "int_type": "Must be a whole number.",
    "int_from_float": "Must be a whole number.",
    "float_parsing": "Must be a number.",
    "float_type": "Must be a number.",
    "finite_number": "Must be a finite number.",
    "bool_parsing": "Must be yes or no.",
    "bool_type": "Must be yes or no.",
    "literal_error": "Choose one of: {expected}.",
    "enum": "Choose one of: {expected}.",
    "string_type": "Must be text.",
    "string_too_short": "Must be at least {min_length} characters long.",
    "string_too_long": "Must be at most {max_length} characters long.",
    "string_pattern_mismatch": "Does not have the expected form.",
    "too_short": "Choose at least {min_length}.",
    "too_long": "Choose at most {max_length}.",
    "list_type": "Must be a list, for example [1, 2].",
    "dict_type": 'Must be a mapping, for example {"a": 1}.',
    "extra_forbidden": "Not a known setting.",
}


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return f"{int(value):,}"


def friendly_error(error: ErrorDetails) -> str:
    """One pydantic error as a short sentence ("Must be at least 1.")."""
    template = _MESSAGES.get(error["type"])
    context = {k: _number(v) for k, v in (error.get("ctx") or {}).items()}
    if template is not None:
        try:
            return template.format(**context)
        except KeyError:
            pass
    message = str(error["msg"])
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def problems_by_field(exc: ValidationError) -> dict[str, str]:
    """Each field's first problem, by field name (errors about the whole model go under "")."""
    problems: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        problems.setdefault(name, friendly_error(error))
    return problems


class ChoiceSet(widgets.HBox):
    """Several choices as a row of checkboxes (clearer than a multi-select list); `value` is a tuple."""

    value = traitlets.Tuple()

    def __init__(self, options: Sequence[tuple[str, Any]], value: Sequence[Any] = ()) -> None:
        self._options = list(options)
        self._boxes = [
            widgets.Checkbox(
                value=v in value, description=label, indent=False, layout=widgets.Layout(width="auto")
            )
            for label, v in self._options
        ]
        super().__init__(self._boxes, layout=widgets.Layout(flex_flow="row wrap"))
        self.add_class("fb-choice-set")
        self.value = tuple(v for _, v in self._options if v in value)
        for box in self._boxes:
            box.observe(self._from_boxes, "value")
        self.observe(self._to_boxes, "value")

    @property
    def choices(self) -> list[Any]:
        """The values one may tick, in order."""
        return [v for _, v in self._options]

    def _from_boxes(self, _change: Any) -> None:
        self.value = tuple(v for (_, v), box in zip(self._options, self._boxes, strict=True) if box.value)

    def _to_boxes(self, change: Any) -> None:
        for (_, v), box in zip(self._options, self._boxes, strict=True):
            box.value = v in change["new"]


@dataclass
class Field:
    """One model field shown as a widget: its label, input, help line and the message under it."""

    name: str
    kind: str
    optional: bool
    input: widgets.DOMWidget
    message: widgets.HTML
    box: widgets.VBox
    loose: bool = False
    """A JSON field that also takes plain text (a type like `str | list[str]`)."""

    def read(self) -> Any:
        """The value as Python data; ValueError (in words) when the text cannot be read as that kind."""
        raw = self.input.value
        if self.kind in ("int", "float", "text", "json") and isinstance(raw, str):
            text = raw.strip()
            if not text:
                return None if self.optional or self.kind != "text" else ""
            if self.kind == "int":
                try:
                    return int(text.replace(",", "").replace("_", ""))
                except ValueError:
                    raise ValueError("Must be a whole number.") from None
            if self.kind == "float":
                try:
                    return float(text.replace(",", "").replace("_", ""))
                except ValueError:
                    raise ValueError("Must be a number.") from None
            if self.kind == "json":
                if self.loose and text[:1] not in '[{"':
                    return text
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"Not valid JSON ({exc.msg} at character {exc.pos + 1}).") from None
            return raw
        if self.kind == "multichoice":
            return list(raw)
        return raw

    def write(self, value: Any) -> None:
        """Show `value` in the input."""
        if self.kind == "json":
            plain = self.loose and isinstance(value, str)
            self.input.value = "" if value is None else value if plain else json.dumps(value)
        elif self.kind == "multichoice":
            self.input.value = tuple(value or ())
        elif isinstance(self.input, widgets.Text) and not isinstance(value, str):
            self.input.value = "" if value is None else str(value)
        else:
            self.input.value = value

    def show(self, problem: str | None) -> None:
        """Show a problem under the field (or clear it)."""
        if problem:
            self.message.value = f'<span class="fb-message">{escape(problem)}</span>'
            self.box.add_class("fb-field-invalid")
        else:
            self.message.value = ""
            self.box.remove_class("fb-field-invalid")


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema of a field with references followed; and whether null is allowed (Optional)."""
    node = dict(schema)
    optional = False
    for _ in range(8):
        if "$ref" in node:
            ref = str(node.pop("$ref")).rsplit("/", 1)[-1]
            node = {**root.get("$defs", {}).get(ref, {}), **node}
        elif "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            optional = optional or len(options) < len(node["anyOf"])
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            if len(options) == 1:
                node = {**options[0], **rest}
            else:
                loose = any(o.get("type") == "string" for o in options)
                node = {**rest, "type": "json", "x-fb-text": loose}
        elif "allOf" in node and len(node["allOf"]) == 1:
            rest = {k: v for k, v in node.items() if k != "allOf"}
            node = {**node["allOf"][0], **rest}
        else:
            break
    return node, optional


def field_schema(schema: Mapping[str, Any], name: str) -> tuple[dict[str, Any], bool]:
    """The JSON schema of field `name` of a model's `schema` (references followed), and whether it is optional."""
    return _resolve(schema.get("properties", {}).get(name, {}), schema)


def _kind(node: Mapping[str, Any]) -> str:
    if "enum" in node or "const" in node:
        return "choice"
    kind = node.get("type")
    if kind == "array":
        items, _ = _resolve(node.get("items", {}), {})
        return "multichoice" if "enum" in items else "json"
    return {"boolean": "bool", "integer": "int", "number": "float", "string": "text"}.get(str(kind), "json")


def _bounds(node: Mapping[str, Any]) -> str:
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if low is not None and high is not None:
        return f"from {_number(low)} to {_number(high)}"
    if low is not None:
        return f"{'more than' if 'exclusiveMinimum' in node else 'at least'} {_number(low)}"
    if high is not None:
        return f"{'less than' if 'exclusiveMaximum' in node else 'at most'} {_number(high)}"
    return ""


def _humanize(name: str) -> str:
    words = re.sub(r"[_\s]+", " ", name).strip()
    return words[:1].upper() + words[1:]


class ModelFields:
    """The fields of a pydantic model as widgets, with live validation at each field.

    `labels` overrides a field's label; `choice_labels` gives friendly labels to the values of a choice
    (`{"release": {"both": "Both parties"}}`); `exclude` leaves fields out (their defaults apply);
    `show_names` puts each field's name (what code uses) beside its label, for analysts.
    """

    def __init__(
        self,
        model: type[BaseModel],
        *,
        prefix: str = "fb-field",
        show_names: bool = True,
        exclude: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        choice_labels: Mapping[str, Mapping[Any, str]] | None = None,
    ) -> None:
        self.model = model
        self.show_names = show_names
        schema = model.model_json_schema()
        self.fields: dict[str, Field] = {}
        for name, info in model.model_fields.items():
            if name in exclude:
                continue
            prop, optional = field_schema(schema, name)
            required = info.is_required()
            default = None if required else info.get_default(call_default_factory=True)
            self.fields[name] = self._field(
                name,
                prop,
                optional=optional,
                required=required,
                default=default,
                label=(labels or {}).get(name),
                choices=(choice_labels or {}).get(name, {}),
                css=f"{prefix}-{name}",
            )
            self.fields[name].input.observe(lambda _c, n=name: self.check(n), "value")
        self.widget = widgets.VBox([f.box for f in self.fields.values()])
        self.widget.add_class("fb-fields")

    def _field(
        self,
        name: str,
        prop: Mapping[str, Any],
        *,
        optional: bool,
        required: bool,
        default: Any,
        label: str | None,
        choices: Mapping[Any, str],
        css: str,
    ) -> Field:
        kind = _kind(prop)
        description = str(prop.get("description") or "").strip()
        explicit_title = self.model.model_fields[name].title
        help_parts = []
        if label is None and explicit_title:
            label = explicit_title
        if label is None and description and len(description) <= 70:
            label = description[:1].upper() + description[1:]
        elif description:
            help_parts.append(description[:1].upper() + description[1:].rstrip(".") + ".")
        label = label or _humanize(name)
        layout = widgets.Layout(width="320px")
        input_: widgets.DOMWidget
        if kind == "bool":
            input_ = widgets.Checkbox(value=bool(default), indent=False, description="yes")
        elif kind == "choice":
            values = list(prop.get("enum", [prop.get("const")]))
            options = [(choices.get(v, str(v)), v) for v in values]
            if optional:
                options.insert(0, ("(none)", None))
            input_ = widgets.Dropdown(
                options=options, value=default if default in values else None, layout=layout
            )
        elif kind == "multichoice":
            items, _ = _resolve(prop.get("items", {}), {})
            input_ = ChoiceSet([(choices.get(v, str(v)), v) for v in items["enum"]], value=default or ())
        elif kind == "int" and default is not None and not optional:
            input_ = widgets.IntText(value=int(default), layout=layout)
        elif kind == "float" and default is not None and not optional:
            input_ = widgets.FloatText(value=float(default), layout=layout)
        elif kind == "json" and prop.get("x-fb-text"):
            text = "" if default is None else default if isinstance(default, str) else json.dumps(default)
            input_ = widgets.Text(value=text, placeholder='text, or a list such as ["a", "b"]', layout=layout)
        elif kind == "json":
            text = "" if default is None else json.dumps(default)
            input_ = widgets.Textarea(value=text, placeholder='JSON, for example {"a": 1}', layout=layout)
        else:
            text = "" if default is None else str(default)
            input_ = widgets.Text(
                value=text, layout=layout, placeholder="leave empty for none" if optional else ""
            )
        bounds = _bounds(prop)
        if bounds:
            help_parts.append(f"A number {bounds}.")
        if optional and kind in ("int", "float", "text"):
            help_parts.append("Optional.")
        tooltip = " ".join([description, f"({bounds})" if bounds else ""]).strip() or label
        if not isinstance(input_, widgets.Box):  # a Box with a tooltip fails to render in Voila 0.5
            input_.tooltip = tooltip
        input_.add_class("fb-input")
        star = ' <span class="fb-required" title="required">*</span>' if required else ""
        title = widgets.HTML(
            f'<span class="fb-label" title="{escape(tooltip)}">{escape(label)}{star}</span> '
            + (f'<code class="fb-param-name">{escape(name)}</code>' if self.show_names else "")
        )
        help_ = widgets.HTML(
            f'<span class="fb-help">{escape(" ".join(help_parts))}</span>' if help_parts else ""
        )
        message = widgets.HTML("")
        message.add_class("fb-field-message")
        box = widgets.VBox([title, input_, help_, message], layout=widgets.Layout(margin="0 0 10px 0"))
        box.add_class("fb-field")
        box.add_class(css)
        return Field(name, kind, optional, input_, message, box, loose=bool(prop.get("x-fb-text")))

    def read(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Every field's value, and each field whose text could not be read, with why."""
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, field in self.fields.items():
            try:
                value = field.read()
            except ValueError as exc:
                problems[name] = str(exc)
                continue
            if value is None and not field.optional and field.kind in ("int", "float", "json"):
                continue
            values[name] = value
        return values, problems

    def problems(self) -> dict[str, str]:
        """What is wrong with the current values, by field (empty when the model accepts them)."""
        values, problems = self.read()
        try:
            self.model.model_validate(values)
        except ValidationError as exc:
            for name, problem in problems_by_field(exc).items():
                problems.setdefault(name, problem)
        return problems

    def check(self, name: str | None = None) -> dict[str, str]:
        """Validate and show the problems at their fields (only field `name`'s, when given)."""
        problems = self.problems()
        for field_name, field in self.fields.items():
            if name is None or field_name == name:
                field.show(problems.get(field_name))
        return problems

    def validate(self) -> BaseModel:
        """The model instance of the current values; FormError (shown at each field) if they do not fit."""
        problems = self.check()
        if problems:
            raise FormError("Some values need fixing", problems)
        values, _ = self.read()
        return self.model.model_validate(values)

    def set(self, **values: Any) -> None:
        """Put values in the fields (as a user would type them), validating each."""
        for name, value in values.items():
            if name not in self.fields:
                raise FormError(
                    f"There is no field {name!r}", {name: f"Known fields: {', '.join(self.fields)}."}
                )
            try:
                self.fields[name].write(value)
            except traitlets.TraitError:
                kind = {"int": "a whole number", "float": "a number", "bool": "yes or no"}.get(
                    self.fields[name].kind, "a valid value"
                )
                problem = f"Must be {kind}."
                self.fields[name].show(problem)
                raise FormError("Some values need fixing", {name: problem}) from None
