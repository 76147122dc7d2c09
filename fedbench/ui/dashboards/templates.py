"""The pipeline templates a business user starts from: the `templates/pipelines/*.yaml` files of fedbench.

They are found next to the package or in the current directory, the way `fedbench dashboards` finds the
Voila template (`fedbench.cli.dashboards.pipeline_templates_dir`). A template's leading comment says what it
does; the modeling dashboard lists the templates with a `hetero_lr` step and changes only that step's params,
so every other step keeps its cache key and is reused when it ran before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedbench.cli.dashboards import pipeline_templates_dir
from fedbench.errors import FedbenchError
from fedbench.pipeline import Pipeline, Step

__all__ = ["TRAIN_COMPONENT", "PipelineTemplate", "load_templates", "modeling_templates"]

TRAIN_COMPONENT = "hetero_lr"


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
        """The step that trains the model (component `hetero_lr`)."""
        return self.step_of(TRAIN_COMPONENT)

    def datasets(self) -> list[str]:
        """The dataset names the template's steps read (the same name on every party)."""
        names: list[str] = []
        for step in self.pipeline.steps:
            for ref in step.inputs.values():
                dataset = ref.get("dataset")
                if isinstance(dataset, str) and dataset not in names:
                    names.append(dataset)
        return names

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


def modeling_templates(folder: Path | None = None) -> list[PipelineTemplate]:
    """The templates that train a model (those with a `hetero_lr` step)."""
    return [t for t in load_templates(folder) if t.train_step is not None]
