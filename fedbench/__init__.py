"""fedbench: a Jupyter-native workbench for federated learning (PSI, vertical and horizontal modeling).

Start with `wb = fedbench.connect()`: it brings up the local sandbox federation if needed and returns a
`Workbench` on the `guest` party's node. `fedbench.ui` (forms, monitors, charts) is imported on first use,
so a plain `import fedbench` (a node, the CLI) does not load ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from fedbench.client import (  # noqa: E402
    Dataset,
    Datasets,
    NodeClient,
    PeerStatus,
    Project,
    Projects,
    Workbench,
    connect,
)
from fedbench.errors import (  # noqa: E402
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

if TYPE_CHECKING:
    from fedbench import ui

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
    "connect",
    "load_ipython_extension",
    "ui",
]


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext fedbench`: register the `%fedbench` magics (status, run, dashboards) in this IPython shell."""
    from fedbench.magics import register

    register(ipython)


def __getattr__(name: str) -> Any:
    """`fedbench.ui`, imported when first asked for (it loads ipywidgets, which nodes and the CLI never need)."""
    if name == "ui":
        return importlib.import_module("fedbench.ui")
    raise AttributeError(f"module 'fedbench' has no attribute {name!r}")
