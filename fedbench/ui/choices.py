"""What a form's input pickers offer and pick first: the project's earlier results, each once, newest first.

A table's rows are *aligned* when they are in the same order on every party: a PSI's matched rows, or a
split, preprocess, select, sample or binning of aligned rows. Training on a raw dataset always fails ("rows
are not aligned"), so a step that reads rows defaults to the latest aligned result (a PSI component itself
reads the raw dataset). Alignment is read from the runs our node lists: each step's key, component, state
and inputs (`runs.list`), and the artifacts our node holds (`artifacts.list`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fedbench.client.records import DONE, RunInfo, StepInfo
from fedbench.components.spec import Component, Port

__all__ = ["ALIGNING", "KEEPS_ALIGNMENT", "ROW_PORTS", "Earlier", "default_choices", "earlier_results"]

ALIGNING: dict[str, tuple[str, ...]] = {"psi": ("data",)}
"""Outputs whose rows are aligned across the parties whatever their input."""
KEEPS_ALIGNMENT: dict[str, tuple[str, ...]] = {
    "split": ("train", "validation", "test"),
    "preprocess": ("data",),
    "select": ("data",),
    "sample": ("data",),
    "binning": ("data",),
}
"""Outputs whose rows are aligned when the step's `data` input was (same rows, same order, on every party)."""
ROW_PORTS = ("data", "train", "validation", "test")
"""Input names that take a table of rows (which should be aligned); other table inputs take a named result
(e.g. evaluate's `scores`)."""
_WORDS = {
    "data": "rows",
    "train": "training rows",
    "validation": "validation rows",
    "test": "test rows",
    "scores": "scores",
    "validation_scores": "validation scores",
}


def _when(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%d %b %H:%M")
    except ValueError:
        return stamp


@dataclass(frozen=True)
class Earlier:
    """One result our node holds: which run and step made it, and whether it can feed another step as it is."""

    artifact_id: str
    kind: str
    output: str
    step: str
    component: str
    job_id: str
    created_at: str
    aligned: bool
    """Its rows are in the same order on every party."""
    usable: bool
    """A succeeded run made (or reused) it, so every party holds its part."""

    @property
    def key(self) -> str:
        """The cache key of the step that made it."""
        return self.artifact_id.partition(":")[0]

    def label(self) -> str:
        """What the picker shows: which rows (or model), of which run and step, made when."""
        if self.component == "psi" and self.output == "data":
            words = "matched rows"
        else:
            words = _WORDS.get(self.output, self.output.replace("_", " "))
        if not self.job_id:
            return f"{words[:1].upper()}{words[1:]} (imported, {_when(self.created_at)})"
        return f"{words[:1].upper()}{words[1:]} of run {self.job_id[:8]} (step {self.step}, {_when(self.created_at)})"


def earlier_results(artifacts: Iterable[dict[str, Any]], runs: Iterable[RunInfo]) -> list[Earlier]:
    """The results our node holds (`artifacts.list`), each once, newest first, with where they came from.

    `runs` are the project's runs (`Run.record` of `project.list_runs()`): their steps' keys, components,
    states and inputs tell which run and step made a result, whether a succeeded run holds it and whether it
    is aligned.
    """
    runs = list(runs)
    steps: dict[str, StepInfo] = {}
    made_by: dict[str, StepInfo] = {}
    usable: set[str] = set()
    for info in runs:
        for step in info.steps:
            steps.setdefault(step.key, step)
            if step.state in DONE and info.state == "succeeded":
                usable.add(step.key)
    for item in artifacts:
        key = str(item["id"]).partition(":")[0]
        for info in runs:
            if info.job_id == item.get("job_id"):
                made = next((s for s in info.steps if s.key == key), None)
                if made is not None:
                    made_by[key] = made
    memo: dict[str, bool] = {}

    def aligned(artifact_id: str, depth: int = 0) -> bool:
        if artifact_id not in memo:
            key, _, output = artifact_id.partition(":")
            step = steps.get(key)
            result = False
            if step is not None and depth < 64:
                if output in ALIGNING.get(step.component, ()):
                    result = True
                elif output in KEEPS_ALIGNMENT.get(step.component, ()):
                    source = step.inputs.get("data") or {}
                    result = "artifact" in source and aligned(str(source["artifact"]), depth + 1)
            memo[artifact_id] = result
        return memo[artifact_id]

    found: dict[str, Earlier] = {}
    for item in sorted(artifacts, key=lambda a: str(a.get("created_at", "")), reverse=True):
        artifact_id = str(item["id"])
        if artifact_id in found:
            continue
        key = artifact_id.partition(":")[0]
        maker = made_by.get(key) or steps.get(key)
        found[artifact_id] = Earlier(
            artifact_id=artifact_id,
            kind=str(item.get("kind", "")),
            output=str(item.get("name", "")),
            step=(maker.step if maker else "") or str(item.get("step") or "earlier step"),
            component=(maker.component if maker else "") or str(item.get("component") or ""),
            job_id=str(item.get("job_id") or ""),
            created_at=str(item.get("created_at", "")),
            aligned=aligned(artifact_id),
            usable=key in usable,
        )
    return list(found.values())


def default_choices(
    component: Component, results: Sequence[Earlier], datasets: Sequence[str]
) -> dict[str, str | None]:
    """What each input of `component` starts with, as its picker's value (`artifact:<id>`, `dataset:<name>`).

    None: nothing (an optional input left empty, or no data at all).

    A PSI reads the raw dataset. A step reading rows takes the latest aligned result (its sibling output of
    the same name when it has one: a split's `train` for `train`); a required input that names a result
    (evaluate's `scores`) takes the newest of that name; an optional input takes a sibling of a result
    already chosen, or nothing. Only results of succeeded runs are picked.
    """
    usable = [r for r in results if r.usable]
    latest = next((r for r in usable if r.kind == "table" and r.aligned), None)
    chosen: dict[str, str | None] = {}
    for port in sorted(component.inputs, key=lambda p: p.optional):
        chosen[port.name] = _default(component, port, usable, latest, datasets, chosen)
    return {port.name: _picker_value(chosen[port.name]) for port in component.inputs}


def _picker_value(choice: str | None) -> str | None:
    """An artifact id as a picker's value (`artifact:<id>`); a dataset (`dataset:<name>`) or None as it is."""
    if choice is None or choice.startswith("dataset:"):
        return choice
    return f"artifact:{choice}"


def _default(
    component: Component,
    port: Port,
    usable: Sequence[Earlier],
    latest: Earlier | None,
    datasets: Sequence[str],
    chosen: dict[str, str | None],
) -> str | None:
    by_id = {r.artifact_id: r for r in usable}
    siblings = [f"{by_id[c].key}:{port.name}" for c in chosen.values() if c in by_id]
    if latest is not None:
        siblings.insert(0, f"{latest.key}:{port.name}")
    sibling = next((s for s in siblings if s in by_id and by_id[s].kind == port.kind), None)
    if port.kind == "table" and component.use == "psi":
        return f"dataset:{datasets[0]}" if datasets else None
    if sibling is not None:
        return sibling
    if port.optional:
        return None
    if port.kind == "table" and port.name in ROW_PORTS:
        if latest is not None:
            return latest.artifact_id
        return f"dataset:{datasets[0]}" if datasets else None
    named = next((r for r in usable if r.kind == port.kind and r.output == port.name), None)
    if named is not None:
        return named.artifact_id
    return next((r.artifact_id for r in usable if r.kind == port.kind), None)
