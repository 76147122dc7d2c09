"""Pipelines: a DAG of steps built in Python or loaded from YAML, validated before anything runs.

A step names a component, its params and its inputs. An input refers to a dataset (the same name on every
party, or a name per party), to an output of an earlier step of the pipeline, or to an artifact of an earlier
run of the project (`run.output("data")`). Each step gets a cache key: the hash of its component and version,
its validated params, its roles and the keys of its inputs (dataset fingerprints, upstream step keys). A step
whose key has outputs on every party is reused, not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fedbench import components
from fedbench.errors import ConfigError

__all__ = ["InputRef", "Pipeline", "PipelineError", "Step", "step_keys"]

_STEP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class PipelineError(ConfigError):
    """A pipeline (or a single run's request) is invalid: said before anything runs."""

    code = "pipeline"


InputRef = dict[str, Any]
"""{"dataset": name | {party: name}} | {"step": name, "output": name} | {"artifact": "<key>:<output>"}."""


def as_ref(value: Any) -> InputRef:
    """Normalise what a user passes as an input: a dataset name, a per-party dict, a run output, a ref."""
    if isinstance(value, str):
        return {"dataset": value}
    if hasattr(value, "as_ref"):
        return dict(value.as_ref())
    if isinstance(value, Mapping):
        if set(value) & {"dataset", "step", "artifact"}:
            return dict(value)
        if value and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return {"dataset": dict(value)}
    raise PipelineError(
        f"cannot use {value!r} as an input: give a dataset name, {{party: dataset}}, run.output(name) "
        "or {'step': ..., 'output': ...}"
    )


@dataclass
class Step:
    """One step of a pipeline."""

    name: str
    component: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, InputRef] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The step as plain data (for YAML and the wire)."""
        return {
            "name": self.name,
            "component": self.component,
            "params": dict(self.params),
            "inputs": {k: dict(v) for k, v in self.inputs.items()},
        }


class Pipeline:
    """An ordered set of steps; `add` appends one, `validate` checks the whole before anything runs."""

    def __init__(self, name: str = "pipeline", steps: list[Step] | None = None) -> None:
        self.name = name
        self.steps: list[Step] = list(steps or [])

    def add(
        self, name: str, component: str, *, inputs: Mapping[str, Any] | None = None, **params: Any
    ) -> Pipeline:
        """Append a step; inputs are dataset names, `Pipeline.ref(step, output)` or run outputs."""
        self.steps.append(
            Step(name, component, dict(params), {k: as_ref(v) for k, v in (inputs or {}).items()})
        )
        return self

    @staticmethod
    def ref(step: str, output: str) -> InputRef:
        """A reference to an output of an earlier step of this pipeline."""
        return {"step": step, "output": output}

    def to_dict(self) -> dict[str, Any]:
        """The pipeline as plain data."""
        return {"name": self.name, "steps": [s.to_dict() for s in self.steps]}

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The pipeline as YAML (written to `path` if given)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, data: Any) -> Pipeline:
        """Build from plain data, with a clear error for each malformed part."""
        if not isinstance(data, Mapping) or not isinstance(data.get("steps"), list):
            raise PipelineError("a pipeline is a mapping with a 'steps' list")
        steps = []
        for i, raw in enumerate(data["steps"]):
            if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
                raise PipelineError(f"step #{i + 1} must be a mapping with a 'name'")
            if not isinstance(raw.get("component"), str):
                raise PipelineError(f"step {raw['name']!r} names no component")
            unknown = set(raw) - {"name", "component", "params", "inputs"}
            if unknown:
                raise PipelineError(f"step {raw['name']!r} has unknown keys {sorted(unknown)}")
            params, inputs = raw.get("params") or {}, raw.get("inputs") or {}
            if not isinstance(params, Mapping) or not isinstance(inputs, Mapping):
                raise PipelineError(f"step {raw['name']!r}: params and inputs must be mappings")
            steps.append(
                Step(raw["name"], raw["component"], dict(params), {k: as_ref(v) for k, v in inputs.items()})
            )
        return cls(str(data.get("name", "pipeline")), steps)

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str]) -> Pipeline:
        """Load a pipeline file (or YAML text)."""
        is_text = isinstance(source, str) and "\n" in source
        text = str(source) if is_text or not Path(source).exists() else Path(source).read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PipelineError(f"the pipeline file is not valid YAML: {exc}") from None
        return cls.from_dict(data)

    def validate(self, roles: Mapping[str, list[str]] | None = None) -> list[Step]:
        """Check everything that can be checked before running; returns the steps in run order."""
        if not self.steps:
            raise PipelineError("the pipeline has no steps")
        by_name: dict[str, Step] = {}
        for step in self.steps:
            if not _STEP_NAME.match(step.name):
                raise PipelineError(f"step name {step.name!r} is not valid: letters, digits, '_' or '-'")
            if step.name in by_name:
                raise PipelineError(f"two steps are named {step.name!r}")
            by_name[step.name] = step
        for step in self.steps:
            component = components.get(step.component)
            component.validate_params(step.params, step=step.name)
            if roles is not None:
                missing = [r for r in component.required_roles() if not roles.get(r)]
                if missing:
                    raise PipelineError(
                        f"step {step.name!r} needs parties for roles {missing}; roles given: {dict(roles)}"
                    )
            for port in component.inputs:
                if port.name not in step.inputs and not port.optional:
                    raise PipelineError(
                        f"step {step.name!r} ({step.component}) is missing input {port.name!r}"
                    )
            for name, ref in step.inputs.items():
                port = component.port(name, output=False)
                if "step" in ref:
                    upstream = by_name.get(ref["step"])
                    if upstream is None:
                        raise PipelineError(
                            f"step {step.name!r} input {name!r} refers to unknown step {ref['step']!r}"
                        )
                    produced = components.get(upstream.component).port(str(ref.get("output")), output=True)
                    if produced.kind != port.kind:
                        raise PipelineError(
                            f"step {step.name!r} input {name!r} wants a {port.kind}, "
                            f"but {ref['step']}.{produced.name} is a {produced.kind}"
                        )
        return _topological(self.steps)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<li><b>{s.name}</b>: {s.component} {s.params or ''} &larr; "
            f"{', '.join(f'{k}={_describe(v)}' for k, v in s.inputs.items())}</li>"
            for s in self.steps
        )
        return f"<div class='fb-pipeline'><b>{self.name}</b><ol>{rows}</ol></div>"


def _describe(ref: InputRef) -> str:
    if "step" in ref:
        return f"{ref['step']}.{ref['output']}"
    if "artifact" in ref:
        return f"artifact {str(ref['artifact'])[:12]}"
    return f"dataset {ref['dataset']}"


def _topological(steps: list[Step]) -> list[Step]:
    order: list[Step] = []
    state: dict[str, int] = {}
    by_name = {s.name: s for s in steps}

    def visit(step: Step, path: list[str]) -> None:
        if state.get(step.name) == 2:
            return
        if state.get(step.name) == 1:
            raise PipelineError(f"the pipeline has a cycle: {' -> '.join([*path, step.name])}")
        state[step.name] = 1
        for ref in step.inputs.values():
            if "step" in ref:
                visit(by_name[ref["step"]], [*path, step.name])
        state[step.name] = 2
        order.append(step)

    for step in steps:
        visit(step, [])
    return order


def step_keys(
    ordered: list[Step],
    roles: Mapping[str, list[str]],
    dataset_key: Callable[[InputRef], str],
    project: str = "",
) -> dict[str, str]:
    """The cache key of every step (in run order): its project, component, params, roles and inputs' keys.

    The project is part of the key so that nothing made under one project's terms (its PSI key, its release
    policy) is ever reused by another. An optional role left without a party counts as an empty list, the same
    whether the role is absent from `roles` or given as `[]`.
    """
    keys: dict[str, str] = {}
    for step in ordered:
        component = components.get(step.component)
        params = component.validate_params(step.params, step=step.name).model_dump(mode="json")
        inputs = {}
        for name, ref in sorted(step.inputs.items()):
            if "step" in ref:
                inputs[name] = f"{keys[ref['step']]}:{ref['output']}"
            elif "artifact" in ref:
                inputs[name] = str(ref["artifact"])
            else:
                inputs[name] = dataset_key(ref)
        material = {
            "project": project,
            "component": component.name,
            "version": component.version,
            "params": params,
            "roles": {r: list(roles.get(r, [])) for r in component.roles},
            "inputs": inputs,
        }
        keys[step.name] = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:40]
    return keys
