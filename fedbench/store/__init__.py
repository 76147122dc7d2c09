"""Storage of a party node: the metadata database, the artifact files, and the dataset registry on top."""

from fedbench.store.artifacts import ArtifactFiles, StoredFile
from fedbench.store.database import Database, mask_url, sqlite_url
from fedbench.store.datasets import DatasetInfo, DatasetRegistry, table_fingerprint
from fedbench.store.models import (
    ARTIFACT_KINDS,
    Artifact,
    AuditEvent,
    Dataset,
    Job,
    Metric,
    Party,
    Project,
    Task,
    User,
    utcnow,
)
from fedbench.store.tables import read_table_source, table_from_parquet_bytes, table_to_parquet_bytes

__all__ = [
    "ARTIFACT_KINDS",
    "Artifact",
    "ArtifactFiles",
    "AuditEvent",
    "Database",
    "Dataset",
    "DatasetInfo",
    "DatasetRegistry",
    "Job",
    "Metric",
    "Party",
    "Project",
    "User",
    "StoredFile",
    "Task",
    "mask_url",
    "read_table_source",
    "sqlite_url",
    "table_fingerprint",
    "table_from_parquet_bytes",
    "table_to_parquet_bytes",
    "utcnow",
]
