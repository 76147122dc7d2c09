"""What the modeling and scoring dashboards read of a project's runs, said in a business user's words.

A run is read as its typed record (`Run.record`, a `RunInfo`): our party's steps, each with its component,
state and cache key; a step's outputs are artifacts `<key>:<output>`. Here: finding steps by component, the
sentence saying which steps were reused and which ran (`reuse_sentence`), the models trained in a project
(`trained_models`: each `TRAINERS` step's model, logistic regression or boosted trees; and which one scoring
offers first: `default_model`), whether a run succeeded with warnings (`run_warnings`, `run_state_words`),
the tables whose rows are aligned across the parties (`aligned_tables`), the model a scoring run used
(`model_of_run`), and `Outputs`, which reads each artifact once (an artifact id names content that never
changes, so a page reloading its data reads nothing twice).

A run as listed names each step's inputs as the artifacts they are, so a scoring step's `model` input says
which model it used; the scoring dashboard also names its runs after the model (`SCORING_NAME`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from fedbench.client.records import DONE, RunInfo, StepInfo
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.ui.dashboards.common import format_when

__all__ = [
    "ALIGNED_OUTPUTS",
    "DONE",
    "SCORING_NAME",
    "TRAINERS",
    "ModelEntry",
    "Outputs",
    "TableEntry",
    "aligned_tables",
    "default_model",
    "join_words",
    "model_kind",
    "model_of_run",
    "reuse_sentence",
    "run_state_words",
    "run_warnings",
    "started_key",
    "started_text",
    "step_label",
    "step_of",
    "trained_models",
    "validation_auc",
]

_STEP_LABELS = {"psi": "PSI"}
TRAINERS = {"hetero_lr": "logistic regression", "hetero_secureboost": "boosted trees"}
"""The components whose `model` output scoring can use, and what each model is in a business user's words."""
_NEVER = datetime.min.replace(tzinfo=UTC)


def step_of(info: RunInfo, component: str) -> StepInfo | None:
    """The first of a run's steps that runs `component` (None when it has none)."""
    return info.step_of(component)


def started_key(info: RunInfo) -> datetime:
    """When a run was created, to sort runs by (a run without a time sorts first)."""
    return info.created_at or _NEVER


def started_text(info: RunInfo) -> str:
    """When a run was created as ISO text ("" when not known), as the entries listing it keep it."""
    return info.created_at.isoformat() if info.created_at else ""


def step_label(name: str) -> str:
    """A step's name as a sentence shows it ("PSI" for psi)."""
    return _STEP_LABELS.get(name, name)


