"""Where the dashboards are and how to open them: shared by the server extension and the `%fedbench` magics.

Dashboards are the notebooks in `notebooks/dashboards/` under a Jupyter server's root; inside JupyterLab each
opens at `<server url>voila/render/<path>` (Voila's server extension). This module imports nothing heavy, so
a kernel can use it without loading Jupyter Server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["DASHBOARDS_DIR", "find_dashboards", "running_server_for", "voila_url"]

DASHBOARDS_DIR = "notebooks/dashboards"


def find_dashboards(root_dir: str | os.PathLike[str]) -> list[str]:
    """The dashboard notebooks under a Jupyter root, as root-relative POSIX paths (for `voila/render/...`)."""
    root = Path(root_dir).expanduser()
    folder = root / DASHBOARDS_DIR
    if not folder.is_dir():
        return []
    return sorted(
        p.relative_to(root).as_posix() for p in folder.glob("*.ipynb") if not p.name.startswith(".")
    )


def voila_url(base_url: str, path: str) -> str:
    """The URL that renders the notebook at root-relative `path` with Voila, under `base_url`."""
    return f"{base_url.rstrip('/')}/voila/render/{path.lstrip('/')}"


def running_server_for(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The running Jupyter server whose root holds `path` (the deepest such root), from its runtime file."""
    from jupyter_server.serverapp import list_running_servers

    here = Path(path).expanduser().resolve()
    best: dict[str, Any] | None = None
    for server in list_running_servers():
        root = Path(server.get("root_dir") or server.get("notebook_dir") or "/").expanduser().resolve()
        if (root == here or root in here.parents) and (
            best is None or len(str(root)) > len(str(best.get("root_dir", "")))
        ):
            best = dict(server, root_dir=str(root))
    return best
