"""Jobs: pipelines run by the nodes (not the kernel), one worker process per step and party.

The initiator's node validates the pipeline, computes every step's cache key, has each member admit the job
(project checks and quotas, see `projects.py`) and learns which steps every member can reuse; then each node
runs its own side of the steps in order. A step reused on every party is not executed; a step that fails on
one party fails the job on all of them at once, with that party's reason.

The parts, by what they do: `spec` (the typed `JobSpec` and its wire form), `plan` (cache keys, roles, reuse,
input resolution), `admit` (submit, cancel and the peer-facing job messages), `run` (the runner thread, worker
supervision, stop and failure, the heartbeat hook), `events` (live events, job and task rows, logs),
`queries` (the read API); `service.JobService` composes them.
"""

from __future__ import annotations

from fedbench.node.jobs.events import TERMINAL
from fedbench.node.jobs.plan import ARBITER, default_roles, job_spec
from fedbench.node.jobs.service import JobService
from fedbench.node.jobs.spec import JobSpec, JobStep

_default_roles = default_roles
"""The old private name (tests import it)."""

__all__ = ["ARBITER", "TERMINAL", "JobService", "JobSpec", "JobStep", "default_roles", "job_spec"]
