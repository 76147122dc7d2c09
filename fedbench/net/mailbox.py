"""The receiving side of the transport: messages that arrived from peers, waiting for `recv`.

Each message is filed under (sender party, key), where a key is `job/task/tag` (`message_key`). Message ids
make delivery exactly-once: a retried send whose first attempt did arrive is acknowledged again but not
delivered twice. One bound covers both the messages waiting to be read and those still arriving (a push holds
its declared size from its first byte to its filing), so concurrent large pushes cannot pass it. When a job
ends, `close` drops its waiting messages and refuses any more for it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from fedbench.errors import RecvTimeout, Refused

__all__ = ["Mailbox", "job_of"]

Reclaim = Callable[[set[str]], Iterable[str]]
"""Given the jobs that have messages waiting, the ones that have ended (so their messages can go)."""


def job_of(key: str) -> str:
    """The job a message key belongs to: its first part."""
    return key.split("/", 1)[0]


class Mailbox:
    """Thread-safe store of received messages, bounded in pending and arriving bytes, with duplicate suppression."""

    def __init__(
        self,
        *,
        max_pending_bytes: int = 8 << 30,
        remember_ids: int = 200_000,
        remember_closed: int = 100_000,
        reclaim: Reclaim | None = None,
    ) -> None:
        self._lock = threading.Condition()
        self._queues: dict[tuple[str, str], deque[tuple[Any, int]]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._pending_bytes = 0
        self._arriving_bytes = 0
        self._max_pending_bytes = max_pending_bytes
        self._remember_ids = remember_ids
        self._remember_closed = remember_closed
        self._reclaim = reclaim
        self._readers: dict[str, int] = {}
        """How many `get` calls wait per job (a reader left waiting after its job ended would be a leak)."""

    def seen(self, message_id: str) -> bool:
        """Whether a message with this id was already delivered."""
        with self._lock:
            return message_id in self._seen

    def hold(self, size: int) -> _Hold:
        """Count `size` bytes of a message about to arrive against the bound (released when the hold ends).

        Refused when waiting plus arriving bytes would pass the bound, after dropping the messages of jobs
        that have ended (`reclaim`), so stale messages never block a running job.
        """
        if self._take(size):
            return _Hold(self, size)
        if self._reclaim is not None:
            with self._lock:
                waiting = {job_of(key) for _, key in self._queues}
            for job in self._reclaim(waiting):
                self.close(job)
            if self._take(size):
                return _Hold(self, size)
        with self._lock:
            waiting_bytes, arriving = self._pending_bytes, self._arriving_bytes
        raise Refused(
            f"the receiver's mailbox is full ({waiting_bytes} bytes waiting to be read, {arriving} arriving, "
            f"limit {self._max_pending_bytes}); a message of {size} bytes must wait until its tasks read theirs"
        )

    def _take(self, size: int) -> bool:
        with self._lock:
            if self._pending_bytes + self._arriving_bytes + size > self._max_pending_bytes:
                return False
            self._arriving_bytes += size
            return True

    def _release(self, size: int) -> None:
        with self._lock:
            self._arriving_bytes -= size

    def put(self, sender: str, key: str, message_id: str, payload: Any, size: int) -> bool:
        """File a message; returns False (and drops it) if this id was delivered before.

        Refused if its job has ended here (a push admitted just before its job ended).
        """
        with self._lock:
            if message_id in self._seen:
                return False
            job = job_of(key)
            if job in self._closed:
                raise Refused(f"job {job} has ended here: it takes no more messages")
            self._seen[message_id] = None
            while len(self._seen) > self._remember_ids:
                self._seen.popitem(last=False)
            self._queues.setdefault((sender, key), deque()).append((payload, size))
            self._pending_bytes += size
            self._lock.notify_all()
            return True

    def get(self, sender: str, key: str, timeout: float) -> Any:
        """Take the oldest message from `sender` under `key`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        job = job_of(key)
        with self._lock:
            self._readers[job] = self._readers.get(job, 0) + 1
            try:
                return self._wait_for(sender, key, job, deadline, timeout)
            finally:
                self._readers[job] -= 1
                if not self._readers[job]:
                    del self._readers[job]

    def _wait_for(self, sender: str, key: str, job: str, deadline: float, timeout: float) -> Any:
        """The body of `get`, under the lock."""
        while True:
            if job in self._closed:
                raise Refused(f"job {job} has ended here: its messages were dropped")
            queue = self._queues.get((sender, key))
            if queue:
                payload, size = queue.popleft()
                if not queue:
                    del self._queues[(sender, key)]
                self._pending_bytes -= size
                return payload
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RecvTimeout(
                    f"no message from {sender!r} under key {key!r} within {timeout:g} s; "
                    "check that the peer's step is running and uses the same key"
                )
            self._lock.wait(remaining)

    def close(self, job: str) -> None:
        """A job ended here: drop its waiting messages, refuse new ones, wake its waiting readers."""
        with self._lock:
            for queue_key in [k for k in self._queues if job_of(k[1]) == job]:
                self._pending_bytes -= sum(size for _, size in self._queues.pop(queue_key))
            self._closed[job] = None
            self._closed.move_to_end(job)
            while len(self._closed) > self._remember_closed:
                self._closed.popitem(last=False)
            self._lock.notify_all()

    def pending(self) -> dict[tuple[str, str], int]:
        """How many messages wait under each (sender, key): for status pages and tests."""
        with self._lock:
            return {k: len(q) for k, q in self._queues.items()}

    def usage(self) -> dict[str, Any]:
        """Bytes waiting and arriving against the bound, and messages waiting per job."""
        with self._lock:
            per_job: dict[str, int] = {}
            for (_, key), queue in self._queues.items():
                per_job[job_of(key)] = per_job.get(job_of(key), 0) + len(queue)
            return {
                "pending_bytes": self._pending_bytes,
                "arriving_bytes": self._arriving_bytes,
                "limit_bytes": self._max_pending_bytes,
                "messages": per_job,
                "readers": dict(self._readers),
            }


class _Hold:
    """Bytes of one arriving message counted against the mailbox bound until the push ends."""

    def __init__(self, mailbox: Mailbox, size: int) -> None:
        self._mailbox = mailbox
        self._size = size

    def __enter__(self) -> _Hold:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._mailbox._release(self._size)
