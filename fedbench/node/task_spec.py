"""`TaskSpec`: what a node hands a worker process to run one party's side of one step (a typed record).

The node builds it in `JobService._run_step` from the job's spec and its own store; the worker
(`worker.run_task`) reads nothing else. It is a frozen dataclass of plain values, so it crosses the process
boundary pickled as it is, and it imports nothing heavy (a warm worker unpickles it before its step's imports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TaskInput", "TaskSpec"]


@dataclass(frozen=True)
class TaskInput:
    """Where one input of the step is on this node: a table (parquet file) or a stored value, by its path."""

    kind: str
    path: str


@dataclass(frozen=True)
class TaskSpec:
    """One party's task of one step: which component and role, its params, its inputs, and the node's settings.

    `send_deadline` bounds how long a send to a peer retries; `recv_timeout` how long a receive waits (both in
    seconds, from the node's configuration).
    """

    home: str
    project: str
    job_id: str
    step: str
    component: str
    role: str
    roles: Mapping[str, list[str]]
    params: Mapping[str, Any]
    inputs: Mapping[str, TaskInput]
    project_info: Mapping[str, Any] = field(default_factory=dict)
    send_deadline: float = 120.0
    recv_timeout: float = 600.0
