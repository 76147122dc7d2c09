"""The pipeline templates a business user starts from: the `templates/pipelines/*.yaml` files of fedbench.

They are found next to the package or in the current directory, the way `fedbench dashboards` finds the
Voila template (`fedbench.cli.dashboards.pipeline_templates_dir`). A template's leading comment says what it
does. A template that trains a model has one step of a `TRAIN_COMPONENTS` component (its model kind: logistic
regression or boosted trees). A template is a starting point: `build` puts the datasets each party chose in
place of the template's dataset name, the label and ID columns of the chosen data in every step that reads
them, leaves out the optional steps the user turned off (preprocessing; binning and selection) and takes the
training settings of the form.
Unchanged choices give unchanged steps, so their cache keys match and they are reused when they ran before.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedbench import components
from fedbench.cli.dashboards import pipeline_templates_dir
from fedbench.errors import FedbenchError
from fedbench.pipeline import InputRef, Pipeline, PipelineError, Step
from fedbench.ui.dashboards.model_runs import TRAINERS

__all__ = [
    "MODEL_KINDS",
    "OPTIONAL_STEPS",
    "TRAIN_COMPONENTS",
    "PipelineTemplate",
    "load_templates",
    "modeling_templates",
]

MODEL_KINDS: dict[str, str] = {component: words.capitalize() for component, words in TRAINERS.items()}
"""The components that train a model (`model_runs.TRAINERS`), each with the name a business user knows its
model by ("Logistic regression", "Boosted trees")."""
TRAIN_COMPONENTS: tuple[str, ...] = tuple(MODEL_KINDS)
OPTIONAL_STEPS: dict[str, tuple[str, ...]] = {
    "preprocess": ("preprocess",),
    "selection": ("binning", "select"),
}
"""The groups of steps a user may leave out, by the components of their steps."""
_OWN_LABEL = {"evaluate"}
"""Components whose `label` param names a column of the scores table, not the label of the data."""


@dataclass(frozen=True)
class PipelineTemplate:
    """One template file: its pipeline and the first sentence of its leading comment."""

    name: str
    path: Path
    summary: str
    pipeline: Pipeline

    def step_of(self, component: str) -> Step | None:
        """The first step running `component` (None when the template has none)."""
        return next((s for s in self.pipeline.steps if s.component == component), None)

    @property
    def train_step(self) -> Step | None:
        """The step that trains the model (the first of a `TRAIN_COMPONENTS` component)."""
        return next((s for s in self.pipeline.steps if s.component in TRAIN_COMPONENTS), None)

    @property
    def model_kind(self) -> str | None:
        """The component that trains the template's model ("hetero_lr", "hetero_secureboost"), or None."""
        step = self.train_step
        return step.component if step is not None else None

    def datasets(self) -> list[str]:
        """The dataset names the template's steps read (the same name on every party)."""
        names: list[str] = []
        for step in self.pipeline.steps:
            for ref in step.inputs.values():
                dataset = ref.get("dataset")
                if isinstance(dataset, str) and dataset not in names:
                    names.append(dataset)
        return names

    def optional_groups(self) -> list[str]:
        """The groups of `OPTIONAL_STEPS` this template has steps of (the user may turn them off)."""
        return [
            g for g, comps in OPTIONAL_STEPS.items() if any(s.component in comps for s in self.pipeline.steps)
        ]

    def build(
        self,
        datasets: Mapping[str, str],
        *,
        label: str | None = None,
        id_column: str | None = None,
        params: Mapping[str, dict[str, Any]] | None = None,
        without: Collection[str] = (),
    ) -> Pipeline:
        """The template made for chosen data: a pipeline the project can run.

        `datasets` maps each party to its chosen dataset, in place of every dataset the template names.
        `label` and `id_column` (the chosen data's, from the registry) go into every step that reads them;
        `params` replaces the params of the steps it names (e.g. the training settings of the form); the steps
        of the `OPTIONAL_STEPS` groups in `without` are left out, their consumers reading what they read.
        """
        if not datasets:
            raise PipelineError("choose a dataset for each party before building the pipeline")
        unknown = set(without) - set(OPTIONAL_STEPS)
        if unknown:
            raise PipelineError(f"only {sorted(OPTIONAL_STEPS)} can be left out, not {sorted(unknown)}")
        dropped = {
            s.name for s in self.pipeline.steps if any(s.component in OPTIONAL_STEPS[g] for g in without)
        }
        by_name = {s.name: s for s in self.pipeline.steps}
        steps = []
        for step in self.pipeline.steps:
            if step.name in dropped:
                continue
            values = dict(step.params)
            fields = components.get(step.component).params.model_fields
            if label is not None and "label" in fields and step.component not in _OWN_LABEL:
                values["label"] = label
            if id_column is not None and "id_column" in fields:
                values["id_column"] = id_column
            if params is not None and step.name in params:
                values = dict(params[step.name])
            inputs = {
                port: _rewired(ref, by_name, dropped, step.name, dict(datasets))
                for port, ref in step.inputs.items()
            }
            steps.append(Step(step.name, step.component, values, inputs))
        return Pipeline(self.pipeline.name, steps)

    def with_params(self, step: str, params: dict[str, Any]) -> Pipeline:
        """A copy of the pipeline where step `step` has `params` instead of the template's."""
        data = self.pipeline.to_dict()
        for entry in data["steps"]:
            if entry["name"] == step:
                entry["params"] = dict(params)
        return Pipeline.from_dict(data)

    def steps_text(self) -> str:
        """The steps in order, as "psi → split → train → evaluate → score"."""
        return " → ".join(s.name for s in self.pipeline.steps)


def _rewired(
    ref: InputRef, steps: Mapping[str, Step], dropped: Collection[str], reader: str, datasets: dict[str, str]
) -> InputRef:
    """An input of a kept step: a dataset becomes the chosen one per party; a left-out step's table becomes
    what that step read (a preprocessing or selection step passes its table on)."""
    if "dataset" in ref:
        return {"dataset": dict(datasets)}
    while "step" in ref and ref["step"] in dropped:
        gone = steps[ref["step"]]
        if ref.get("output") != "data" or "data" not in gone.inputs:
            raise PipelineError(
                f"step {reader!r} needs the {ref.get('output')!r} of step {gone.name!r}, which was left out: "
                "keep that step"
            )
        ref = gone.inputs["data"]
    if "dataset" in ref:
        return {"dataset": dict(datasets)}
    return dict(ref)


def _summary(text: str) -> str:
    """The first sentence of the comment lines at the top of a YAML file."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    words = " ".join(lines)
    first = re.split(r"(?<=\.)\s+", words, maxsplit=1)[0] if words else ""
    return first.strip()


def load_templates(folder: Path | None = None) -> list[PipelineTemplate]:
    """Every readable template of `folder` (default: fedbench's `templates/pipelines/`), by file name.

    A file that is not a valid pipeline is left out rather than breaking the page that lists them.
    """
    source = folder or pipeline_templates_dir()
    templates = []
    for path in sorted(source.glob("*.yaml")):
        try:
            text = path.read_text()
            pipeline = Pipeline.from_yaml(text)
        except (OSError, FedbenchError):
            continue
        templates.append(PipelineTemplate(path.stem, path, _summary(text), pipeline))
    return templates


def modeling_templates(folder: Path | None = None, *, kind: str | None = None) -> list[PipelineTemplate]:
    """The templates that train a model (those with a step of a `TRAIN_COMPONENTS` component); with `kind`,
    only those training that component's model."""
    return [t for t in load_templates(folder) if t.train_step is not None and kind in (None, t.model_kind)]
