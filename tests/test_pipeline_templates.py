"""Every shipped pipeline template loads and validates, and survives a round trip through YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedbench import components
from fedbench.pipeline import Pipeline

TEMPLATES = sorted((Path(__file__).parent.parent / "templates" / "pipelines").glob("*.yaml"))


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_template_validates_and_round_trips(path):
    pipeline = Pipeline.from_yaml(path)
    ordered = pipeline.validate({"guest": ["guest"], "host": ["host"]})
    assert [s.name for s in ordered]
    again = Pipeline.from_yaml(pipeline.to_yaml())
    assert again.to_dict() == pipeline.to_dict()


@pytest.mark.parametrize("description", components.list_components(), ids=lambda d: d["name"])
def test_every_component_declares_a_usable_contract(description):
    """The contract test every registered component gets for free: schema, defaults, one function per role."""
    component = components.get(description["name"])
    assert description["params_schema"]["type"] == "object"
    component.validate_params({})
    assert set(component.functions) == set(component.roles)
    assert all(p.kind in ("table", "model", "metrics") for p in (*component.inputs, *component.outputs))
    step = Pipeline("one").add("s", component.name, inputs={p.name: "data" for p in component.inputs})
    assert Pipeline.from_yaml(step.to_yaml()).to_dict() == step.to_dict()
