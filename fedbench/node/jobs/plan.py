"""Planning a job: its spec and cache keys (`job_spec`), who plays which role, reuse, and where inputs are.

Computed from the project as this node holds it (pinned datasets, terms) and the component registry, on the
initiator and again on every member (`Planner.plan_job`): admission decides on this, never on a description
sent along.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import col, select

from fedbench import components
from fedbench.errors import NotFound, Refused
from fedbench.node.jobs.context import JobContext
from fedbench.node.jobs.spec import JobSpec, JobStep
from fedbench.pipeline import InputRef, Pipeline, PipelineError, Step, step_keys
from fedbench.store import Artifact, Project, Task

__all__ = [
    "ARBITER",
    "CLIENT",
    "SERVER",
    "Planner",
    "default_roles",
    "horizontal_roles",
    "job_spec",
    "role_of",
    "step_inputs",
]

ARBITER = "arbiter"
CLIENT, SERVER = "client", "server"
"""The horizontal models' roles: the parties that train on their own rows, and the aggregator."""
DATALESS_ROLES = frozenset({ARBITER, SERVER})
"""Roles whose party brings no data (a dataset named once is not its input): the vertical models' arbiter and
the horizontal models' aggregator."""

Roles = Mapping[str, Sequence[str]]


def job_spec(
    project: Project,
    name: str,
    ordered: list[Step],
    roles: dict[str, list[str]],
    force: bool,
    job_id: str | None = None,
) -> JobSpec:
    """A validated pipeline as a job of `project`: its step keys, uses, datasets and PSI sizes per party.

    `psi_steps` counts the steps that use PSI and `psi_keys` names them: each one this node runs (rather
    than reuses) is one PSI run against the project's quota. A dataset input a party did not authorise for
    the project is refused.
    """
    pinned = {party: {d["name"]: d for d in items} for party, items in project.datasets.items()}
    parties = sorted({p for members in roles.values() for p in members})
    touched: dict[str, set[str]] = {p: set() for p in parties}
    psi_rows: dict[str, int] = {}

    def dataset_key(ref: dict[str, Any]) -> str:
        parts = []
        for party in parties:
            dataset = dataset_name(ref, party, roles)
            if dataset is None:
                continue
            entry = pinned.get(party, {}).get(dataset)
            if entry is None:
                raise Refused(
                    f"dataset {dataset!r} of {party!r} is not authorised for project {project.name!r}; "
                    f"authorised: {sorted(pinned.get(party, {}))}"
                )
            touched[party].add(dataset)
            psi_rows[party] = max(psi_rows.get(party, 0), int(entry["n_rows"]))
            parts.append(f"{party}={entry['fingerprint']}")
        return "dataset:" + "|".join(parts)

    keys = step_keys(ordered, roles, dataset_key, project.id)
    step_uses = [{components.get(s.component).use} for s in ordered]
    uses = sorted({u for found in step_uses for u in found})
    return JobSpec(
        job_id=job_id or uuid.uuid4().hex,
        project=project.id,
        name=name,
        roles={r: tuple(ps) for r, ps in roles.items()},
        force=force,
        uses=tuple(uses),
        datasets={p: tuple(sorted(d)) for p, d in touched.items() if d},
        psi_rows=psi_rows if "psi" in uses else {},
        psi_steps=sum("psi" in found for found in step_uses),
        psi_keys=tuple(keys[s.name] for s, found in zip(ordered, step_uses, strict=True) if "psi" in found),
        steps=tuple(
            JobStep(
                s.name, s.component, dict(s.params), {k: dict(v) for k, v in s.inputs.items()}, keys[s.name]
            )
            for s in ordered
        ),
    )


def step_inputs(spec: JobSpec) -> dict[str, dict[str, Any]]:
    """Each step's inputs with a pipeline step's output named as the artifact it is (`<key>:<output>`).

    What a run's listing shows of where a step's rows came from, so a form can tell which tables are aligned.
    """
    keys = {s.name: s.key for s in spec.steps}
    found: dict[str, dict[str, Any]] = {}
    for step in spec.steps:
        refs: dict[str, Any] = {}
        for port, ref in step.inputs.items():
            if "step" in ref and keys.get(ref["step"]):
                refs[port] = {"artifact": f"{keys[ref['step']]}:{ref.get('output')}"}
            else:
                refs[port] = dict(ref)
        found[step.name] = refs
    return found


