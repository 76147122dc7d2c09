"""Model export and import: one party's part of a model artifact as a JSON file, and back into the project.

A model made in a project stays in that project: its file names the project and the party that made it, holds
the stored value exactly (the codec bytes, base64) with their sha256, and is sealed with an HMAC keyed by the
project's token, which only the project's nodes hold (never a kernel). Import refuses a file of another
project or party, a file whose value or any other field changed after export, and anything that is not a
model file; it never unpickles or evaluates anything: the value is decoded by the safe codec only.

An imported model is an ordinary model artifact of the project, with the id
`import-<hash of project, original artifact id and name>:<name>`: the same on every party that imports its
part of the same model under the same name, so `{"artifact": id}` is a step input on every party, as a run's
outputs are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from sqlmodel import select

from fedbench.errors import CodecError, ModelFileError, NotFound, Refused, StoreError
from fedbench.net import codec
from fedbench.node.audit import AuditLog
from fedbench.node.projects import ProjectService
from fedbench.node.users import Caller
from fedbench.store import Artifact, ArtifactFiles, Database, Project, Task
from fedbench.store.models import utcnow

__all__ = ["FORMAT", "MAX_MODEL_FILE_BYTES", "ModelFile", "ModelService", "model_seal_key"]

FORMAT = "fedbench-model"
"""The `format` field of every model file."""
ENCODING = "fedbench-codec-v1+base64"
"""How the value is written: the artifact's stored codec bytes, base64."""
MAX_MODEL_FILE_BYTES = 256 << 20
"""The largest model file a node imports."""
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class ExportedProject(BaseModel):
    """The project a model was made in."""

    model_config = {"extra": "forbid"}

    id: str
    name: str


class ExportedArtifact(BaseModel):
    """The artifact a model file was exported from (its step and component when a run made it)."""

    model_config = {"extra": "forbid"}

    id: str
    name: str
    step: str | None
    component: str | None
    job_id: str | None


class ModelFile(BaseModel):
    """The content of a model file (every field is covered by `seal`)."""

    model_config = {"extra": "forbid"}

    format: Literal["fedbench-model"]
    version: Literal[1]
    kind: Literal["model"]
    project: ExportedProject
    party: str
    artifact: ExportedArtifact
    created_at: str
    exported_at: str
    encoding: Literal["fedbench-codec-v1+base64"]
    size: int
    sha256: str
    value: str
    seal: str


def model_seal_key(project_id: str, token: str) -> bytes:
    """The per-project key model files are sealed with (derived from the project token, never sent)."""
    return hmac.new(token.encode(), f"fedbench-model-seal\x00{project_id}".encode(), hashlib.sha256).digest()