def join_words(words: Sequence[str]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def run_warnings(info: RunInfo) -> list[str]:
    """What a run's steps (on our party) warned about their results, each once."""
    return list(info.warnings)


def run_state_words(info: RunInfo) -> str:
    """A run's state for a list of runs: "succeeded with warnings" when its steps warned."""
    state = info.state
    return f"⚠ {state} with warnings" if state == "succeeded" and info.warnings else state


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def reuse_sentence(info: RunInfo) -> str:
    """Which of a finished run's steps were reused from an earlier run and which ran, in one sentence."""
    steps = info.steps
    reused = [step_label(s.step) for s in steps if s.state == "reused"]
    ran = [step_label(s.step) for s in steps if s.state == "succeeded"]
    if not steps or (not reused and not ran):
        return ""
    if not reused:
        return f"Every step ran: {join_words(ran)}." if len(ran) > 1 else f"{_capital(ran[0])} ran."
    verb = "was" if len(reused) == 1 else "were"
    if not ran:
        return (
            f"Nothing ran again: {join_words(reused)} {verb} reused from an earlier run with the same data "
            "and settings."
        )
    return (
        f"{_capital(join_words(reused))} {verb} reused from an earlier run (same data and settings); "
        f"{join_words(ran)} ran again."
    )


class Outputs:
    """Run outputs read through our node, each once: an artifact's id names content that never changes.

    Tables of more than `KEEP_ROWS` rows are read again when asked for, so memory stays bounded.
    """

    KEEP_ROWS = 100_000

    def __init__(self, workbench: Workbench) -> None:
        self._workbench = workbench
        self._values: dict[str, Any] = {}

    def value(self, artifact_id: str, kind: str) -> Any:
        """The stored value (a DataFrame for a table); the node's error when we do not hold it."""
        if artifact_id in self._values:
            return self._values[artifact_id]
        value = self._workbench.output(artifact_id, kind).value()
        if not isinstance(value, pd.DataFrame) or len(value) <= self.KEEP_ROWS:
            self._values[artifact_id] = value
        return value

    def maybe(self, artifact_id: str, kind: str) -> Any:
        """The stored value, or None when our party does not hold it (e.g. the guest's metrics, on the host)."""
        try:
            return self.value(artifact_id, kind)
        except FedbenchError:
            return None

    def step_output(self, info: RunInfo, component: str, output: str, kind: str) -> Any:
        """An output of a run's first step running `component`, or None (no such step, not done, not ours)."""
        step = info.step_of(component)
        if step is None or not step.done:
            return None
        return self.maybe(f"{step.key}:{output}", kind)


def model_kind(model: Any) -> str:
    """What a stored model part is, in words ("logistic regression", "boosted trees"; "" when unknown)."""
    return TRAINERS.get(model.get("component", ""), "") if isinstance(model, dict) else ""


@dataclass(frozen=True)
class ModelEntry:
    """One model a project holds: a training step's `model` output (`TRAINERS`), or a model imported from a
    file."""

    artifact_id: str
    job_id: str
    step: str
    created_at: str
    run_name: str = ""
    validation_auc: float | None = None
    imported: str = ""
    """The name it was imported under, for an imported model."""
    warnings: tuple[str, ...] = ()
    """What the training warned about the model (it succeeded, but may be weak or under-trained)."""
    kind: str = ""
    """What the model is: "logistic regression" or "boosted trees" (`TRAINERS`); "" when not known."""

    @property
    def trees(self) -> bool:
        """Whether this is a boosted-trees model (no scorecard points: those are for logistic regression)."""
        return self.kind == TRAINERS["hetero_secureboost"]

    @property
    def key(self) -> str:
        """The part of the artifact id before the output name (the training step's cache key)."""
        return self.artifact_id.split(":", 1)[0]

    def label(self) -> str:
        """A friendly name: run, step, when, what kind of model, and the validation AUC when known."""
        if self.imported:
            kind = f" · {self.kind}" if self.kind else ""
            return f"imported model {self.imported} · {format_when(self.created_at)}{kind}"
        parts = [f"run {self.job_id[:8]}", self.step, format_when(self.created_at)]
        if self.run_name:
            parts.insert(1, self.run_name)
        if self.kind:
            parts.append(self.kind)
        if self.validation_auc is not None:
            parts.append(f"AUC {self.validation_auc:.3f}")
        if self.warnings:
            parts.append("⚠ trained with warnings")
        return " · ".join(parts)


def validation_auc(outputs: Outputs, info: RunInfo, trained: StepInfo | None = None) -> float | None:
    """The AUC of a run's `evaluate` step on validation rows (training rows without them); None if unknown.

    With `trained`, the `evaluate` step that read that step's scores (the run's first one if none did)."""
    evaluate = next(
        (
            s
            for s in info.steps
            if s.component == "evaluate"
            and trained is not None
            and any(_made_by(ref, trained) for ref in s.inputs.values())
        ),
        info.step_of("evaluate"),
    )
    if evaluate is None or not evaluate.done:
        return None
    metrics = outputs.maybe(f"{evaluate.key}:metrics", "metrics")
    if not isinstance(metrics, dict):
        return None
    part = metrics.get("validation") or metrics.get("train") or {}
    auc = part.get("auc") if isinstance(part, dict) else None
    return None if auc is None else float(auc)


def trained_models(
    runs: Iterable[RunInfo],
    outputs: Outputs,
    artifacts: pd.DataFrame | None = None,
    *,
    with_auc: bool = True,
) -> list[ModelEntry]:
    """The models of a project, newest first: each succeeded training step's model (`TRAINERS`; once, from the
    run that made it or first used it), then the models imported from files (`artifacts`:
    `project.artifacts()`, each read once to tell its kind)."""
    found: dict[str, ModelEntry] = {}
    runs = list(runs)
    warned: dict[str, tuple[str, ...]] = {}
    for info in runs:
        for each in info.steps:
            if each.component in TRAINERS and each.warnings:
                warned[each.key] = each.warnings
    for info in sorted(runs, key=started_key):
        if info.state != "succeeded":
            continue
        for step in info.steps:
            artifact_id = f"{step.key}:model"
            if step.component not in TRAINERS or not step.done or artifact_id in found:
                continue
            found[artifact_id] = ModelEntry(
                artifact_id,
                info.job_id,
                step.step,
                started_text(info),
                info.name,
                validation_auc(outputs, info, step) if with_auc else None,
                warnings=warned.get(step.key, ()),
                kind=TRAINERS[step.component],
            )
    entries = sorted(found.values(), key=lambda e: e.created_at, reverse=True)
    if artifacts is not None and not artifacts.empty and "kind" in artifacts.columns:
        imported = artifacts[(artifacts["kind"] == "model") & artifacts["id"].str.startswith("import-")]
        for row in imported.iloc[::-1].itertuples():
            entries.append(
                ModelEntry(
                    str(row.id),
                    str(row.job_id or ""),
                    "",
                    str(row.created_at),
                    imported=str(row.name),
                    kind=model_kind(outputs.maybe(str(row.id), "model")),
                )
            )
    return entries


def default_model(models: Sequence[ModelEntry]) -> ModelEntry | None:
    """The model scoring offers first: the newest trained without warnings (a failed training is never
    listed); None when every model has warnings, so that using one is a deliberate choice."""
    return next((m for m in models if not m.warnings), None)


ALIGNED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "psi": ("data",),
    "split": ("train", "validation", "test"),
    "preprocess": ("data",),
    "select": ("data",),
}
"""Table outputs whose rows are in the same order on every party (what `score` can take as they are)."""
_OUTPUT_WORDS = {
    "data": "rows",
    "train": "training rows",
    "validation": "validation rows",
    "test": "test rows",
}
SCORING_NAME = "scoring with model "
"""How the scoring dashboard names its runs: followed by the start of the model's id, so every party's page
can say which model a scoring run used."""


