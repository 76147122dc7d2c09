"""What the JupyterLab "Federation" sidebar shows, as plain JSON-ready data read through `fedbench.client`.

Each function takes the server's `Workbench` (the kernel-independent client, never a raw control call) and
blocks on the node, so the handlers run them in a worker thread. Nothing here holds a secret: no token, no
key, no row of data; a project's terms are given in plain words beside the caveats of the security notes.
"""

from __future__ import annotations

from typing import Any

from fedbench.client.projects import Project
from fedbench.client.records import RunInfo
from fedbench.client.runs import Run, duration_words
from fedbench.client.workbench import Workbench
from fedbench.errors import Refused
from fedbench.node.terms import terms_in_words

__all__ = ["ANSWERING_ROLES", "RECENT_RUNS", "accept", "cancel", "projects", "reject", "runs", "user"]

ANSWERING_ROLES = frozenset({"analyst", "admin"})
"""The node roles that may accept or reject a proposal and cancel a run (`node/control.py`)."""

RECENT_RUNS = 20
"""How many of a project's newest runs the sidebar lists."""


def user(workbench: Workbench) -> dict[str, Any]:
    """The node user this Jupyter server acts as, its role, and whether that role may answer and cancel."""
    me = workbench.whoami()
    return {"name": me["name"], "role": me["role"], "can_answer": me["role"] in ANSWERING_ROLES}


def projects(workbench: Workbench) -> dict[str, Any]:
    """Every project the user may see (state, partners, uses, terms in words, caveats), our datasets to
    authorise when accepting a proposal, and whether the user's role may answer one."""
    me = user(workbench)
    party = workbench.party
    listed = [_project(p, party, me["can_answer"]) for p in workbench.projects.list()]
    datasets = [{"name": d.name, "n_rows": d.n_rows} for d in workbench.datasets.list()]
    return {"party": party, "user": me, "projects": listed, "datasets": datasets}


def _project(project: Project, party: str, can_answer: bool) -> dict[str, Any]:
    info = project.info
    terms = dict(info.get("terms") or {})
    return {
        "name": project.name,
        "state": project.state,
        "initiator": info.get("initiator"),
        "purpose": info.get("purpose") or "",
        "partners": [m for m in info.get("members", []) if m != party],
        "accepted_by": list(info.get("accepted_by", [])),
        "uses": list(terms.get("uses", [])),
        "terms": terms_in_words(terms),
        "caveats": project.caveats,
        "asks": dict(info.get("asks") or {}),
        "datasets": {
            p: [{"name": d["name"], "n_rows": d.get("n_rows")} for d in items]
            for p, items in dict(info.get("datasets") or {}).items()
        },
        "can_answer": can_answer and project.state == "pending",
        "created_at": info.get("created_at"),
    }


def runs(workbench: Workbench, project: str) -> dict[str, Any]:
    """The newest runs of `project` on our node: state, steps with progress, reused steps, duration, and the
    outputs our node holds (only those: a partner's output is not ours to read)."""
    handle = workbench.project(project)
    found = handle.list_runs()[:RECENT_RUNS]
    described = {c["name"]: c for c in handle.components()} if found else {}
    succeeded = any(r.record.state == "succeeded" for r in found)
    held = {str(a["id"]) for a in handle.artifact_records()} if succeeded else set()
    return {"project": project, "runs": [_run(r, described, held) for r in found]}


def _run(run: Run, described: dict[str, dict[str, Any]], held: set[str]) -> dict[str, Any]:
    record: RunInfo = run.record

    def ports(component: str) -> list[str]:
        return [str(p["name"]) for p in described.get(component, {}).get("outputs", [])]

    steps = [
        {
            "step": s.step,
            "component": s.component,
            "state": s.state,
            "progress": s.fraction,
            "message": s.message,
            "error": s.error,
        }
        for s in record.steps
    ]
    outputs = []
    if record.state == "succeeded":
        # `run.output(name)` reads the last step declaring `name`; any other step's output needs `step=`
        last_with = {name: s.step for s in record.steps for name in ports(s.component)}
        for s in record.steps:
            for name in ports(s.component):
                if f"{s.key}:{name}" in held:
                    outputs.append({"name": name, "step": None if last_with[name] == s.step else s.step})
    return {
        "job_id": record.job_id,
        "name": record.name,
        "state": record.state,
        "error": record.reason or None,
        "progress": record.progress,
        "initiator": record.initiator,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "duration": _duration(record),
        "reused": [s.step for s in record.steps if s.state == "reused"],
        "steps": steps,
        "outputs": outputs,
        "warnings": list(record.warnings),
    }


def _duration(record: RunInfo) -> str | None:
    """How long the run took (or has run so far), in words; None when the node does not say."""
    seconds = record.duration()
    return None if seconds is None else duration_words(seconds)


def accept(workbench: Workbench, name: str, datasets: list[str]) -> dict[str, Any]:
    """Accept the pending proposal `name` with our `datasets` (the node checks the user's role again)."""
    _may_answer(workbench, "accept a proposal")
    project = workbench.projects.accept(name, datasets=list(datasets))
    return _project(project, workbench.party, False)


def reject(workbench: Workbench, name: str, reason: str = "") -> dict[str, Any]:
    """Decline the pending proposal `name`."""
    _may_answer(workbench, "reject a proposal")
    project = workbench.projects.reject(name, reason)
    return _project(project, workbench.party, False)


def cancel(workbench: Workbench, job_id: str) -> dict[str, Any]:
    """Stop the run `job_id` on every party; returns its state as our node then has it."""
    _may_answer(workbench, "cancel a run")
    run = workbench.run(job_id).cancel()
    return {"job_id": run.job_id, "state": run.record.state}


def _may_answer(workbench: Workbench, what: str) -> None:
    me = user(workbench)
    if not me["can_answer"]:
        raise Refused(
            f"the user {me['name']!r} of this node has the role {me['role']!r}, which may not {what}; "
            "ask the node's admin for the analyst role (`fedbench users add NAME --role analyst`)"
        )
