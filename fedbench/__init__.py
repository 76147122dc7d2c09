"""fedbench: a Jupyter-native workbench for federated learning (PSI, vertical and horizontal modeling).

Start with `wb = fedbench.connect()`: it brings up the local sandbox federation if needed and returns a
`Workbench` on the `guest` party's node.
"""

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
    NotFound,
    PeerUnavailable,
    RecvTimeout,
    Refused,
    Unauthenticated,
)

__all__ = [
    "CertificateError",
    "CodecError",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "Datasets",
    "FedbenchError",
    "NodeClient",
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
]


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext fedbench`: register the `%fedbench` magics (status, run, dashboards) in this IPython shell."""
    from fedbench.magics import register

    register(ipython)
