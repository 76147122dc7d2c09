"""`JobSpec`: a job as its parties agree on it (steps with cache keys, roles, uses, PSI sizes), a typed record.

The initiator's node computes it (`plan.job_spec`), sends it as a plain mapping (the wire form, also what the
`job` table stores) and every member recomputes it. A peer's mapping is untrusted input: `JobSpec.from_wire`
checks its shape once and refuses a malformed one with a `Refused` that names the field, so the rest of the
job service reads typed fields, never string keys. `to_wire` gives the mapping back, unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedbench.errors import FedbenchError, Refused
from fedbench.pipeline import InputRef, Step, as_ref

__all__ = ["JobSpec", "JobStep"]

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STEP_KEYS = {"name", "component", "params", "inputs", "key"}


@dataclass(frozen=True)
class JobStep:
    """One step of a job: a pipeline step (component, params, inputs) with the cache key every party agreed on."""

    name: str
    component: str
    params: Mapping[str, Any]
    inputs: Mapping[str, InputRef]
    key: str

    def to_wire(self) -> dict[str, Any]:
        """The step as plain data, as the pipeline writes it plus its `key`."""
        return {**self.as_step().to_dict(), "key": self.key}

    def as_step(self) -> Step:
        """The pipeline step (without its key), to validate and key it again."""
        return Step(
            self.name, self.component, dict(self.params), {k: dict(v) for k, v in self.inputs.items()}
        )

    @classmethod
    def from_wire(cls, data: Any, where: str) -> JobStep:
        """A step from plain data; `where` names it in a refusal ("step #2")."""
        if not isinstance(data, Mapping):
            raise _Malformed(
                f"{where} is {_kind(data)}, not a mapping of name, component, params, inputs, key"
            )
        name = data.get("name")
        if not isinstance(name, str):
            raise _Malformed(f"{where} has no name")
        where = f"step {name[:64]!r}"
        unknown = sorted(str(k) for k in set(data) - _STEP_KEYS)
        if unknown:
            raise _Malformed(f"{where} has unknown keys {unknown}")
        for wanted in ("component", "key"):
            if not isinstance(data.get(wanted), str):
                raise _Malformed(f"{where} has no {wanted} (a text), it has {_kind(data.get(wanted))}")
        params, inputs = data.get("params") or {}, data.get("inputs") or {}
        if not isinstance(params, Mapping) or not isinstance(inputs, Mapping):
            raise _Malformed(f"{where}: params and inputs must be mappings")
        if not all(isinstance(k, str) for k in [*params, *inputs]):
            raise _Malformed(f"{where}: the names of params and inputs must be texts")
        return cls(
            name=name,
            component=data["component"],
            params=dict(params),
            inputs={k: _checked_ref(as_ref(v), f"input {k[:64]!r} of {where}") for k, v in inputs.items()},
            key=data["key"],
        )


@dataclass(frozen=True)
class JobSpec:
    """A job: who plays which role, its steps in run order, and what admission decides on.

    `uses`, `datasets` (per party), `psi_rows` (per party), `psi_steps` and `psi_keys` (the steps that run a
    PSI, each one a PSI run against the project's quota unless reused) are computed by each node from the
    project as it holds it: a peer's values for them are never trusted (`plan.Planner.plan_job`).
    """

    job_id: str
    project: str
    name: str
    roles: Mapping[str, tuple[str, ...]]
    force: bool
    steps: tuple[JobStep, ...]
    uses: tuple[str, ...] = ()
    datasets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    psi_rows: Mapping[str, int] = field(default_factory=dict)
    psi_steps: int = 0
    psi_keys: tuple[str, ...] = ()

    @property
    def members(self) -> list[str]:
        """Every party that plays a role in the job, sorted."""
        return sorted({p for parties in self.roles.values() for p in parties})

    @property
    def role_lists(self) -> dict[str, list[str]]:
        """The roles as plain lists, {role: [party, ...]} (what pipelines and tasks take)."""
        return {role: list(parties) for role, parties in self.roles.items()}

    def step(self, name: str) -> JobStep:
        """The step named `name` (a `KeyError` is a bug: names come from the spec itself)."""
        return next(s for s in self.steps if s.name == name)

    def to_wire(self) -> dict[str, Any]:
        """The job as plain data: what peers receive and the `job` table stores (the format never changes)."""
        return {
            "job_id": self.job_id,
            "project": self.project,
            "name": self.name,
            "roles": self.role_lists,
            "force": self.force,
            "uses": list(self.uses),
            "datasets": {p: list(names) for p, names in self.datasets.items()},
            "psi_rows": dict(self.psi_rows),
            "psi_steps": self.psi_steps,
            "psi_keys": list(self.psi_keys),
            "steps": [s.to_wire() for s in self.steps],
        }

    @classmethod
    def from_wire(cls, data: Any, *, sender: str | None = None) -> JobSpec:
        """The job from plain data, its shape checked; a malformed one is `Refused` naming the field at fault.

        `sender` is the peer it came from, for the refusal. Fields a node recomputes itself (`uses`, datasets,
        PSI sizes) may be absent: they default to empty.
        """
        try:
            return cls._parse(data)
        except (_Malformed, FedbenchError) as exc:
            origin = f" from {sender}" if sender else ""
            raise Refused(f"malformed job spec{origin}: {exc}") from None

    @classmethod
    def _parse(cls, data: Any) -> JobSpec:
        if not isinstance(data, Mapping):
            raise _Malformed(
                f"a job's spec is a mapping {{job_id, name, roles, force, steps}}, not {_kind(data)}"
            )
        for wanted in ("job_id", "roles", "steps"):
            if wanted not in data:
                raise _Malformed(f"it has no {wanted!r}")
        job_id = data["job_id"]
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise _Malformed("a job id is 1 to 64 letters, digits, '_' or '-'")
        roles = data["roles"]
        if not isinstance(roles, Mapping) or not all(
            isinstance(r, str) and isinstance(ps, list) and all(isinstance(p, str) for p in ps)
            for r, ps in roles.items()
        ):
            raise _Malformed("a job's roles are {role: [party, ...]}")
        steps = data["steps"]
        if not isinstance(steps, list):
            raise _Malformed(f"its steps are a list, not {_kind(steps)}")
        return cls(
            job_id=job_id,
            project=str(data.get("project", "")),
            name=str(data.get("name", "pipeline")),
            roles={r: tuple(ps) for r, ps in roles.items()},
            force=bool(data.get("force")),
            steps=tuple(JobStep.from_wire(s, f"step #{i + 1}") for i, s in enumerate(steps)),
            uses=tuple(_texts(data.get("uses", []), "its uses")),
            datasets={
                str(p): tuple(_texts(names, f"the datasets of party {str(p)[:64]!r}"))
                for p, names in _mapping(data.get("datasets", {}), "its datasets").items()
            },
            psi_rows={
                str(p): _count(n, f"the PSI rows of party {str(p)[:64]!r}")
                for p, n in _mapping(data.get("psi_rows", {}), "its PSI rows").items()
            },
            psi_steps=_count(data.get("psi_steps", 0), "its number of PSI steps"),
            psi_keys=tuple(_texts(data.get("psi_keys", []), "its PSI step keys")),
        )


class _Malformed(Exception):
    """A part of a wire spec has the wrong shape (turned into `Refused` by `JobSpec.from_wire`)."""


def _checked_ref(ref: InputRef, where: str) -> InputRef:
    """An input reference of the right shape: a dataset name (or {party: name}), a step's output, an artifact."""
    if "dataset" in ref:
        named = ref["dataset"]
        if isinstance(named, str) or (
            isinstance(named, Mapping) and all(isinstance(v, str) for v in [*named, *named.values()])
        ):
            return ref
        raise _Malformed(f"{where} names its dataset with {_kind(named)}, not a name or {{party: name}}")
    if "step" in ref:
        if isinstance(ref["step"], str) and isinstance(ref.get("output"), str):
            return ref
        raise _Malformed(f"{where} refers to a step's output without the step's and the output's names")
    if isinstance(ref.get("artifact"), str):
        return ref
    raise _Malformed(f"{where} names its artifact with {_kind(ref.get('artifact'))}, not an artifact id")


def _texts(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Malformed(f"{what} must be a list of texts, not {_kind(value)}")
    return list(value)


def _mapping(value: Any, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _Malformed(f"{what} must be a mapping by party, not {_kind(value)}")
    return value


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"{what} must be a whole number of at least 0, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    """What a value is, in plain words (never its repr: it came from a peer)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a yes/no value"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return "a value of another kind"