def checked_roles(roles: Roles, project: Project) -> dict[str, list[str]]:
    """A peer's role mapping ({role: [party]}, shape checked by `JobSpec`): every party a member of the project."""
    strangers = sorted({p for ps in roles.values() for p in ps} - set(project.members))
    if strangers:
        raise Refused(
            f"{strangers} are not members of project {project.name!r}: they play no role in its jobs"
        )
    return {r: list(ps) for r, ps in roles.items()}


def default_roles(project: Project, plan: Pipeline | None = None) -> dict[str, list[str]]:
    """The initiator plays guest; a member that authorised datasets plays host, one that authorised none arbiter.

    `project.datasets` is keyed by party (each member's pinned datasets); an arbiter brings no data and only
    coordinates. The arbiter role is left out when no member is data-less, so two-party jobs look as before.
    A `plan` with a horizontal step (roles client and server) gets the horizontal defaults instead
    (`horizontal_roles`), so a form or `project.run` need not name them.
    """
    if plan is not None and _is_horizontal(plan):
        return horizontal_roles(project)
    others = [m for m in project.members if m != project.initiator]
    roles = {
        "guest": [project.initiator],
        "host": [m for m in others if project.datasets.get(m)],
    }
    arbiters = [m for m in others if not project.datasets.get(m)]
    if arbiters:
        roles[ARBITER] = arbiters
    return roles


def horizontal_roles(project: Project) -> dict[str, list[str]]:
    """Every member that authorised data trains (`client`); the members that authorised none aggregate."""
    with_data = [m for m in project.members if project.datasets.get(m)]
    without = [m for m in project.members if m not in with_data]
    if not without:
        raise PipelineError(
            f"project {project.name!r} has no member without data to aggregate a horizontal model: add one "
            "to the project (the sandbox's `aggregator`), or name the roles, e.g. roles={'client': [...], "
            "'server': [...]}"
        )
    return {CLIENT: with_data, SERVER: without}


def _is_horizontal(plan: Pipeline) -> bool:
    """Whether a step of `plan` is a horizontal model's (an unknown component is left for validation)."""
    for step in plan.steps:
        try:
            if {CLIENT, SERVER} & set(components.get(step.component).roles):
                return True
        except NotFound:  # Pipeline.validate names the unknown component
            continue
    return False


def role_of(roles: Roles, party: str, component: str) -> str | None:
    """The role `party` plays in a step of `component` (None: it takes no part in that step)."""
    for role in components.get(component).roles:
        if party in roles.get(role, []):
            return role
    return None


def dataset_name(ref: InputRef, party: str, roles: Roles) -> str | None:
    """The dataset `party` reads for a dataset input: one name is every party's but a data-less one's.

    A party that only plays an arbiter or a horizontal model's aggregator (`server`) brings no data.
    """
    dataset = ref["dataset"]
    if isinstance(dataset, str):
        plays = {role for role, parties in roles.items() if party in parties}
        return None if plays and plays <= DATALESS_ROLES else dataset
    named: str | None = dataset.get(party)
    return named


