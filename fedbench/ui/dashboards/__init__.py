"""The apps behind the Voila dashboards of `notebooks/dashboards/`: each builds its whole page as one widget.

`data.app()` registers and shows datasets; `projects.app()` proposes, accepts and revokes projects; `psi.app()`
runs a PSI in a project and shows (and downloads) its result; `modeling.app()` trains a model from a pipeline
template, shows its metrics and charts, retrains and compares; `scoring.app()` scores rows with a trained
model and downloads the scores. Each connects to the node named by `$FEDBENCH_HOME` / `$FEDBENCH_PARTY` unless
given a `Workbench`. Charts import matplotlib when first drawn.
"""

from fedbench.ui.dashboards import data, modeling, projects, psi, scoring

__all__ = ["data", "modeling", "projects", "psi", "scoring"]
