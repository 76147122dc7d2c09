"""Projects as an analyst sees them: propose, answer proposals, inspect, suspend or revoke."""

from __future__ import annotations

import html
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from fedbench.client.control import NodeClient
from fedbench.client.runs import Output, Run
from fedbench.errors import ConfigError, NotFound
from fedbench.pipeline import Pipeline, PipelineError

__all__ = ["Project", "Projects"]


class Project:
    """One collaboration project, as our node knows it."""

    def __init__(self, node: NodeClient, info: dict[str, Any]) -> None:
        self._node = node
        self.info = info
        self._party: str | None = None

    @property
    def our_party(self) -> str:
        """The party whose node this handle talks to (asked of the node once)."""
        if self._party is None:
            self._party = str(self._node.health()["party"])
        return self._party

    @property
    def name(self) -> str:
        """The project's name."""
        return str(self.info["name"])

    @property
    def state(self) -> str:
        """proposed, pending, active, suspended, rejected or revoked (as of the last refresh)."""
        return str(self.info["state"])

    @property
    def quotas(self) -> dict[str, Any]:
        """The agreed uses, quotas and PSI release policy."""
        return dict(self.info["terms"])

    @property
    def caveats(self) -> list[str]:
        """What the terms do not stop, in plain words: limits of the protocols, or of a semi-honest partner."""
        return [str(c) for c in self.info.get("caveats", [])]

    def refresh(self) -> Project:
        """Reload the project from the node."""
        self.info = self._node.call("projects.get", name=self.name)
        return self

    def usage(self) -> dict[str, int]:
        """Jobs today, PSI runs and jobs in all, as counted against the quotas."""
        return dict(self.refresh().info["usage"])

    def suspend(self, reason: str = "") -> Project:
        """Stop every request of the project at once (resume with `resume()`)."""
        return self._set("suspended", reason)

    def resume(self, reason: str = "") -> Project:
        """Resume a project we suspended."""
        return self._set("active", reason)

    def revoke(self, reason: str = "") -> Project:
        """End the project for good, on every member; running jobs are cancelled."""
        return self._set("revoked", reason)

    def authorize_job(
        self, use: str, datasets: dict[str, list[str]], psi_rows: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """Have every member admit a job that touches no data (checks and quotas); returns its job id.

        A job that reads datasets or runs a PSI is admitted only with its pipeline (`run`, `run_pipeline`),
        from which every member recomputes what it touches: naming datasets here is refused.
        """
        return dict(
            self._node.call(
                "projects.authorize_job", name=self.name, use=use, datasets=datasets, psi_rows=psi_rows or {}
            )
        )

    def run(
        self,
        component: str,
        *,
        force: bool = False,
        roles: dict[str, list[str]] | None = None,
        **inputs_and_params: Any,
    ) -> Run:
        """Run one component: arguments named like its inputs are inputs, the rest are params."""
        described = {c["name"]: c for c in self.components()}
        if component not in described:
            raise PipelineError(f"unknown component {component!r}; available: {sorted(described)}")
        input_names = {p["name"] for p in described[component]["inputs"]}
        inputs = {k: v for k, v in inputs_and_params.items() if k in input_names}
        params = {k: v for k, v in inputs_and_params.items() if k not in input_names}
        return self.run_pipeline(
            Pipeline(component).add(component, component, inputs=inputs, **params), force=force, roles=roles
        )

    def run_pipeline(
        self, pipeline: Pipeline, *, force: bool = False, roles: dict[str, list[str]] | None = None
    ) -> Run:
        """Run a pipeline; steps whose cache key exists on every party are reused, not run again."""
        info = self._node.call(
            "runs.submit", project=self.name, pipeline=pipeline.to_dict(), roles=roles, force=force
        )
        return Run(self._node, info)

    def runs(self) -> pd.DataFrame:
        """The project's runs on our node, newest first."""
        rows = [
            {
                "job_id": r["job_id"],
                "name": r["name"],
                "state": r["state"],
                "steps": len(r["steps"]),
                "error": r["error"],
                "created_at": r["created_at"],
            }
            for r in (run.info for run in self.list_runs())
        ]
        return pd.DataFrame(rows)

    def list_runs(self) -> list[Run]:
        """The project's runs on our node, newest first, as `Run` handles (`run.info` holds the node's answer)."""
        return [Run(self._node, info) for info in self._node.call("runs.list", project=self.name)]

    def components(self) -> list[dict[str, Any]]:
        """Every component our node can run, as it describes them: roles, inputs, outputs, params JSON schema.

        This includes components the node loads from its `component_modules`, which this kernel may not know.
        """
        return list(self._node.call("components.list"))

    def component(self, name: str) -> dict[str, Any]:
        """One component as our node describes it (see `components()`); NotFound if the node has none of that name."""
        described = {str(c["name"]): c for c in self.components()}
        if name not in described:
            raise NotFound(f"our node has no component {name!r}; it has {', '.join(sorted(described))}")
        return dict(described[name])

    def artifact_records(self) -> list[dict[str, Any]]:
        """Every artifact our node holds for the project, as plain records (`artifacts()` gives a table)."""
        return list(self._node.call("artifacts.list", project=self.name))

    def run_by_id(self, job_id: str) -> Run:
        """One run of the project by its id, or by the first 8 or more characters of it as the dashboards
        show them (to pick up a run after a kernel restart)."""
        job_id = str(job_id).strip()
        try:
            return Run(self._node, self._node.call("runs.get", job_id=job_id))
        except NotFound:
            if len(job_id) < 8:
                raise NotFound(
                    f"no run has the id {job_id!r}: give the whole id, or at least its first 8 characters"
                ) from None
        found = [r for r in self._node.call("runs.list", project=self.name) if r["job_id"].startswith(job_id)]
        if not found:
            raise NotFound(
                f"no run of project {self.name!r} has an id starting with {job_id!r}; project.runs() lists them"
            )
        if len(found) > 1:
            raise NotFound(
                f"{len(found)} runs of project {self.name!r} have ids starting with {job_id!r} "
                f"({', '.join(r['job_id'] for r in found)}); give more characters of the id"
            )
        return Run(self._node, found[0])

    def artifacts(self) -> pd.DataFrame:
        """Every artifact our node holds for the project: id, name, kind, step, when."""
        return pd.DataFrame(self.artifact_records())

    def export_model(self, model: Output | Mapping[str, Any] | str, path: str | os.PathLike[str]) -> Path:
        """Write our party's part of a model artifact of this project to a JSON file; returns its path.

        `model` is a run's output (`run.output("model")`), an input reference (`{"artifact": id}`) or an
        artifact id. The file holds the stored value, where it came from and a seal of the project's nodes;
        only this project, on our party, can import it again (`import_model`).
        """
        artifact_id = _artifact_id(model)
        data = self._node.download("models.export", project=self.name, artifact_id=artifact_id)
        target = Path(path)
        target.write_bytes(bytes(data))
        return target

    def import_model(self, path: str | os.PathLike[str], name: str | None = None) -> Output:
        """Store a model file exported from this project (by our party) as a model artifact of the project.

        Returns the artifact as an `Output`: read it with `.value()`, or pass it as a step input (its ref is
        `{"artifact": id}`). `name` defaults to the exported artifact's name; import each party's part under
        the same name and the id is the same on every party. Refused: a file of another project or party,
        an altered file, anything that is not a model file.
        """
        source = Path(path)
        if not source.is_file():
            raise ConfigError(f"no model file at {source}; give the path project.export_model(...) wrote")
        info = self._node.upload("models.import", source.read_bytes(), project=self.name, name=name)
        return Output(self._node, str(info["id"]), str(info["kind"]))

    @property
    def amendment(self) -> dict[str, Any] | None:
        """The pending amendment (else the latest one): who proposed it, the datasets it adds, its state."""
        found = self.info.get("amendment")
        return dict(found) if found else None

    def amend(self, *, add_datasets: list[str]) -> Project:
        """Propose to add our `add_datasets` to this active project (their content is pinned, as at creation).

        Every other member accepts it again (`accept_amendment`); until then the project runs on its old
        datasets and a job on an added one is refused.
        """
        self.info = self._node.call("projects.amend", name=self.name, add_datasets=list(add_datasets))
        return self

    def accept_amendment(self) -> Project:
        """Accept a partner's pending amendment as it reached our node; it applies once every member accepted."""
        self.info = self._node.call("projects.amend_accept", name=self.name)
        return self

    def reject_amendment(self, reason: str = "") -> Project:
        """Decline a partner's pending amendment (or withdraw our own); the project keeps its datasets."""
        self.info = self._node.call("projects.amend_reject", name=self.name, reason=reason)
        return self

    def add_member(self, user: str) -> Project:
        """Give a local user access to this project."""
        self.info = self._node.call("projects.add_member", name=self.name, user=user)
        return self

    def audit(self) -> pd.DataFrame:
        """The audit trail of this project on our node."""
        return pd.read_parquet(io.BytesIO(self._node.call("audit.events", project=self.name)))

    def _set(self, state: str, reason: str) -> Project:
        self.info = self._node.call("projects.set_state", name=self.name, state=state, reason=reason)
        return self

    def __repr__(self) -> str:
        return f"Project({self.name!r}, state={self.state!r}, members={self.info['members']})"

    def _repr_html_(self) -> str:
        esc = html.escape
        datasets = "".join(
            f"<li><b>{esc(party)}</b>: {esc(', '.join(d['name'] for d in items)) or '<i>none yet</i>'}</li>"
            for party, items in self.info["datasets"].items()
        )
        terms = self.info["terms"]
        caveats = "".join(f"<li>{esc(c)}</li>" for c in self.caveats)
        return (
            f'<div class="fb-project"><b>{esc(self.name)}</b> <code>{esc(self.state)}</code> '
            f"initiated by {esc(self.info['initiator'])}<br>{esc(self.info['purpose'])}"
            f"<ul>{datasets}</ul>uses {esc(', '.join(terms['uses']))}; {terms['jobs_per_day']} jobs/day; "
            f"{terms['psi_runs']} PSI runs; min intersection {terms['min_intersection']}; "
            f"release: {esc(terms['release'])}"
            + (f"<br>What these terms do not stop:<ul>{caveats}</ul>" if caveats else "")
            + "</div>"
        )


def _artifact_id(model: Output | Mapping[str, Any] | str) -> str:
    """The artifact id of a run output, an `{"artifact": id}` reference or an id."""
    if isinstance(model, Output):
        return model.id
    if isinstance(model, Mapping) and isinstance(model.get("artifact"), str):
        return str(model["artifact"])
    if isinstance(model, str) and model:
        return model
    raise PipelineError(
        f"cannot export {model!r}: give run.output('model'), {{'artifact': id}} or an artifact id "
        "(see project.artifacts())"
    )


class Projects:
    """The projects our node takes part in."""

    def __init__(self, node: NodeClient) -> None:
        self._node = node

    def propose(
        self,
        name: str,
        *,
        partners: list[str] | str,
        datasets: list[str],
        purpose: str = "",
        asks: dict[str, str] | None = None,
        **terms: Any,
    ) -> Project:
        """Propose a project; `terms` are uses, jobs_per_day, psi_runs, max_psi_rows, min_intersection, release."""
        partner_list = [partners] if isinstance(partners, str) else list(partners)
        info = self._node.call(
            "projects.propose",
            name=name,
            partners=partner_list,
            datasets=list(datasets),
            purpose=purpose,
            asks=asks or {},
            terms=terms,
        )
        return Project(self._node, info)

    def pending(self) -> list[Project]:
        """Proposals from partners that wait for our answer."""
        return [Project(self._node, p) for p in self._node.call("projects.pending")]

    def accept(self, name: str, *, datasets: list[str], max_psi_rows: int | None = None) -> Project:
        """Accept a proposal, authorising our `datasets` for it (their content is pinned)."""
        info = self._node.call(
            "projects.accept", name=name, datasets=list(datasets), max_psi_rows=max_psi_rows
        )
        return Project(self._node, info)

    def reject(self, name: str, reason: str = "") -> Project:
        """Decline a proposal."""
        return Project(self._node, self._node.call("projects.reject", name=name, reason=reason))

    def list(self) -> list[Project]:
        """Every project we may see."""
        return [Project(self._node, p) for p in self._node.call("projects.list")]

    def get(self, name: str) -> Project:
        """One project by name."""
        return Project(self._node, self._node.call("projects.get", name=name))

    def to_frame(self) -> pd.DataFrame:
        """The projects as a table."""
        rows = [
            {k: p.info[k] for k in ("name", "state", "initiator", "members", "purpose", "created_at")}
            for p in self.list()
        ]
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        return str(frame.to_html(index=False, border=0)) if not frame.empty else "<i>no projects yet</i>"
