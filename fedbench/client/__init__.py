"""The kernel-side client: `connect()` and the objects an analyst works with.

Each name but `connect` (whose module shares its name, so it is bound at once) loads its module on first use
(PEP 562): `import fedbench.client.control` (the sandbox and every dashboard kernel go through it) pulls in
neither the datasets, projects and runs modules nor the store they would import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedbench.client.connect import connect

if TYPE_CHECKING:
    from fedbench.client.control import NodeClient
    from fedbench.client.datasets import Dataset, Datasets
    from fedbench.client.projects import Project, Projects
    from fedbench.client.workbench import PeerStatus, Workbench

_HOMES = {
    "NodeClient": "fedbench.client.control",
    "Dataset": "fedbench.client.datasets",
    "Datasets": "fedbench.client.datasets",
    "Project": "fedbench.client.projects",
    "Projects": "fedbench.client.projects",
    "PeerStatus": "fedbench.client.workbench",
    "Workbench": "fedbench.client.workbench",
}
"""Where each public name lives."""

__all__ = ["Dataset", "Datasets", "NodeClient", "PeerStatus", "Project", "Projects", "Workbench", "connect"]


def __getattr__(name: str) -> Any:
    """Load the module holding `name` when it is first asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module 'fedbench.client' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