class Planner:
    """This node's view of a job: recomputing a peer's spec, what it can reuse, where its inputs are."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx

    def plan_job(self, sender: str, project: Project, wire: Any) -> JobSpec:
        """Validate a submitted spec exactly as its initiator did and recompute the job from it.

        Everything admission decides on (uses, our datasets, PSI sizes) comes from this recomputation with
        our own records (the project's pinned datasets, the component registry), never from the sender's
        description; the step keys must agree with the sender's, or the nodes disagree on what runs.
        """
        theirs = JobSpec.from_wire(wire, sender=sender)
        roles = checked_roles(theirs.roles, project)
        plan = Pipeline(theirs.name, [s.as_step() for s in theirs.steps])
        try:
            ordered = plan.validate(roles)
            expected = job_spec(project, plan.name, ordered, roles, theirs.force, job_id=theirs.job_id)
            self.check_artifact_inputs(project, ordered, roles)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # a shape `JobSpec.from_wire` let through but the components cannot read: still the peer's fault
            raise Refused(f"malformed job spec from {sender}: {type(exc).__name__}: {exc}") from None
        if [s.key for s in expected.steps] != [s.key for s in theirs.steps]:
            raise Refused(
                "the job's cache keys differ from ours: are both nodes on the same fedbench version?"
            )
        return expected

    def check_artifact_inputs(self, project: Project, ordered: list[Step], roles: Roles) -> None:
        """Before a job is admitted: every artifact input of a step we play is ours, of this project."""
        for step in ordered:
            role = role_of(roles, self._ctx.party, step.component)
            if role is None:
                continue
            component = components.get(step.component)
            for name, ref in step.inputs.items():
                if "artifact" in ref:
                    kind = component.port(name, output=False).kind
                    self.artifact_input(
                        project, step.name, name, kind, str(ref["artifact"]), role in DATALESS_ROLES
                    )

    def reusable(self, spec: JobSpec) -> set[str]:
        """Steps this party has run before with the same key and whose outputs are still stored intact.

        A step in which we play no role counts as reusable here: whether it runs is up to its parties.
        """
        have = set()
        with self._ctx.db.session() as session:
            for step in spec.steps:
                if role_of(spec.roles, self._ctx.party, step.component) is None:
                    have.add(step.key)
                    continue
                done = session.exec(
                    select(Task).where(Task.step_key == step.key, Task.state == "succeeded").limit(1)
                ).first()
                if done is None:
                    continue
                stored = session.exec(
                    select(Artifact).where(col(Artifact.key).startswith(f"{step.key}:"))
                ).all()
                if all(self._ctx.datasets.files.absolute(a.path).is_file() for a in stored):
                    have.add(step.key)
        return have

    def held(self, spec: JobSpec) -> set[str]:
        """The steps of a job this node would reuse as they stand (none when the job is forced to run all)."""
        return set() if spec.force else self.reusable(spec)

    def resolve_inputs(self, spec: JobSpec, step: JobStep, role: str) -> dict[str, dict[str, Any]]:
        """Where this party's inputs of a step are: its own datasets, artifacts of the job's project only.

        The arbiter brings no data: a dataset named once is not resolved for it, nor an artifact it does
        not hold (an upstream step where it wrote no such output); its role function reads only what it has.
        """
        component = components.get(step.component)
        keys = {s.name: s.key for s in spec.steps}
        project = self._ctx.project(spec.project)
        resolved: dict[str, dict[str, Any]] = {}
        for name, ref in step.inputs.items():
            kind = component.port(name, output=False).kind
            if "dataset" in ref:
                dataset = dataset_name(ref, self._ctx.party, spec.roles)
                if dataset is None:
                    continue
                resolved[name] = {"kind": "table", "path": self._ctx.datasets.path_of(dataset)}
                continue
            artifact_id = f"{keys[ref['step']]}:{ref['output']}" if "step" in ref else str(ref["artifact"])
            item = self.artifact_input(project, step.name, name, kind, artifact_id, role in DATALESS_ROLES)
            if item is not None:
                resolved[name] = {"kind": kind, "path": item.path}
        return resolved

    def artifact_input(
        self, project: Project, step: str, name: str, kind: str, artifact_id: str, absent_ok: bool
    ) -> Artifact | None:
        """An artifact given as a step input: it must be of the job's project here and of the port's kind.

        Artifacts are looked up only within the project: a model made under one project's terms is never
        an input of another project's job (the message is the same whether the id exists elsewhere or not).
        """
        with self._ctx.db.session() as session:
            item = session.get(Artifact, artifact_id)
        if item is None and absent_ok:
            return None
        if item is None or item.project != project.id:
            raise PipelineError(
                f"input {name!r} of step {step!r}: {self._ctx.party!r} holds no artifact {artifact_id} in project "
                f"{project.name!r}; an artifact of one project is never used in another: run the step that "
                "makes it in this project (or import an exported model of this project)"
            )
        if item.kind != kind:
            raise PipelineError(
                f"input {name!r} of step {step!r} wants a {kind}, but artifact {artifact_id} is a {item.kind}"
            )
        return item

    def project_info(self, project_id: str) -> dict[str, Any]:
        """What a worker learns of the job's project: its id, name, initiator, terms and arbiters (its members
        without datasets, from our own record: the PSI's arbiter gate is decided on them)."""
        project = self._ctx.project(project_id)
        return {
            "id": project.id,
            "name": project.name,
            "initiator": project.initiator,
            "terms": dict(project.terms),
            "arbiters": default_roles(project).get(ARBITER, []),
        }
