"""The user interface of fedbench: component forms, run monitors, charts and the Voila dashboards' apps.

`form(project, "row_count")` builds a form from a component's declaration; `monitor(run)` follows a run
live; `plots` holds the charts (pure functions returning matplotlib Figures), also importable from here.
The dashboards in `notebooks/dashboards/` are thin notebooks over `fedbench.ui.dashboards`. matplotlib is
imported on first use of a chart, so a dashboard that draws none starts faster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fedbench.ui.errors import FormError, PlotError
from fedbench.ui.forms import ComponentForm, form
from fedbench.ui.monitor import RunMonitor, monitor

if TYPE_CHECKING:
    from fedbench.ui import plots
    from fedbench.ui.plots import (
        compare_runs,
        confusion_matrix,
        feature_importance,
        iv_chart,
        ks_curve,
        lift_gain_chart,
        loss_curve,
        roc_curve,
        score_distribution,
        tree_view,
    )

_PLOTS = (
    "compare_runs",
    "confusion_matrix",
    "feature_importance",
    "iv_chart",
    "ks_curve",
    "lift_gain_chart",
    "loss_curve",
    "roc_curve",
    "score_distribution",
    "tree_view",
)

__all__ = [
    "ComponentForm",
    "FormError",
    "PlotError",
    "RunMonitor",
    "compare_runs",
    "confusion_matrix",
    "feature_importance",
    "form",
    "iv_chart",
    "ks_curve",
    "lift_gain_chart",
    "loss_curve",
    "monitor",
    "plots",
    "roc_curve",
    "score_distribution",
    "tree_view",
]


def __getattr__(name: str) -> Any:
    """The `plots` module and its charts, imported when first asked for."""
    if name == "plots" or name in _PLOTS:
        module = importlib.import_module("fedbench.ui.plots")
        return module if name == "plots" else getattr(module, name)
    raise AttributeError(f"module 'fedbench.ui' has no attribute {name!r}")
