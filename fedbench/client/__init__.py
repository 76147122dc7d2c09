"""The kernel-side client: `connect()` and the objects an analyst works with."""

from fedbench.client.connect import connect
from fedbench.client.control import NodeClient
from fedbench.client.datasets import Dataset, Datasets
from fedbench.client.projects import Project, Projects
from fedbench.client.workbench import PeerStatus, Workbench

__all__ = ["Dataset", "Datasets", "NodeClient", "PeerStatus", "Project", "Projects", "Workbench", "connect"]