def _seal(key: bytes, document: dict[str, Any]) -> str:
    unsealed = {k: v for k, v in document.items() if k != "seal"}
    canonical = json.dumps(unsealed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


class ModelService:
    """Exports and imports the model artifacts of one node's projects; both are audited."""

    def __init__(
        self, party: str, db: Database, files: ArtifactFiles, projects: ProjectService, audit: AuditLog
    ) -> None:
        self.party = party
        self._db = db
        self._files = files
        self._projects = projects
        self._audit = audit

    def export_model(self, caller: Caller, project: str, artifact_id: str) -> list[bytes]:
        """Our part of a model artifact of `project` as the bytes of a sealed JSON model file."""
        row = self._projects.project_row(caller, project)
        try:
            item = self._model_of(row, artifact_id)
            value = self._files.read_bytes(item.path)
            if hashlib.sha256(value).hexdigest() != item.sha256:
                raise StoreError(
                    f"the stored file of artifact {artifact_id} does not match its sha256: it was damaged; "
                    "run the step that made it again"
                )
        except (ModelFileError, NotFound, StoreError) as exc:
            self._record(caller, "models.export", row, False, str(exc))
            raise
        step, component = self._origin(item.key)
        document: dict[str, Any] = {
            "format": FORMAT,
            "version": 1,
            "kind": "model",
            "project": {"id": row.id, "name": row.name},
            "party": self.party,
            "artifact": {
                "id": item.key,
                "name": item.name,
                "step": step,
                "component": component,
                "job_id": item.job_id,
            },
            "created_at": item.created_at.isoformat(),
            "exported_at": utcnow().isoformat(),
            "encoding": ENCODING,
            "size": len(value),
            "sha256": item.sha256,
            "value": base64.b64encode(value).decode("ascii"),
        }
        document["seal"] = _seal(self._seal_key(row), document)
        self._record(caller, "models.export", row, True, f"artifact {item.key}")
        return [json.dumps(document, indent=1).encode()]

    def import_model(
        self, caller: Caller, data: bytes, project: str, name: str | None = None
    ) -> dict[str, Any]:
        """Check a model file made by our party in `project` and store it as a model artifact of the project."""
        caller.require("analyst", "import models")
        row = self._projects.project_row(caller, project)
        try:
            if row.state != "active":
                raise Refused(
                    f"project {row.name!r} is {row.state}: models are imported only into an active project"
                )
            checked, value = self._check(row, data)
            artifact_name = name if name is not None else checked.artifact.name
            if not _NAME.match(artifact_name):
                raise ModelFileError(
                    f"{artifact_name!r} is not a valid artifact name: a letter, then letters, digits, '_' or '-'"
                )
            stored = self._store(row, checked, artifact_name, value)
        except Refused as exc:
            self._record(caller, "models.import", row, False, str(exc))
            raise
        self._record(caller, "models.import", row, True, f"artifact {stored.key} from {checked.artifact.id}")
        return {
            "id": stored.key,
            "name": stored.name,
            "kind": stored.kind,
            "project": row.name,
            "source": checked.artifact.model_dump(),
        }

    def _check(self, project: Project, data: bytes) -> tuple[ModelFile, bytes]:
        """Every check an imported file passes, in order; the first that fails says what is wrong."""
        if len(data) > MAX_MODEL_FILE_BYTES:
            raise ModelFileError(
                f"the file has {len(data)} bytes, over the {MAX_MODEL_FILE_BYTES} a model file may have"
            )
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raw = None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ModelFileError(
                "this is not a fedbench model file; export one with project.export_model(output, path)"
            )
        if raw.get("kind") != "model":
            raise ModelFileError(
                f"the file holds a {raw.get('kind')!r}, not a model: only models are imported"
            )
        try:
            checked = ModelFile.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ModelFileError(f"the model file is malformed ({problems}); export it again") from None
        if checked.project.id != project.id:
            raise ModelFileError(
                f"the model was made in project {checked.project.name!r} ({checked.project.id}), not in "
                f"{project.name!r}: a model of one project cannot be used in another; import it into "
                f"{checked.project.name!r} or train it again in {project.name!r}"
            )
        if checked.party != self.party:
            raise ModelFileError(
                f"the model file holds {checked.party!r}'s part of the model; only {checked.party!r} can "
                f"import it (this node is {self.party!r}): each party exports and imports its own part"
            )
        try:
            value = base64.b64decode(checked.value, validate=True)
        except (binascii.Error, ValueError):
            raise ModelFileError("the model's value is not valid base64: the file was altered") from None
        if len(value) != checked.size or hashlib.sha256(value).hexdigest() != checked.sha256:
            raise ModelFileError(
                "the model's value does not match its sha256: the file was altered or damaged after export; "
                "export it again"
            )
        if not hmac.compare_digest(checked.seal, _seal(self._seal_key(project), raw)):
            raise ModelFileError(
                f"the file's seal does not match project {project.name!r}: it was edited after export or not "
                "made by this project's nodes; export it again"
            )
        try:
            codec.decode(value)
        except CodecError as exc:
            raise ModelFileError(f"the model's value cannot be decoded: {exc}") from None
        return checked, value

    def _store(self, project: Project, checked: ModelFile, name: str, value: bytes) -> Artifact:
        """Write the value atomically (content-addressed) and add its artifact row, once."""
        digest = hashlib.sha256(
            f"fedbench-import\x00{project.id}\x00{checked.artifact.id}\x00{name}".encode()
        ).hexdigest()
        key = f"import-{digest[:40]}:{name}"
        with self._db.session() as session:
            existing = session.get(Artifact, key)
        if existing is not None:
            if existing.sha256 != checked.sha256:
                raise ModelFileError(
                    f"model {key} was imported before with other content (from another export of "
                    f"{checked.artifact.id}); import this file under another name"
                )
            return existing
        stored = self._files.write_bytes(value, suffix=".fbc")
        item = Artifact(
            key=key,
            project=project.id,
            name=name,
            kind="model",
            path=stored.path,
            sha256=stored.sha256,
            size_bytes=stored.size,
        )
        with self._db.session() as session:
            session.add(item)
        return item

    def _model_of(self, project: Project, artifact_id: str) -> Artifact:
        with self._db.session() as session:
            item = session.get(Artifact, artifact_id)
        if item is None or item.project != project.id:
            raise NotFound(
                f"project {project.name!r} has no artifact {artifact_id!r} on {self.party!r}; "
                "see project.artifacts()"
            )
        if item.kind != "model":
            raise ModelFileError(
                f"artifact {artifact_id} is a {item.kind}, not a model: only models are exported "
                "(read other outputs with run.output(name).value() or .download(path))"
            )
        return item

    def _origin(self, artifact_id: str) -> tuple[str | None, str | None]:
        """The step and component that made an artifact (none for an imported one)."""
        with self._db.session() as session:
            task = session.exec(
                select(Task).where(Task.step_key == artifact_id.split(":")[0], Task.state == "succeeded")
            ).first()
        return (task.step, task.component) if task is not None else (None, None)

    def _seal_key(self, project: Project) -> bytes:
        return model_seal_key(project.id, self._projects.token_for(project.id))

    def _record(self, caller: Caller, action: str, project: Project, allowed: bool, reason: str) -> None:
        self._audit.record(
            actor=caller.name, action=action, allowed=allowed, project=project.id, reason=reason
        )
