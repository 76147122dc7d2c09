"""The component contract: one declaration gives the Python call, the form, the pipeline entry and the step.

A component is declared once: a pydantic params model (types, bounds, defaults, help text), its roles (some
of which may be optional: a job can leave an `arbiter` without a party), its named inputs and outputs, the
project use it counts as, and one function per role. `register` puts it in the registry that
`fedbench.components.list()` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from fedbench.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from fedbench.federation import Context

__all__ = ["Component", "ParamsError", "Port", "get", "list_components", "load_modules", "register"]

Kind = Literal["table", "model", "metrics"]
RoleFunction = Callable[["Context", Any], None]


class ParamsError(ConfigError):
    """Parameters of a step do not fit its component's params model."""

    code = "params"


@dataclass(frozen=True)
class Port:
    """A named input or output of a component."""

    name: str
    kind: Kind
    description: str = ""
    optional: bool = False


@dataclass
class Component:
    """One federated step: params model, roles, inputs, outputs and a function per role."""

    name: str
    version: str
    params: type[BaseModel]
    roles: tuple[str, ...]
    use: Literal["psi", "train", "score"]
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    description: str = ""
    functions: dict[str, RoleFunction] = field(default_factory=dict)
    optional_roles: tuple[str, ...] = ()
    """Roles a job may leave without a party (e.g. an arbiter); the role functions see an empty list."""

    def __post_init__(self) -> None:
        unknown = [r for r in self.optional_roles if r not in self.roles]
        if unknown:
            raise ConfigError(
                f"component {self.name!r}: optional roles {unknown} are not among its roles {self.roles}"
            )
        if set(self.roles) <= set(self.optional_roles):
            raise ConfigError(f"component {self.name!r}: at least one of its roles must not be optional")

    def required_roles(self) -> tuple[str, ...]:
        """The roles every job of this component must give a party."""
        return tuple(r for r in self.roles if r not in self.optional_roles)

    def role(self, role: str) -> Callable[[RoleFunction], RoleFunction]:
        """Decorator declaring the function one role runs."""
        if role not in self.roles:
            raise ConfigError(f"component {self.name!r} has roles {self.roles}, not {role!r}")

        def decorate(function: RoleFunction) -> RoleFunction:
            self.functions[role] = function
            return function

        return decorate

    def validate_params(self, params: dict[str, Any], *, step: str | None = None) -> BaseModel:
        """The params model instance, or ParamsError quoting pydantic's message and the step."""
        try:
            return self.params.model_validate(params)
        except ValidationError as exc:
            where = f"step {step!r} ({self.name})" if step else f"component {self.name!r}"
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
            )
            raise ParamsError(f"bad params for {where}: {problems}") from None

    def port(self, name: str, *, output: bool) -> Port:
        """One input or output port by name."""
        ports = self.outputs if output else self.inputs
        for port in ports:
            if port.name == name:
                return port
        kind = "output" if output else "input"
        raise ConfigError(f"component {self.name!r} has no {kind} {name!r}; it has {[p.name for p in ports]}")

    def describe(self) -> dict[str, Any]:
        """Everything a form, a pipeline file or a dashboard needs to know, as JSON."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "roles": list(self.roles),
            "optional_roles": list(self.optional_roles),
            "use": self.use,
            "inputs": [vars(p) for p in self.inputs],
            "outputs": [vars(p) for p in self.outputs],
            "params_schema": self.params.model_json_schema(),
        }


_REGISTRY: dict[str, Component] = {}


def register(component: Component) -> Component:
    """Add a component to the registry (its role functions may be declared afterwards)."""
    if component.name in _REGISTRY and _REGISTRY[component.name] is not component:
        raise ConfigError(f"a component named {component.name!r} is registered already")
    _REGISTRY[component.name] = component
    return component


def get(name: str) -> Component:
    """A registered component by name."""
    _load_builtins()
    if name not in _REGISTRY:
        raise NotFound(f"unknown component {name!r}; available: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def list_components() -> list[dict[str, Any]]:
    """Every registered component with its params schema."""
    _load_builtins()
    return [_REGISTRY[name].describe() for name in sorted(_REGISTRY)]


def load_modules(names: list[str]) -> None:
    """Import modules that register extra components (a node's `component_modules`)."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import component module {name!r}: {exc}; is it installed?") from None


def _load_builtins() -> None:
    import fedbench.components.builtin  # noqa: F401  (registers on import)
