"""The component contract, checked for every registered component (issue #16 item 2).

Like scikit-learn's `parametrize_with_checks`, every component of the registry is paired with every check: its
defaults validate, its params schema and its form fields agree, its pipeline entry survives YAML, every
declared role has a function, and `simulate()` on a 20-row table succeeds with outputs that match the
declared ports. The components come from the registry, not from a list here, so a component added later gets
every check; what it needs as inputs comes from `RECIPES`, and a component without a recipe fails.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, Field

from fedbench import components
from fedbench.components import Component, ParamsError, Port, RoleFailed, simulate
from fedbench.pipeline import Pipeline
from fedbench.ui.fields import ModelFields
from fedbench.ui.node_components import schema_model

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

ROWS = 20


@functools.cache
def _tables() -> dict[str, pd.DataFrame]:
    """Aligned 20-row tables: the guest's label and two features, the host's two features."""
    rng = np.random.default_rng(16)
    ids = [f"c{i:02d}" for i in range(ROWS)]
    x = rng.normal(size=ROWS)
    guest = pd.DataFrame(
        {
            "id": ids,
            "y": (x + rng.normal(scale=0.7, size=ROWS) > 0).astype(int),
            "x1": x,
            "x2": rng.normal(size=ROWS),
        }
    )
    host = pd.DataFrame({"id": ids, "h1": x + rng.normal(scale=0.5, size=ROWS), "h2": rng.normal(size=ROWS)})
    return {"guest": guest, "host": host}


@functools.cache
def _upstream(name: str) -> dict[str, dict[str, Any]]:
    """The outputs of an upstream component simulated on the 20-row tables (once per module)."""
    return simulate(name, _tables(), **RECIPES[name]().params)


@functools.cache
def _homo_lr() -> dict[str, dict[str, Any]]:
    """A horizontal model trained by three clients on the guest's 20 rows (for `homo_score`)."""
    recipe = RECIPES["homo_lr"]()
    return simulate("homo_lr", recipe.tables(), roles=recipe.roles, **recipe.params)


@dataclass(frozen=True)
class Recipe:
    """What a component is simulated with: each party's inputs (default: the 20-row tables) and params."""

    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] | None = None
    roles: dict[str, Any] | None = None
    """Each role's parties, for a component whose roles are not one guest and one host."""

    def tables(self) -> dict[str, Any]:
        return _tables() if self.inputs is None else self.inputs


def _from(upstream: str, **ports: str) -> dict[str, dict[str, Any]]:
    """Each party's inputs taken from an upstream simulation's outputs (`input=output`), plus its table."""
    outputs = _upstream(upstream)
    return {
        party: {"data": table} | {port: outputs[party][out] for port, out in ports.items()}
        for party, table in _tables().items()
    }


RECIPES: dict[str, Callable[[], Recipe]] = {
    "binning": lambda: Recipe({"key_bits": 1024, "bins": 3, "min_bin_count": 2}),
    "compare": lambda: Recipe(
        {"bins": 2, "min_bucket": 10, "resamples": 100},
        inputs={
            party: {"model": out["model"], "train": _tables()[party], "validation": _tables()[party]}
            for party, out in _upstream("hetero_lr").items()
        },
    ),
    "evaluate": lambda: Recipe(
        inputs={party: {"scores": out["scores"]} for party, out in _upstream("hetero_lr").items()}
    ),
    "head": lambda: Recipe({"n": 5}),
    "hetero_lr": lambda: Recipe({"key_bits": 1024, "epochs": 2}),
    "hetero_secureboost": lambda: Recipe({"key_bits": 1024, "trees": 2, "bins": 4}),
    # Secure aggregation needs three clients: the guest's 20 rows split three ways (the label is y).
    "homo_lr": lambda: Recipe(
        {"rounds": 2, "stage_timeout": 10},
        inputs={f"c{i}": _tables()["guest"].iloc[i::3] for i in range(3)},
        roles={"client": ["c0", "c1", "c2"], "server": "server"},
    ),
    "homo_nn": lambda: Recipe(
        {"rounds": 2, "stage_timeout": 10, "hidden_layers": [4]},
        inputs={f"c{i}": _tables()["guest"].iloc[i::3] for i in range(3)},
        roles={"client": ["c0", "c1", "c2"], "server": "server"},
    ),
    "homo_score": lambda: Recipe(
        inputs={
            party: {"model": out["model"], "data": _tables()["guest"]}
            for party, out in _homo_lr().items()
            if party != "server"
        },
        roles={"client": ["c0", "c1", "c2"]},
    ),
    "preprocess": lambda: Recipe(),
    "psi": lambda: Recipe(),
    "row_count": lambda: Recipe(),
    "sample": lambda: Recipe(),
    "score": lambda: Recipe({"scorecard": True}, inputs=_from("hetero_lr", model="model")),
    "select": lambda: Recipe({"top_k": 1}, inputs=_from("binning", binning_model="model")),
    "split": lambda: Recipe(),
    # 20 rows are too few for a correlation under a 1024-bit key (the host refuses: see the statistics tests).
    "statistics": lambda: Recipe({"correlation": False}),
}


