"""`psi`: private set intersection as a component: ECDH-PSI (`fedbench.psi`) on each party's ID columns.

Each party prepares its IDs (normalisation, several columns combined into one key, duplicates handled), runs
its side of the protocol with the project's PSI key and limits (the partner's declared maximum size, the
minimum intersection, the release policy), and writes the intersected rows of its own table as `data`, in the
same order on both sides, when the release policy entitles it. The `metrics` output holds sizes and rates. The
peer's size limit comes from the terms our node holds (a PSI without one is refused), and every refusal of
the protocol (a size over that limit, more values than declared, an impossible count) fails the step as
`Refused`, which our node audits.

When our record of the project names an arbiter (a member without datasets) and the run withholds rows
(`count_only`) or has a minimum, the arbiter counts the intersection (`fedbench.psi.arbiter_count`): a job
that leaves the project's arbiter out of the `arbiter` role is refused. The arbiter's role function does the
counting, and nothing when the gate does not apply.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fedbench.components.spec import Component, Port, register
from fedbench.errors import Refused
from fedbench.federation import Context
from fedbench.psi import Normalise, PsiRefused, prepare_ids
from fedbench.psi import release as policy
from fedbench.psi.arbiter_count import DATA_ROLES, ArbiterLink, count_for_parties, gate_applies
from fedbench.psi.protocol import run_psi_on
from fedbench.psi.release import Release

__all__ = ["PSI_WAIT", "PsiParams", "psi"]

PSI_WAIT = 1800.0
"""Seconds a side waits for any one message of the peer (its waits are sliced: a cancel is seen at once)."""


class PsiParams(BaseModel):
    """Parameters of `psi`."""

    model_config = {"extra": "forbid"}

    id_column: str | list[str] = Field(
        default="id", description="the ID column, or several columns combined into one key"
    )
    normalise: Literal["text", "phone", "email"] = Field(
        default="text", description="how IDs are cleaned: plain text, phone numbers, e-mail addresses"
    )
    lower: bool = Field(default=False, description="lower-case IDs before matching")
    strip: bool = Field(default=True, description="remove surrounding spaces")
    regex: str | None = Field(default=None, description="keep only what this regular expression captures")
    country_code: str | None = Field(
        default=None, description="country code added to national phone numbers, e.g. '44'"
    )
    duplicates: Literal["error", "first"] = Field(
        default="error", description="on duplicate IDs: stop with an error, or keep the first row"
    )
    release: Literal["project", Release] = Field(
        default="project",
        description="who receives the intersected rows: the project's policy, or a narrower one",
    )
    workers: int | None = Field(default=None, ge=1, le=256, description="processes for the group operations")


psi = register(
    Component(
        name="psi",
        version="1",
        params=PsiParams,
        roles=("guest", "host", "arbiter"),
        optional_roles=("arbiter",),
        use="psi",
        inputs=(Port("data", "table", "each party's table with its ID column(s)"),),
        outputs=(
            Port("data", "table", "our rows in the intersection, aligned with the partner's", optional=True),
            Port("metrics", "metrics", "sizes, intersection size and match rates"),
        ),
        description="Find the customers both parties have, without revealing the others.",
    )
)


def _release(ctx: Context, params: PsiParams) -> str:
    agreed = str(ctx.project.get("terms", {}).get("release", policy.NARROWEST))
    wanted = agreed if params.release == "project" else params.release
    allowed = policy.within(agreed)
    if wanted not in allowed:
        raise Refused(
            f"release {wanted!r} gives more than the project allows ({agreed!r}); use {sorted(allowed)}"
        )
    return wanted


def _min_intersection(ctx: Context) -> int:
    return int(ctx.project.get("terms", {}).get("min_intersection", 0))


def _counting_arbiter(ctx: Context, release: str, min_intersection: int) -> str | None:
    """The party that must count this run's intersection: our record's arbiter when the gate applies.

    Decided from our own record of the project (its data-less members), never from the job: a job that gives
    the arbiter role to nobody, or to a party our record does not hold as the project's arbiter, is refused.
    """
    arbiters = [str(p) for p in ctx.project.get("arbiters") or []]
    if not arbiters or not gate_applies(release, min_intersection):
        return None
    in_job = ctx.roles.get("arbiter", [])
    data_parties = {p for role in DATA_ROLES for p in ctx.roles.get(role, [])}
    if len(in_job) != 1 or in_job[0] not in arbiters or in_job[0] in data_parties:
        raise Refused(
            f"project {ctx.project.get('name')!r} has an arbiter ({', '.join(arbiters)}), which counts the "
            f"intersection of a PSI under release {release!r} with min_intersection {min_intersection}; this job "
            f"gives the arbiter role to {in_job or 'nobody'}: run it with {arbiters[0]!r} as the arbiter (the "
            "project's default roles do)"
        )
    return in_job[0]


def _run(ctx: Context, params: PsiParams) -> None:
    """Both roles run the same code; which protocol side a party plays follows the project's initiator."""
    release = _release(ctx, params)
    peer_role = "host" if ctx.role == "guest" else "guest"
    try:
        arbiter = _counting_arbiter(ctx, release, _min_intersection(ctx))
    except Refused as exc:
        ctx.peer(peer_role).channel("psi", timeout=PSI_WAIT).fail(exc)  # the peer stops at once
        raise
    table = ctx.input("data")
    rule = Normalise(
        kind=params.normalise,
        strip=params.strip,
        lower=params.lower,
        regex=params.regex,
        country_code=params.country_code,
    )
    prepared = prepare_ids(table, params.id_column, normalise=rule, duplicates=params.duplicates)
    ctx.log(f"prepared IDs: {prepared.summary()}")
    peer = ctx.peer(peer_role).party
    terms = ctx.project.get("terms", {})
    max_peer_rows = terms.get("max_psi_rows", {}).get(peer)
    if type(max_peer_rows) is not int:
        raise Refused(
            f"our terms of project {ctx.project.get('name')!r} hold no PSI size limit for {peer!r} "
            "(max_psi_rows): a PSI needs the largest ID set we agreed to receive from the peer"
        )
    try:
        result = run_psi_on(
            ctx.peer(peer_role).channel("psi", timeout=PSI_WAIT),
            role="initiator" if ctx.party == ctx.project.get("initiator") else "partner",
            ids=prepared.keys,
            domain_key=ctx.psi_key,
            release=release,
            min_intersection=_min_intersection(ctx),
            max_peer_rows=max_peer_rows,
            workers=params.workers,
            progress=ctx.progress,
            arbiter=None
            if arbiter is None
            else ArbiterLink(ctx.peer("arbiter").channel("psi.arbiter", timeout=PSI_WAIT), ctx.role),
        )
    except PsiRefused as exc:
        raise Refused(str(exc)) from None  # code "refused": the node audits the refusal of this step
    if result.indices is not None and result.released:
        rows = prepared.row_positions[result.indices]
        ctx.output("data", table.iloc[rows].reset_index(drop=True))
    ctx.output("metrics", {**result.metrics(), "ids": prepared.summary()})
    ctx.metrics.log("intersection_size", float(result.intersection_size))
    ctx.progress(1.0, f"intersection: {result.intersection_size}")


psi.role("guest")(_run)
psi.role("host")(_run)


@psi.role("arbiter")
def _count(ctx: Context, params: PsiParams) -> None:
    """The project's arbiter counts the intersection when the gate applies (our own record and terms say so)."""
    release, min_intersection = _release(ctx, params), _min_intersection(ctx)
    if ctx.party not in (ctx.project.get("arbiters") or []) or not gate_applies(release, min_intersection):
        ctx.progress(1.0, f"nothing to count: release {release!r} with no minimum needs no arbiter")
        return
    caps = ctx.project.get("terms", {}).get("max_psi_rows", {})
    try:
        counted = count_for_parties(
            {role: ctx.peer(role).channel("psi.arbiter", timeout=PSI_WAIT) for role in DATA_ROLES},
            release=release,
            min_intersection=min_intersection,
            max_rows={role: caps.get(ctx.peer(role).party) for role in DATA_ROLES},
            progress=ctx.progress,
        )
    except PsiRefused as exc:
        raise Refused(str(exc)) from None  # audited by our node, as the data parties' refusals are
    ctx.output("metrics", counted.metrics())
    ctx.metrics.log("intersection_size", float(counted.intersection_size))
