"""fedbench's Jupyter server extension: JupyterLab finds (or starts) the party's node and reports its status.

Installing the package enables it (`etc/jupyter/jupyter_server_config.d/fedbench.json`, shipped as wheel
shared data); `jupyter server extension enable --sys-prefix fedbench.jupyter` does the same by hand. On
start it works out which node this server belongs to (traitlets `c.Fedbench.home`, or `$FEDBENCH_HOME`, or
the sandbox federation when `$FEDBENCH_SANDBOX=1` or nothing is configured), brings it up in a background
thread if it does not answer, and serves the API of JupyterLab's "Federation" sidebar under `/fedbench/`
(`status`, `projects`, runs; authenticated and XSRF-checked like every Jupyter API). The work is in
`extension.py` and `handlers.py` (imported only by a server; what the sidebar shows is read in `panel.py`, kept
for a second in `cache.py`); `links.py` locates the dashboards for kernels too. The sidebar itself is the
prebuilt labextension in `fedbench/labextension` (sources: `extensions/fedbench-sidebar`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Tell Jupyter Server which module holds the extension's loader."""
    return [{"module": "fedbench.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Called by Jupyter Server at start: register the status endpoint and bring up the node."""
    from fedbench.jupyter.extension import load

    load(serverapp)