def _recipe(component: Component) -> Recipe:
    if component.name not in RECIPES:
        pytest.fail(
            f"component {component.name!r} has no input recipe: add one to RECIPES in {__name__} so the "
            "contract checks can run it"
        )
    return RECIPES[component.name]()


def _required(component: Component, params: dict[str, Any]) -> dict[str, Any]:
    """The recipe's values of the params that have no default (the only ones a user must give)."""
    return {k: v for k, v in params.items() if component.params.model_fields[k].is_required()}


# ----- the checks ---------------------------------------------------------------------------------------------


def check_defaults_validate(component: Component) -> None:
    """The defaults pass the params model's own rules, and a validated set of params validates again unchanged."""
    recipe = _recipe(component)
    defaults = component.validate_params(_required(component, recipe.params))
    assert component.validate_params(defaults.model_dump(mode="json")) == defaults
    chosen = component.validate_params(recipe.params)
    assert component.validate_params(chosen.model_dump(mode="json")) == chosen


def check_form_fields_match_the_schema(component: Component) -> None:
    """The form has one field per parameter of the schema; as it opens it submits the defaults, and values
    typed into it mean what they mean in code. A form built from the JSON schema alone (a component the node
    loads and the kernel does not hold) has the same fields and opens at the same defaults."""
    recipe = _recipe(component)
    schema = component.params.model_json_schema()
    fields = ModelFields(component.params)
    assert list(fields.fields) == list(schema.get("properties", {}))
    fields.set(**_required(component, recipe.params))
    assert fields.problems() == {}
    assert fields.validate() == component.validate_params(_required(component, recipe.params))
    fields.set(**recipe.params)
    assert fields.validate() == component.validate_params(recipe.params)
    remote = ModelFields(schema_model(component.name, schema))
    assert list(remote.fields) == list(fields.fields), (
        "a node's form (built from its schema) has the same fields"
    )
    remote.set(**_required(component, recipe.params))
    values, problems = remote.read()
    assert problems == {} and remote.problems() == {}
    assert component.validate_params(values) == component.validate_params(_required(component, recipe.params))


def check_pipeline_yaml_round_trips(component: Component) -> None:
    """A pipeline step of the component, with every param spelled out, reads back from YAML the same."""
    recipe = _recipe(component)
    params = component.validate_params(recipe.params).model_dump(mode="json")
    inputs = {
        port.name: "customers" if port.kind == "table" else {"artifact": f"{'0' * 40}:{port.name}"}
        for port in component.inputs
        if not port.optional
    }
    pipeline = Pipeline("contract").add("step", component.name, inputs=inputs, **params)
    text = pipeline.to_yaml()
    again = Pipeline.from_yaml(text)
    assert again.to_dict() == pipeline.to_dict()
    (step,) = again.validate({role: [role] for role in component.roles})
    assert component.validate_params(step.params) == component.validate_params(recipe.params)
    assert again.to_yaml() == text


