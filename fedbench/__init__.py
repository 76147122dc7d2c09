"""fedbench: a Jupyter-native workbench for federated learning (PSI, vertical and horizontal modeling).

Start with `wb = fedbench.connect()`: it brings up the local sandbox federation if needed and returns a
`Workbench` on the `guest` party's node. The public names load on first use (PEP 562), so a plain
`import fedbench` (a node's worker, the CLI) pulls in neither the client, the sandbox, sqlmodel, pandas or
gRPC, nor `fedbench.ui` (ipywidgets).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedbench.errors import (
    CertificateError,
    CodecError,
    ConfigError,
    DatasetError,
    FedbenchError,
    NodeUnavailable,
    NotFound,
    PeerUnavailable,
    RecvTimeout,
    Refused,
    Unauthenticated,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fedbench import ui
    from fedbench.client.connect import connect
    from fedbench.client.control import NodeClient
    from fedbench.client.datasets import Dataset, Datasets
    from fedbench.client.projects import Project, Projects
    from fedbench.client.workbench import PeerStatus, Workbench
    from fedbench.components.simulate import simulate
    from fedbench.ml.uplift import compare_scores, delong_delta

_LAZY = {
    "Dataset": "fedbench.client",
    "Datasets": "fedbench.client",
    "NodeClient": "fedbench.client",
    "PeerStatus": "fedbench.client",
    "Project": "fedbench.client",
    "Projects": "fedbench.client",
    "Workbench": "fedbench.client",
    "compare_scores": "fedbench.ml.uplift",
    "connect": "fedbench.client",
    "delong_delta": "fedbench.ml.uplift",
    "simulate": "fedbench.components",
}
"""Public names defined elsewhere, by the module that holds each; imported when first asked for."""

__all__ = [
    "CertificateError",
    "CodecError",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "Datasets",
    "FedbenchError",
    "NodeClient",
    "NodeUnavailable",
    "NotFound",
    "PeerStatus",
    "PeerUnavailable",
    "Project",
    "Projects",
    "RecvTimeout",
    "Refused",
    "Unauthenticated",
    "Workbench",
    "__version__",
    "compare_scores",
    "connect",
    "delong_delta",
    "load_ipython_extension",
    "simulate",
    "ui",
]


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext fedbench`: register the `%fedbench` magics (status, run, dashboards) in this IPython shell."""
    from fedbench.magics import register

    register(ipython)


def __getattr__(name: str) -> Any:
    """A public name (or `fedbench.ui`) imported when first asked for, then kept as a module attribute."""
    if name == "ui":
        return importlib.import_module("fedbench.ui")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fedbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The loaded attributes and every public name, loaded or not (for tab completion)."""
    return sorted(set(globals()) | set(__all__))