@dataclass(frozen=True)
class TableEntry:
    """An earlier step's table output whose rows are aligned across the parties."""

    artifact_id: str
    job_id: str
    step: str
    component: str
    output: str
    created_at: str

    def label(self) -> str:
        """A friendly name: which rows, of which run and step, when."""
        words = "matched rows" if self.component == "psi" else _OUTPUT_WORDS.get(self.output, self.output)
        return f"{words} of run {self.job_id[:8]} ({self.step}, {format_when(self.created_at)})"


def aligned_tables(runs: Iterable[RunInfo], held: set[str]) -> list[TableEntry]:
    """The aligned table outputs of a project's succeeded runs that our party holds (`held`: artifact ids),
    newest first, each once."""
    found: dict[str, TableEntry] = {}
    for info in sorted(runs, key=started_key, reverse=True):
        if info.state != "succeeded":
            continue
        for step in info.steps:
            for output in ALIGNED_OUTPUTS.get(step.component, ()):
                artifact_id = f"{step.key}:{output}"
                if step.done and artifact_id in held and artifact_id not in found:
                    found[artifact_id] = TableEntry(
                        artifact_id, info.job_id, step.step, step.component, output, started_text(info)
                    )
    return list(found.values())


def _made_by(ref: Any, step: StepInfo) -> bool:
    """Whether a step input (`{"artifact": "<key>:<output>"}`, as runs list them) is an output of `step`."""
    artifact = ref.get("artifact") if isinstance(ref, dict) else None
    return isinstance(artifact, str) and artifact.split(":", 1)[0] == step.key


def model_of_run(info: RunInfo, models: Sequence[ModelEntry]) -> tuple[ModelEntry | None, str]:
    """The model a scoring run used, and how the page says it: the model trained in the same run, or the one
    its `model` input or its name gives (runs the scoring dashboard started); (None, why) when the run does
    not record it."""
    score = info.step_of("score")
    ref = score.inputs.get("model") if score is not None else None
    trainers = [s for s in info.steps if s.component in TRAINERS] if score is not None else []
    train = next((s for s in trainers if _made_by(ref, s)), trainers[0] if trainers and not ref else None)
    if train is not None:
        artifact_id = f"{train.key}:model"
        entry = next((m for m in models if m.artifact_id == artifact_id), None)
        return entry, f"trained in this run ({train.step})"
    artifact = ref.get("artifact") if isinstance(ref, dict) else None
    if isinstance(artifact, str):
        entry = next((m for m in models if m.artifact_id == artifact), None)
        if entry is not None:
            return entry, entry.label()
    name = info.name
    if name.startswith(SCORING_NAME):
        start = name[len(SCORING_NAME) :].strip()
        entry = next((m for m in models if start and m.key.startswith(start)), None)
        if entry is not None:
            return entry, entry.label()
        return None, f"model {start[:8]} (no longer listed)"
    return None, "not recorded (a run started from a notebook)"
