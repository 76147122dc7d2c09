"""Components: typed federated steps declared once (see `spec.py`), and the registry that lists them."""

from fedbench.components.simulate import (
    RecordedMessage,
    RoleFailed,
    SimulationTimeout,
    simulate,
    simulated_private_rng,
)
from fedbench.components.spec import (
    Component,
    ParamsError,
    Port,
    get,
    list_components,
    load_modules,
    register,
)
from fedbench.federation import Cancelled, Context, PeerHandle

list = list_components  # noqa: A001  (the public name the issue asks for: fedbench.components.list())

__all__ = [
    "Cancelled",
    "Component",
    "Context",
    "ParamsError",
    "PeerHandle",
    "Port",
    "RecordedMessage",
    "RoleFailed",
    "SimulationTimeout",
    "get",
    "list",
    "list_components",
    "load_modules",
    "register",
    "simulate",
    "simulated_private_rng",
]
