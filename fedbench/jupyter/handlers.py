"""The REST API of the JupyterLab "Federation" sidebar, under `<base_url>fedbench/`.

| method and path | answer |
|---|---|
| `GET status` | the node, its health, its peers' reachability, the dashboards (`NodeWatch.status`) |
| `GET projects` | the projects the user may see, our datasets, the user's role (`panel.projects`) |
| `POST projects/<name>/accept` `{"datasets": [...]}` / `reject` `{"reason": "..."}` | answer a proposal |
| `GET projects/<name>/runs` | the project's newest runs with their steps (`panel.runs`) |
| `POST runs/<job id>/cancel` | stop a run on every party |

Every handler is a Jupyter `APIHandler`: it answers only an authenticated user (token or login cookie), and a
POST authenticated by cookie must carry the XSRF token (Jupyter Server's own check). A GET answer is kept for a
second per endpoint (`cache.Snapshots`) and carries an ETag, so polling panels cost the node at most one read a
second and a panel whose copy is current gets a 304. An error of the node comes back as JSON
`{"message": ...}` with a status that says what kind it is (403 refused, 404 unknown, 400 bad input,
503 node down).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from fedbench.errors import (
    ConfigError,
    DatasetError,
    FedbenchError,
    NodeUnavailable,
    NotFound,
    PeerUnavailable,
    Refused,
)
from fedbench.jupyter import panel
from fedbench.jupyter.cache import Snapshots
from fedbench.jupyter.links import find_dashboards, voila_url

__all__ = ["API", "routes"]

API = "fedbench"
"""The sidebar API's prefix under the server's base URL."""

_STATUS_OF: tuple[tuple[type[FedbenchError], int], ...] = (
    (NotFound, 404),
    (Refused, 403),
    (ConfigError, 400),
    (DatasetError, 400),
    (NodeUnavailable, 503),
    (PeerUnavailable, 503),
)


def _http_error(exc: FedbenchError) -> web.HTTPError:
    """The HTTP error that carries a node's error to the panel, its message intact."""
    status = next((code for kind, code in _STATUS_OF if isinstance(exc, kind)), 500)
    return web.HTTPError(status, str(exc), reason=type(exc).__name__)


class _SidebarHandler(APIHandler):
    """What the sidebar's handlers share: the server's node, its kept answers, JSON in and out."""

    @property
    def watch(self) -> Any:
        return self.settings["fedbench_watch"]

    @property
    def snapshots(self) -> Snapshots:
        snapshots: Snapshots = self.settings["fedbench_snapshots"]
        return snapshots

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log an error answer's message as a value (a node's message may hold a `%`)."""
        if isinstance(value, web.HTTPError) and value.log_message:
            self.log.warning("%d %s: %s", value.status_code, self._request_summary(), value.log_message)
            return
        super().log_exception(typ, value, tb)

    async def answer(self, key: str, read: Callable[[], Any]) -> None:
        """Answer a GET with the endpoint's kept answer (read again if older than a second), or 304."""
        try:
            snapshot = await self.snapshots.get(key, read)
        except FedbenchError as exc:
            raise _http_error(exc) from None
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Etag", snapshot.etag)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        self.finish(snapshot.body)

    async def act(self, do: Callable[[], Any], *forget: str) -> None:
        """Run a change on the node (in a worker thread), drop the kept answers it makes stale, answer JSON."""
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, do)
        except FedbenchError as exc:
            raise _http_error(exc) from None
        self.snapshots.forget(*forget)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))

    def body_json(self) -> dict[str, Any]:
        """The request's JSON object body ({} when empty); 400 when it is not a JSON object."""
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the request body must be a JSON object", reason="Bad Request")
        return body


class StatusHandler(_SidebarHandler):
    """`GET status`: the node this server works with, its health, its peers, the dashboard links."""

    @web.authenticated
    async def get(self) -> None:
        """The status as JSON (the peer pings run in a worker thread, off the event loop)."""
        base_url = self.settings.get("base_url", "/")
        root = self.settings["fedbench_root_dir"]

        def read() -> dict[str, Any]:
            body: dict[str, Any] = self.watch.status()
            body["dashboards"] = [
                {"name": Path(path).stem, "path": path, "url": voila_url(base_url, path)}
                for path in find_dashboards(root)
            ]
            return body

        await self.answer("status", read)


class ProjectsHandler(_SidebarHandler):
    """`GET projects`: every project the user may see, with its terms in plain words."""

    @web.authenticated
    async def get(self) -> None:
        """The projects, our datasets and the user's role."""
        await self.answer("projects", lambda: self.watch.using(panel.projects))


class AnswerHandler(_SidebarHandler):
    """`POST projects/<name>/accept` (`{"datasets": [...]}`) or `.../reject` (`{"reason": ...}`)."""

    @web.authenticated
    async def post(self, name: str, verb: str) -> None:
        """Accept or reject the pending proposal `name` as the server's node user."""
        body = self.body_json()
        if verb == "accept":
            datasets = body.get("datasets")
            if (
                not isinstance(datasets, list)
                or not datasets
                or not all(isinstance(d, str) for d in datasets)
            ):
                raise web.HTTPError(
                    400, f"name the datasets of ours to authorise for {name!r}: {{'datasets': [...]}}"
                )
            await self.act(
                lambda: self.watch.using(lambda wb: panel.accept(wb, name, datasets)), "projects", "runs/"
            )
        else:
            reason = str(body.get("reason") or "")
            await self.act(lambda: self.watch.using(lambda wb: panel.reject(wb, name, reason)), "projects")


class RunsHandler(_SidebarHandler):
    """`GET projects/<name>/runs`: the project's newest runs with their steps' progress."""

    @web.authenticated
    async def get(self, name: str) -> None:
        """The runs of project `name`, newest first."""
        await self.answer(f"runs/{name}", lambda: self.watch.using(lambda wb: panel.runs(wb, name)))


class CancelHandler(_SidebarHandler):
    """`POST runs/<job id>/cancel`: stop a run on every party."""

    @web.authenticated
    async def post(self, job_id: str) -> None:
        """Cancel the run `job_id` as the server's node user."""
        await self.act(lambda: self.watch.using(lambda wb: panel.cancel(wb, job_id)), "runs/")


def routes(base_url: str) -> list[tuple[str, type[APIHandler]]]:
    """The sidebar API's routes under `base_url`."""
    name = r"(?P<name>[^/]+)"
    return [
        (url_path_join(base_url, API, "status"), StatusHandler),
        (url_path_join(base_url, API, "projects"), ProjectsHandler),
        (url_path_join(base_url, API, "projects", name, r"(?P<verb>accept|reject)"), AnswerHandler),
        (url_path_join(base_url, API, "projects", name, "runs"), RunsHandler),
        (url_path_join(base_url, API, "runs", r"(?P<job_id>[^/]+)", "cancel"), CancelHandler),
    ]
