"""The modeling dashboard's horizontal training: parties holding the same columns train one model together.

Shown instead of the vertical training when the chosen project is horizontal: three or more members bring data
and one brings none (the aggregator). The user picks the model (logistic regression or a small neural
network), our dataset, which members train (`client`) and which one aggregates (`server`), and the settings
(a form from the component's params); Train runs the model and `homo_score` on our rows. The result is what
our node holds: our rows' metrics under the global model, our loss at each round, the privacy spent when
differential privacy was on, and our scored rows.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from fedbench import components
from fedbench.client.records import RunInfo
from fedbench.client.runs import Run
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards.common import labelled, table_html
from fedbench.ui.dashboards.figures import chart
from fedbench.ui.errors import FormError
from fedbench.ui.fields import ModelFields
from fedbench.ui.style import row

if TYPE_CHECKING:
    from fedbench.ui.dashboards.modeling import ModelingApp

__all__ = ["HORIZONTAL_KINDS", "HorizontalTraining", "is_horizontal"]

HORIZONTAL_KINDS = {"homo_lr": "Logistic regression", "homo_nn": "Neural network"}
"""The horizontal models the page trains, in words."""
MAIN = {
    "homo_lr": ("rounds", "local_epochs", "learning_rate"),
    "homo_nn": ("rounds", "local_epochs", "learning_rate", "hidden_layers"),
}
"""The settings shown at once; the others are under "More settings"."""
LABELS = {
    "rounds": "Rounds (one secure aggregation each)",
    "local_epochs": "Passes over its rows per party and round",
    "learning_rate": "Learning rate",
    "hidden_layers": "Hidden layers' widths",
    "clients_per_round": "Share of the parties that train each round",
    "dp_noise": "Differential privacy: noise (0: off)",
}


def is_horizontal(info: dict[str, Any]) -> bool:
    """Whether a project is horizontal: three or more members bring data and at least one brings none."""
    datasets = info.get("datasets", {})
    bringing = [m for m in info.get("members", []) if datasets.get(m)]
    return len(bringing) >= 3 and len(bringing) < len(info.get("members", []))


class HorizontalTraining:
    """The horizontal part of the modeling page: its card, its choices, its training and its result."""

    def __init__(self, app: ModelingApp) -> None:
        self.app = app
        self.info: dict[str, Any] = {}
        wide = widgets.Layout(width="300px")
        self.kind = widgets.ToggleButtons(
            options=[(v, k) for k, v in HORIZONTAL_KINDS.items()], value="homo_lr"
        )
        self.kind.add_class("fb-horizontal-kind")
        self.kind.observe(lambda _c: self._show_settings(), "value")
        self.dataset = widgets.Dropdown(options=[], layout=wide)
        self.dataset.add_class("fb-horizontal-dataset")
        self.clients_box = widgets.HBox([])
        self.clients_box.add_class("fb-horizontal-clients")
        self.clients: dict[str, widgets.Checkbox] = {}
        self.server = widgets.Dropdown(options=[], layout=wide)
        self.server.add_class("fb-horizontal-server")
        self.forms: dict[str, ModelFields] = {}
        self.parts: dict[str, tuple[widgets.Widget, widgets.Widget]] = {}
        for kind in HORIZONTAL_KINDS:
            form = ModelFields(
                components.get(kind).params,
                prefix=f"fb-horizontal-{kind}-param",
                show_names=False,
                labels=LABELS,
            )
            for hidden in ("label", "classes", "features", "id_column"):
                form.fields[hidden].box.layout.display = "none"
            main = widgets.HBox([form.fields[n].box for n in MAIN[kind]])
            main.add_class("fb-row")
            more = widgets.Accordion(
                children=[widgets.VBox([f.box for n, f in form.fields.items() if n not in MAIN[kind]])],
                titles=("More settings",),
            )
            more.selected_index = None
            self.forms[kind] = form
            self.parts[kind] = (main, more)
        self.settings_box = widgets.VBox([])
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.train_button.add_class("fb-horizontal-train")
        self.train_button.on_click(lambda _b: self.app._quietly(self.train))
        self.result = widgets.HTML("")
        self.result.add_class("fb-horizontal-result")
        self.charts = widgets.HTML("")
        self.charts.add_class("fb-horizontal-plots")
        self.box = widgets.VBox(
            [
                widgets.HTML(
                    '<div class="fb-help">A horizontal project: its parties hold the same columns for different '
                    "customers. Every party trains on its own rows; the aggregator receives only the sum of the "
                    "parties' changes, masked so that no single party's change can be read (secure "
                    "aggregation), and every party ends with the same model. Rows never leave their party.</div>"
                ),
                labelled("Model", self.kind),
                row(
                    [
                        labelled("Your dataset", self.dataset),
                        labelled("Aggregator (brings no data)", self.server),
                    ],
                    top=True,
                ),
                labelled("Parties that train", self.clients_box),
                widgets.HTML('<div class="fb-subsection">Training settings</div>'),
                self.settings_box,
                self.train_button,
                self.result,
                self.charts,
            ]
        )
        self.box.add_class("fb-horizontal")
        self.box.layout.display = "none"

    def _show_settings(self) -> None:
        if self.box.layout.display != "none":
            self.settings_box.children = self.parts[str(self.kind.value)]

    def hide(self) -> None:
        """Take the horizontal training off the page (a vertical project is chosen): its settings too, so the
        page holds one "More settings" at a time."""
        self.box.layout.display = "none"
        self.settings_box.children = ()

    def show_project(self, info: dict[str, Any]) -> None:
        """Offer a horizontal project's choices: our datasets of it, its data members and its aggregators."""
        self.info = info
        self.box.layout.display = None
        self._show_settings()
        datasets = info.get("datasets", {})
        party = self.app.workbench.party
        ours = [d["name"] for d in datasets.get(party, [])]
        self.dataset.options = ours
        self.dataset.value = ours[0] if ours else None
        bringing = [m for m in info.get("members", []) if datasets.get(m)]
        self.clients = {m: widgets.Checkbox(value=True, description=m, indent=False) for m in bringing}
        for member, box in self.clients.items():
            box.add_class(f"fb-horizontal-client-{member}")
            box.layout.width = "160px"
            box.disabled = member == party
        self.clients_box.children = tuple(self.clients.values())
        aggregators = [m for m in info.get("members", []) if not datasets.get(m)]
        self.server.options = aggregators
        self.server.value = aggregators[0] if aggregators else None
        self.result.value, self.charts.value = "", ""

    def roles(self) -> dict[str, list[str]]:
        """Who trains and who aggregates; FormError when fewer than three parties train."""
        chosen = [m for m, box in self.clients.items() if box.value]
        if len(chosen) < 3:
            raise FormError(
                "Secure aggregation needs at least three parties that train",
                {"": f"{len(chosen)} chosen; tick at least three"},
            )
        if not self.server.value:
            raise FormError("The project has no member without data to aggregate", {})
        return {"client": chosen, "server": [str(self.server.value)]}

    def pipeline(self) -> Pipeline:
        """Train the chosen model on our dataset, then score our rows with it."""
        kind = str(self.kind.value)
        try:
            params = self.forms[kind].validate().model_dump(mode="json", exclude_defaults=True)
        except FormError:
            self.app.message.problem("Please fix the highlighted training settings.")
            raise
        dataset = self.dataset.value
        if not dataset:
            raise FormError("Choose your dataset", {})
        pipeline = Pipeline(f"{kind} on {dataset}")
        pipeline.add("train", kind, inputs={"train": dataset}, **params)
        pipeline.add("score", "homo_score", inputs={"model": Pipeline.ref("train", "model"), "data": dataset})
        return pipeline

    def train(self, *, wait: bool = False) -> Run:
        """Start the training of the chosen parties; progress shows below and our result when it ends."""
        app = self.app
        app.message.clear()
        app.refuse(app.role_reason() or app.uses_reason(self.info, {"train", "score"}))
        roles = self.roles()
        started = (
            "Run {run} started: " + escape(str(self.kind.value)) + " with " + ", ".join(roles["client"]) + "."
        )
        return app.launch(self.pipeline(), self.train_button, "training", started, wait=wait, roles=roles)

    def show_run(self, info: RunInfo) -> None:
        """Show a horizontal run as our node holds it: our metrics, our loss per round, our scored rows."""
        if info.state != "succeeded":
            self.result.value = (
                f'<div class="fb-message">Run {escape(info.job_id[:8])} is {escape(info.state)}.</div>'
            )
            self.charts.value = ""
            return
        run = self.app.workbench.run(info.job_id)
        model = run.output("model", step="train").value()
        metrics = run.output("metrics", step="train").value()
        ours = metrics.get("train", {})
        parts = [f"{model['component']} of {len(model['features'])} features"]
        parts += [f"{name} on our rows {ours[name]:.3f}" for name in ("auc", "accuracy") if name in ours]
        parts.append(f"we trained in {metrics.get('rounds_taken_part', 0)} rounds")
        if "dp" in metrics:
            parts.append(
                f"privacy spent: epsilon {metrics['dp']['epsilon']:.2f} (delta {metrics['dp']['delta']:g})"
            )
        scores = run.output("scores", step="score").to_pandas()
        self.result.value = (
            f'<div class="fb-horizontal-summary">{escape("; ".join(parts))}.</div>'
            f'<div class="fb-subsection">Our scored rows ({len(scores):,})</div>' + table_html(scores.head(5))
        )
        losses = run.metrics.query("step == 'train' and name == 'loss'")
        self.charts.value = (
            chart(lambda: _loss_chart(losses), "our loss at each round", "fb-horizontal-loss")
            if len(losses)
            else ""
        )


def _loss_chart(losses: pd.DataFrame) -> Any:
    from fedbench.ui import plots

    return plots.loss_curve(losses, title="Our rows' loss under the global model, by round")


def train_component(info: RunInfo) -> str | None:
    """The horizontal model a run trained, or None for any other run."""
    return next((s.component for s in info.steps if s.component in HORIZONTAL_KINDS), None)
