"""Components as our node describes them, for forms: the node, not this kernel, decides what can run.

A node may load components the kernel has never imported (`component_modules` in `node.json`); `project.run`
runs them, so a form must be able to show them too. `node_component` asks the node for the component's
declaration (roles, inputs, outputs, params JSON schema) and returns a `Component` whose params model is the
kernel's own when the kernel holds the very same component (same version, same schema: its validators apply
as they will on the node), and otherwise one built from the node's schema by `schema_model`. Either way the
node validates the params again when the run is submitted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model
from pydantic import Field as PydanticField

from fedbench import components
from fedbench.client.projects import Project
from fedbench.components.spec import Component, Port
from fedbench.errors import FedbenchError, NotFound
from fedbench.ui.fields import field_schema

__all__ = ["node_component", "schema_model"]

log = logging.getLogger("fedbench.ui")

_SIMPLE: dict[str, Any] = {"integer": int, "number": float, "string": str, "boolean": bool}
_EMPTY: dict[str, Any] = {"array": list, "object": dict, "string": str}
_CONSTRAINTS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "multipleOf": "multiple_of",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minItems": "min_length",
    "maxItems": "max_length",
}


def node_component(project: Project, name: str) -> Component:
    """Component `name` as the project's node declares it (NotFound if the node has no such component).

    When the node cannot be asked right now, the kernel's own declaration is used if it has one.
    """
    try:
        described = project.component(name)
    except NotFound:
        raise
    except FedbenchError as exc:
        log.warning("could not ask the node for component %s (%s); using the kernel's declaration", name, exc)
        return components.get(name)
    own = _kernel_component(name)
    if (
        own is not None
        and own.version == described.get("version")
        and own.params.model_json_schema() == described.get("params_schema")
    ):
        return own
    return Component(
        name=str(described["name"]),
        version=str(described.get("version", "")),
        params=schema_model(str(described["name"]), described.get("params_schema") or {}),
        roles=tuple(described.get("roles") or ()),
        use=described.get("use", "train"),
        inputs=tuple(_port(p) for p in described.get("inputs") or ()),
        outputs=tuple(_port(p) for p in described.get("outputs") or ()),
        description=str(described.get("description") or ""),
        optional_roles=tuple(described.get("optional_roles") or ()),
    )


def _kernel_component(name: str) -> Component | None:
    try:
        return components.get(name)
    except NotFound:
        return None


def _port(data: Mapping[str, Any]) -> Port:
    return Port(
        name=str(data["name"]),
        kind=data.get("kind", "table"),
        description=str(data.get("description") or ""),
        optional=bool(data.get("optional", False)),
    )


def schema_model(name: str, schema: Mapping[str, Any]) -> type[BaseModel]:
    """A pydantic model that validates what the JSON schema `schema` (a params model's, as the node reports
    it) describes: types, choices, bounds, lengths, patterns, defaults, help text and optional fields.

    A field of a type this cannot express exactly (e.g. a union of a list and text) accepts any value here;
    the node's own model still checks it when the run is submitted.
    """
    fields: dict[str, Any] = {}
    required = set(schema.get("required") or ())
    for field_name in schema.get("properties") or {}:
        prop, optional = field_schema(schema, field_name)
        kind = _python_type(prop, schema)
        if optional:
            kind = kind | None
        options: dict[str, Any] = {
            option: prop[key] for key, option in _CONSTRAINTS.items() if key in prop and kind is not Any
        }
        if prop.get("description"):
            options["description"] = str(prop["description"])
        title = prop.get("title")
        if title and title != field_name.replace("_", " ").title():
            options["title"] = str(title)
        if field_name in required:
            options["default"] = ...
        elif "default" in prop:
            options["default"] = prop["default"]
        elif prop.get("type") in _EMPTY:  # a default factory, which the schema does not show
            options["default_factory"] = _EMPTY[str(prop["type"])]
        else:
            options["default"] = None
        fields[field_name] = (kind, PydanticField(**options))
    config = ConfigDict(extra="forbid" if schema.get("additionalProperties") is False else "ignore")
    model: type[BaseModel] = create_model(
        f"{name}_params", __config__=config, __doc__=schema.get("description"), **fields
    )
    return model


def _python_type(prop: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """The Python type of one resolved field schema (see `fields.field_schema`) of the model schema `root`."""
    if "enum" in prop:
        return Literal[tuple(prop["enum"])]
    if "const" in prop:
        return Literal[prop["const"]]
    kind = prop.get("type")
    if kind in _SIMPLE:
        return _SIMPLE[str(kind)]
    if kind == "array":
        wrapped = {"properties": {"item": prop.get("items") or {}}, "$defs": root.get("$defs", {})}
        items, _ = field_schema(wrapped, "item")
        return list[_python_type(items, root)]  # type: ignore[misc]
    if kind == "object":
        return dict[str, Any]
    return Any
