"""Table models of a node's metadata database: parties, datasets, projects, jobs, tasks, artifacts, audit.

They are plain sqlmodel tables, kept small on purpose so later work can add fields; every timestamp is stored
and returned as a timezone-aware UTC datetime, whatever the database backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

ARTIFACT_KINDS = ("table", "model", "metrics", "bytes")
METADATA = SQLModel.metadata


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime column that refuses naive datetimes and gives back aware UTC ones (SQLite included)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value!r} given: use a timezone-aware one, e.g. datetime.now(UTC)"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json_column() -> Any:
    return Column(JSON, nullable=False)


class Party(SQLModel, table=True):
    """A known party (this node itself when `is_self`), with its address and certificate fingerprint."""

    __tablename__ = "party"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    address: str = ""
    cert_fingerprint: str = ""
    is_self: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Dataset(SQLModel, table=True):
    """A registered table: its roles (id, label, features) and the content-addressed parquet file."""

    __tablename__ = "dataset"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    owner: str = "local"
    shared_with: list[str] = Field(default_factory=list, sa_column=_json_column())
    id_column: str
    label_column: str | None = None
    features: list[str] = Field(default_factory=list, sa_column=_json_column())
    dtypes: dict[str, str] = Field(default_factory=dict, sa_column=_json_column())
    n_rows: int
    fingerprint: str
    path: str = Field(index=True)
    sha256: str
    size_bytes: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Project(SQLModel, table=True):
    """A collaboration between parties, as this node knows it; the id is the same on every member node.

    `datasets` maps each party to the datasets it authorised (name, fingerprint, row count, pinned at
    acceptance); `terms` holds the uses, quotas and PSI release policy every member agreed to. The token
    itself never enters the database: only its hash does.
    """

    __tablename__ = "project"

    id: str = Field(primary_key=True)
    name: str = Field(unique=True, index=True)
    purpose: str = ""
    initiator: str
    members: list[str] = Field(default_factory=list, sa_column=_json_column())
    accepted_by: list[str] = Field(default_factory=list, sa_column=_json_column())
    asks: dict[str, str] = Field(default_factory=dict, sa_column=_json_column())
    datasets: dict[str, list[dict[str, Any]]] = Field(default_factory=dict, sa_column=_json_column())
    terms: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    local_members: list[str] = Field(default_factory=list, sa_column=_json_column())
    token_hash: str = ""
    state: str = "proposed"
    state_by: str = ""
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Amendment(SQLModel, table=True):
    """A member's proposal to add datasets to an active project; the project is unchanged until every member
    accepted it. `datasets` are the proposer's additions as pinned (name, fingerprint, row count), `max_psi_rows`
    its PSI cap as the amendment would set it. The same id on every member node.
    """

    __tablename__ = "amendment"

    id: str = Field(primary_key=True)
    project: str = Field(index=True)
    proposed_by: str
    datasets: list[dict[str, Any]] = Field(default_factory=list, sa_column=_json_column())
    max_psi_rows: int = 0
    accepted_by: list[str] = Field(default_factory=list, sa_column=_json_column())
    state: str = "pending"
    state_by: str = ""
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    """A person (or service) using this node through the control API, with one role and a token hash."""

    __tablename__ = "user"

    name: str = Field(primary_key=True)
    role: str
    token_hash: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Job(SQLModel, table=True):
    """One run of a pipeline inside a project."""

    __tablename__ = "job"

    id: str = Field(primary_key=True)
    project: str = Field(index=True)
    name: str = ""
    use: str = ""
    initiator: str = ""
    datasets: dict[str, list[str]] = Field(default_factory=dict, sa_column=_json_column())
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    state: str = "pending"
    error: str | None = None
    error_code: str | None = None
    """The code of the error class that failed the job (ours or the partner's), for the kernel to raise."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Task(SQLModel, table=True):
    """One component of a job as run by one party in one role."""

    __tablename__ = "task"

    id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    step: str = ""
    step_key: str = Field(default="", index=True)
    component: str
    role: str
    party: str
    state: str = "pending"
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    error_code: str | None = None
    """The code of the error class that failed this task (see `Job.error_code`)."""
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Artifact(SQLModel, table=True):
    """A file produced by a task (table, model, metrics or raw bytes), stored under the artifact root."""

    __tablename__ = "artifact"
    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in ARTIFACT_KINDS) + ")", name="artifact_kind"
        ),
    )

    key: str = Field(primary_key=True)
    project: str = Field(index=True)
    job_id: str | None = Field(default=None, index=True)
    task_id: str | None = None
    name: str
    kind: str = "bytes"
    path: str = Field(index=True)
    sha256: str
    size_bytes: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Metric(SQLModel, table=True):
    """One value of a metric logged by a step (`ctx.metrics.log`), for tables and live plots."""

    __tablename__ = "metric"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(index=True)
    step: str
    party: str
    name: str
    iteration: int | None = None
    value: float
    ts: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StepWarning(SQLModel, table=True):
    """A warning a step gave about its result (`ctx.warn`): the step succeeded, the warning is shown with it."""

    __tablename__ = "step_warning"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(index=True)
    step: str
    party: str
    message: str
    ts: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    """One decision about data use, chained to the previous event by hash so tampering shows."""

    __tablename__ = "audit_event"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str
    peer: str | None = None
    project: str | None = Field(default=None, index=True)
    action: str
    datasets: list[str] = Field(default_factory=list, sa_column=_json_column())
    allowed: bool
    reason: str = ""
    prev_hash: str = ""
    hash: str = ""
