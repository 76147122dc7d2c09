"""The apps behind the Voila dashboards of `notebooks/dashboards/`: each builds its whole page as one widget.

`data.app()` registers and shows datasets; `projects.app()` proposes, accepts and revokes projects; `psi.app()`
runs a PSI in a project and shows (and downloads) its result. Each connects to the node named by
`$FEDBENCH_HOME` / `$FEDBENCH_PARTY` unless given a `Workbench`.
"""

from fedbench.ui.dashboards import data, projects, psi

__all__ = ["data", "projects", "psi"]