def check_every_role_has_a_function(component: Component) -> None:
    """Each declared role has a function to run, and no function is declared for a role that does not exist."""
    assert set(component.functions) == set(component.roles)
    assert all(callable(function) for function in component.functions.values())
    assert set(component.optional_roles) <= set(component.roles)
    assert component.required_roles()


_KINDS: dict[str, type] = {"table": pd.DataFrame, "model": dict, "metrics": dict}


def check_simulate_writes_the_declared_outputs(component: Component) -> None:
    """`simulate()` on 20 rows succeeds; every output written is a declared port of the right kind, and every
    required output is written by some party."""
    recipe = _recipe(component)
    outputs = simulate(component, recipe.tables(), roles=recipe.roles, **recipe.params)
    declared = {port.name: port for port in component.outputs}
    for party, written in outputs.items():
        for name, value in written.items():
            assert name in declared, f"{party} wrote undeclared output {name!r}"
            kind = declared[name].kind
            assert isinstance(value, _KINDS[kind]), (
                f"{party}'s {name!r} is a {type(value).__name__}, not a {kind}"
            )
    unwritten = [
        p.name for p in component.outputs if not p.optional and not any(p.name in o for o in outputs.values())
    ]
    assert not unwritten, f"no party wrote the required outputs {unwritten}"


CHECKS = [
    check_defaults_validate,
    check_form_fields_match_the_schema,
    check_pipeline_yaml_round_trips,
    check_every_role_has_a_function,
    check_simulate_writes_the_declared_outputs,
]


def _registered() -> list[str]:
    """The shipped components: registered, with every role function in `fedbench.components.builtin`.

    Other test modules register test-only components in this process too; those are not shipped.
    """
    return [
        described["name"]
        for described in components.list()
        if all(
            function.__module__.startswith("fedbench.components.builtin.")
            for function in components.get(described["name"]).functions.values()
        )
    ]


@pytest.mark.parametrize(
    ("name", "check"),
    [(name, check) for name in _registered() for check in CHECKS],
    ids=[f"{name}-{check.__name__.removeprefix('check_')}" for name in _registered() for check in CHECKS],
)
def test_component_contract(name: str, check: Callable[[Component], None]) -> None:
    check(components.get(name))


def test_the_contract_covers_the_built_in_components() -> None:
    """The checks run on the registry; these are the components shipped today, each with a recipe."""
    assert set(_registered()) >= {"psi", "hetero_lr", "score", "binning", "statistics", "evaluate"}
    assert set(RECIPES) == set(_registered()), "a recipe for a component no longer registered: remove it"


def test_a_component_without_a_recipe_fails_its_checks_rather_than_skipping() -> None:
    class Nothing(BaseModel):
        pass

    newcomer = Component("newcomer", "1", Nothing, ("guest", "host"), "train")
    with pytest.raises(pytest.fail.Exception, match="'newcomer' has no input recipe"):
        check_simulate_writes_the_declared_outputs(newcomer)


def test_the_checks_catch_a_broken_component() -> None:
    """A default outside its own bounds, and an output the component never declared, each fail their check."""

    class Bad(BaseModel):
        rows: int = Field(default=0, ge=1)

    broken = Component(
        "row_count",
        "1",
        Bad,
        ("guest", "host"),
        "train",
        inputs=(Port("data", "table"),),
        outputs=(Port("metrics", "metrics"),),
    )
    with pytest.raises(ParamsError, match="rows"):
        check_defaults_validate(broken)
    broken.params = components.get("row_count").params

    @broken.role("guest")
    def guest(ctx: Any, params: Any) -> None:
        ctx.output("model", {"weights": [1.0]})

    broken.role("host")(lambda ctx, params: None)
    with pytest.raises(RoleFailed, match="has no output 'model'") as failed:
        check_simulate_writes_the_declared_outputs(broken)
    assert failed.value.party == "guest"
