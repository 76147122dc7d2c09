"""The control API: how a local kernel (notebook, dashboard, CLI) talks to its own party node.

It listens on loopback only. Every call but `health` and `version` carries a user token
(`authorization: Bearer <token>`): the built-in admin's from `<home>/api_token`, or one made by
`fedbench users add`. Each method declares the least role it needs and whether it changes something (then
it is audited, allowed or refused). Three raw-bytes RPCs carry every method: `Call` (small request, small
answer), `Upload` (a streamed body: a table to register, a payload to send) and `Download` (a streamed
answer: a received payload, a table). `send` and `recv` act in the job their message key names
(`job/task/tag`): one that exists here and has not ended, of a project the caller belongs to.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from fedbench import __version__, components
from fedbench.errors import CodecError, ConfigError, FedbenchError, NotFound, Refused
from fedbench.net import codec
from fedbench.net.control_client import CONTROL_SERVICE
from fedbench.net.rpc import chunked, guarded, guarded_stream
from fedbench.net.transport import message_key
from fedbench.node.jobs import TERMINAL
from fedbench.node.users import Caller
from fedbench.store import Job, Project
from fedbench.store.datasets import DatasetInfo
from fedbench.store.tables import read_table_source, table_to_parquet_bytes

if TYPE_CHECKING:
    from fedbench.node.server import PartyNode

__all__ = ["CONTROL_SERVICE", "ControlService", "MAX_UPLOAD_BYTES"]

MAX_UPLOAD_BYTES = 16 << 30
_ANONYMOUS = Caller("anonymous", "viewer")


@dataclass(frozen=True)
class _Method:
    function: Callable[..., Any]
    role: str | None = "viewer"
    changes: bool = False
    audits_itself: bool = False


class ControlService:
    """Dispatches control-API methods to the node; each method is a plain function of named arguments."""

    def __init__(self, node: PartyNode) -> None:
        self.node = node
        projects = node.projects
        self._calls: dict[str, _Method] = {
            "health": _Method(lambda caller: self.health(), role=None),
            "version": _Method(lambda caller: {"version": __version__}, role=None),
            "whoami": _Method(lambda caller: {"name": caller.name, "role": caller.role}),
            "peers": _Method(lambda caller: self.peers()),
            "ping_peer": _Method(lambda caller, party, timeout=5.0: node.ping_peer(party, timeout)),
            "datasets.list": _Method(self.datasets_list),
            "datasets.get": _Method(lambda caller, name: self._dataset(caller, name).model_dump(mode="json")),
            "datasets.preview": _Method(self.datasets_preview),
            "datasets.summary": _Method(self.datasets_summary),
            "datasets.delete": _Method(self.datasets_delete, role="analyst", changes=True),
            "datasets.share": _Method(self.datasets_share, role="analyst", changes=True),
            "projects.list": _Method(projects.list_for),
            "projects.pending": _Method(projects.pending),
            "projects.get": _Method(projects.describe),
            "projects.propose": _Method(projects.propose, role="analyst", changes=True, audits_itself=True),
            "projects.accept": _Method(projects.accept, role="analyst", changes=True, audits_itself=True),
            "projects.reject": _Method(projects.reject, role="analyst", changes=True, audits_itself=True),
            "projects.set_state": _Method(
                projects.change_state, role="analyst", changes=True, audits_itself=True
            ),
            "projects.add_member": _Method(
                projects.add_member, role="analyst", changes=True, audits_itself=True
            ),
            "projects.amend": _Method(
                projects.amendments.amend, role="analyst", changes=True, audits_itself=True
            ),
            "projects.amend_accept": _Method(
                projects.amendments.accept, role="analyst", changes=True, audits_itself=True
            ),
            "projects.amend_reject": _Method(
                projects.amendments.reject, role="analyst", changes=True, audits_itself=True
            ),
            "projects.authorize_job": _Method(
                projects.authorize_job, role="analyst", changes=True, audits_itself=True
            ),
            "components.list": _Method(lambda caller: components.list_components()),
            "runs.submit": _Method(node.jobs.submit, role="analyst", changes=True, audits_itself=True),
            "runs.get": _Method(node.jobs.get),
            "runs.list": _Method(node.jobs.list_for),
            "runs.cancel": _Method(node.jobs.cancel, role="analyst", changes=True),
            "runs.metrics": _Method(node.jobs.metrics),
            "runs.logs": _Method(node.jobs.logs),
            "artifacts.list": _Method(node.jobs.artifacts),
            "audit.events": _Method(self.audit_events),
            "audit.verify": _Method(self.audit_verify, role="admin"),
            "users.add": _Method(self.users_add, role="admin", changes=True),
            "users.list": _Method(lambda caller: node.users.list(), role="admin"),
            "users.remove": _Method(self.users_remove, role="admin", changes=True),
            "mailbox.status": _Method(lambda caller: node.mailbox.usage(), role="admin"),
        }
        self._uploads: dict[str, _Method] = {
            "datasets.register": _Method(self.register_dataset, role="analyst", changes=True),
            "send": _Method(self.send, role="analyst", changes=True, audits_itself=True),
            "models.import": _Method(
                node.models.import_model, role="analyst", changes=True, audits_itself=True
            ),
        }
        self._downloads: dict[str, _Method] = {
            "recv": _Method(self.recv, role="analyst", changes=True, audits_itself=True),
            "datasets.load": _Method(
                lambda caller, name: [table_to_parquet_bytes(self._load(caller, name))], role="analyst"
            ),
            "artifacts.load": _Method(self.artifact_bytes),
            "models.export": _Method(node.models.export_model, audits_itself=True),
        }

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic gRPC handler (raw bytes) for the control server."""
        return grpc.method_handlers_generic_handler(
            CONTROL_SERVICE,
            {
                "Call": grpc.unary_unary_rpc_method_handler(guarded(self._call)),
                "Upload": grpc.stream_unary_rpc_method_handler(guarded(self._upload)),
                "Download": grpc.unary_stream_rpc_method_handler(guarded_stream(self._download)),
                "Watch": grpc.unary_stream_rpc_method_handler(guarded_stream(self._watch)),
            },
        )

    def health(self) -> dict[str, Any]:
        """Liveness and identity of the node."""
        config = self.node.config
        return {
            "ok": True,
            "party": config.party,
            "version": __version__,
            "federation_address": config.federation_address,
            "peers": sorted(config.peers),
        }

    def peers(self) -> list[dict[str, str]]:
        """The configured peers and their addresses."""
        return [{"party": p, "address": a} for p, a in sorted(self.node.config.peers.items())]

    def _dataset(self, caller: Caller, name: str) -> DatasetInfo:
        info = self.node.datasets.get(name)
        if caller.is_admin or info.owner == caller.name or caller.name in info.shared_with:
            return info
        raise NotFound(f"no dataset {name!r} visible to user {caller.name!r}; see wb.datasets.list()")

    def _load(self, caller: Caller, name: str) -> Any:
        return self.node.datasets.load(self._dataset(caller, name).name)

    def datasets_list(self, caller: Caller) -> list[dict[str, Any]]:
        """The datasets the caller owns or that are shared with it (all, for an admin)."""
        return [
            d.model_dump(mode="json")
            for d in self.node.datasets.list()
            if caller.is_admin or d.owner == caller.name or caller.name in d.shared_with
        ]

    def datasets_preview(self, caller: Caller, name: str, n: int = 10) -> bytes:
        """The first rows of a visible dataset, as parquet."""
        return table_to_parquet_bytes(self.node.datasets.preview(self._dataset(caller, name).name, n))

    def datasets_summary(self, caller: Caller, name: str) -> bytes:
        """Per-column statistics of a visible dataset, as parquet."""
        summary = self.node.datasets.summary(self._dataset(caller, name).name)
        return table_to_parquet_bytes(summary.reset_index())

    def datasets_delete(self, caller: Caller, name: str) -> None:
        """Remove a dataset the caller owns."""
        info = self._dataset(caller, name)
        if not (caller.is_admin or info.owner == caller.name):
            raise Refused(f"only the owner of {name!r} ({info.owner}) or an admin may delete it")
        self.node.datasets.delete(name)

    def datasets_share(self, caller: Caller, name: str, user: str) -> dict[str, Any]:
        """Let another local user use a dataset the caller owns."""
        info = self._dataset(caller, name)
        if not (caller.is_admin or info.owner == caller.name):
            raise Refused(f"only the owner of {name!r} ({info.owner}) or an admin may share it")
        return self.node.datasets.share(name, user).model_dump(mode="json")

    def register_dataset(
        self, caller: Caller, data: bytes, name: str, id_column: str, label_column: str | None = None
    ) -> Any:
        """Register an uploaded parquet table as a dataset owned by the caller."""
        table = read_table_source(data, fmt="parquet")
        info = self.node.datasets.register(
            table, name=name, id_column=id_column, label_column=label_column, owner=caller.name
        )
        return info.model_dump(mode="json")

    def send(
        self, caller: Caller, data: bytes, party: str, key: str, deadline: float = 60.0
    ) -> dict[str, bool]:
        """Forward an encoded payload (validated first: we never relay garbage) as a message of the key's job.

        It carries the job's project token, as every message must; sent or refused, it is audited.
        """
        job = self._message_job(caller, "send", party, key)
        codec.decode(data)
        project = (job.project, self.node.projects.token_for(job.project))
        try:
            delivered = self.node.peer(party).push_encoded(key, [data], deadline=deadline, project=project)
        except FedbenchError as exc:
            self._audit(caller, "send", {}, allowed=False, reason=f"{party}: {exc}", project=job.project)
            raise
        self._audit(caller, "send", {}, allowed=True, reason=f"{key} to {party}", project=job.project)
        return {"delivered": delivered}

    def recv(self, caller: Caller, party: str, key: str, timeout: float = 60.0) -> list[bytes | memoryview]:
        """Wait for a message of the key's job in the mailbox and hand it over encoded."""
        self._message_job(caller, "recv", party, key)
        return codec.encode_parts(self.node.mailbox.get(party, key, timeout))

    def _message_job(self, caller: Caller, method: str, party: str, key: str) -> Job:
        """The job a send or recv acts in: named by its key, not ended here, of a project the caller is in.

        The caller needs the analyst role (checked before) and membership of the job's project (an admin acts
        in every project); `party` must be another party of the job. A refusal is audited.
        """
        project_id = None
        try:
            parts = key.split("/") if isinstance(key, str) else []
            if len(parts) != 3:
                raise Refused(f"message key {key!r} is not job/task/tag: a send or recv acts in one job")
            message_key(*parts)
            with self.node.db.session() as session:
                job = session.get(Job, parts[0])
                project = session.get(Project, job.project) if job is not None else None
            if job is None or not job.spec or project is None:
                raise Refused(
                    f"no job {parts[0]!r} on {self.node.config.party!r}: a message key names a job of ours"
                )
            project_id = job.project
            try:
                self.node.projects.project_row(caller, project.name)
            except NotFound:
                raise Refused(
                    f"user {caller.name!r} is not a member of the project of job {job.id}: "
                    "a member of it can add you (project.add_member)"
                ) from None
            parties = {p for members in job.spec.get("roles", {}).values() for p in members}
            if party == self.node.config.party or party not in parties:
                raise Refused(
                    f"{party!r} is not another party of job {job.id} (its parties: {sorted(parties)})"
                )
            if job.state in TERMINAL:
                raise Refused(f"job {job.id} is {job.state}: it sends and receives no more messages")
        except (Refused, ConfigError) as exc:
            self._audit(caller, method, {}, allowed=False, reason=str(exc), project=project_id)
            raise Refused(str(exc)) from None
        return job

    def artifact_bytes(self, caller: Caller, artifact_id: str) -> list[bytes | memoryview]:
        """The stored file of an artifact (parquet for tables, codec bytes otherwise)."""
        item = self.node.jobs.artifact(caller, artifact_id)
        return [self.node.files.read_bytes(item.path)]

    def audit_events(self, caller: Caller, project: str | None = None) -> bytes:
        """The audit trail (of one project, by name) as parquet; non-admins see only their projects'."""
        project_id = None
        if project is not None:
            project_id = self.node.projects.describe(caller, project)["id"]
        elif not caller.is_admin:
            raise Refused("name a project: only an admin reads the whole audit log")
        frame = self.node.audit.frame(project_id)
        frame["datasets"] = frame["datasets"].map(lambda d: ", ".join(d))
        return table_to_parquet_bytes(frame)

    def audit_verify(self, caller: Caller) -> dict[str, Any]:
        """Check the audit hash chain."""
        check = self.node.audit.verify()
        return {
            "ok": check.ok,
            "entries": check.entries,
            "first_bad_id": check.first_bad_id,
            "problem": check.problem,
        }

    def users_add(self, caller: Caller, name: str, role: str) -> dict[str, str]:
        """Create a user; its token is returned once."""
        return {"name": name, "role": role, "token": self.node.users.add(name, role)}

    def users_remove(self, caller: Caller, name: str) -> None:
        """Delete a user."""
        self.node.users.remove(name)

    def _admit(
        self, name: str, method: _Method, context: grpc.ServicerContext, args: dict[str, Any]
    ) -> Caller:
        """Authenticate the caller and check its role; a refused change is audited."""
        if method.role is None:
            return _ANONYMOUS
        given = dict(context.invocation_metadata()).get("authorization", "")
        caller = self.node.users.authenticate(given.removeprefix("Bearer ").strip())
        try:
            caller.require(method.role, name)
        except Refused as exc:
            if method.changes:
                self._audit(caller, name, args, allowed=False, reason=str(exc))
            raise
        return caller

    def _run(self, name: str, method: _Method, caller: Caller, args: dict[str, Any]) -> Any:
        record = method.changes and not method.audits_itself
        try:
            result = _invoke(name, method.function, {"caller": caller, **args})
        except FedbenchError as exc:
            if record:
                self._audit(caller, name, args, allowed=False, reason=str(exc))
            raise
        if record:
            self._audit(caller, name, args, allowed=True)
        return result

    def _audit(
        self,
        caller: Caller,
        name: str,
        args: dict[str, Any],
        *,
        allowed: bool,
        reason: str = "",
        project: str | None = None,
    ) -> None:
        touched = [args["name"]] if name.startswith("datasets.") and isinstance(args.get("name"), str) else []
        self.node.audit.record(
            actor=caller.name, action=name, allowed=allowed, reason=reason, datasets=touched, project=project
        )

    @staticmethod
    def _lookup(table: dict[str, _Method], name: str) -> _Method:
        if name not in table:
            raise NotFound(f"unknown control method {name!r}; available: {sorted(table)}")
        return table[name]

    @staticmethod
    def _request(data: bytes) -> tuple[str, dict[str, Any]]:
        request = codec.decode(data)
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            raise CodecError("a control request is {'method': str, 'args': dict}")
        args = request.get("args") or {}
        if not isinstance(args, dict) or "caller" in args:
            raise CodecError("control request args must be a dict of named arguments")
        return request["method"], args

    def _call(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        name, args = self._request(data)
        method = self._lookup(self._calls, name)
        return codec.encode(self._run(name, method, self._admit(name, method, context, args), args))

    def _upload(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        name = metadata.get("fb-method", "")
        method = self._lookup(self._uploads, name)
        try:
            args = json.loads(metadata.get("fb-args", "{}"))
        except ValueError:
            raise CodecError("fb-args metadata must be a JSON object") from None
        if not isinstance(args, dict) or "caller" in args:
            raise CodecError("fb-args metadata must be a JSON object of named arguments")
        caller = self._admit(name, method, context, args)
        body = bytearray()
        for chunk in chunks:
            body += chunk
            if len(body) > MAX_UPLOAD_BYTES:
                raise CodecError(f"upload over {MAX_UPLOAD_BYTES} bytes")
        return codec.encode(self._run(name, method, caller, {**args, "data": bytes(body)}))

    def _download(self, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        name, args = self._request(data)
        method = self._lookup(self._downloads, name)
        yield from chunked(self._run(name, method, self._admit(name, method, context, args), args))

    def _watch(self, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Stream a job's events as they happen (progress, metrics, step states) until it ends."""
        name, args = self._request(data)
        method = _Method(self.node.jobs.watch)
        caller = self._admit(name, method, context, args)
        for event in _invoke(name, method.function, {"caller": caller, **args}):
            yield codec.encode(event)


def _invoke(name: str, function: Callable[..., Any], args: dict[str, Any]) -> Any:
    """Call a control method with its named arguments, checked against its signature first.

    Only arguments that do not fit the signature are the caller's mistake (`ConfigError`); a TypeError raised
    inside the method is a fault of ours and propagates as one.
    """
    try:
        inspect.signature(function).bind(**args)
    except TypeError as exc:
        takes = [p for p in inspect.signature(function).parameters if p != "caller"]
        given = sorted(a for a in args if a != "caller")
        raise ConfigError(
            f"control method {name!r} was called with arguments {given}, which do not fit ({exc}); "
            f"it takes {takes}"
        ) from None
    return function(**args)
