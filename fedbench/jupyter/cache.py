"""`Snapshots`: each sidebar endpoint's answer, kept for a second and tagged with an ETag.

The sidebar polls; however many panels are open, each endpoint asks the node at most once a second: a request
within a second of the last answer gets that answer, and concurrent requests for a stale one wait for the one
refresh under way instead of starting their own. The ETag (a hash of the answer) lets a panel whose copy is
current get a bodiless 304.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_AGE", "Snapshot", "Snapshots", "etag_of"]

MAX_AGE = 1.0
"""Seconds an answer is served before the node is asked again."""


def etag_of(body: bytes) -> str:
    """The strong ETag of an answer's bytes."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class Snapshot:
    """One endpoint's answer as JSON bytes, its ETag and when it was read (monotonic seconds)."""

    body: bytes
    etag: str
    taken: float


class Snapshots:
    """The latest answer of each endpoint (a key such as `projects` or `runs/<project>`), refreshed at most
    once per `max_age` seconds by running its blocking reader in a worker thread."""

    def __init__(self, max_age: float = MAX_AGE) -> None:
        self.max_age = max_age
        self._kept: dict[str, Snapshot] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, read: Callable[[], Any]) -> Snapshot:
        """The answer of `key`, read again with `read()` only if the kept one is older than `max_age`."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            kept = self._kept.get(key)
            if kept is not None and time.monotonic() - kept.taken < self.max_age:
                return kept
            value = await asyncio.get_running_loop().run_in_executor(None, read)
            body = json.dumps(value, sort_keys=True).encode()
            snapshot = Snapshot(body, etag_of(body), time.monotonic())
            self._kept[key] = snapshot
            return snapshot

    def forget(self, *prefixes: str) -> None:
        """Drop the kept answers whose key starts with one of `prefixes` (after a change: accept, cancel)."""
        for key in [k for k in self._kept if k.startswith(prefixes)]:
            del self._kept[key]
