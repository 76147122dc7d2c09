"""The receiving side of the transport: messages that arrived from peers, waiting for `recv`.

Each message is filed under (sender party, key). Message ids make delivery exactly-once: a retried send whose
first attempt did arrive is acknowledged again but not delivered twice.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Any

from fedbench.errors import RecvTimeout, Refused

__all__ = ["Mailbox"]


class Mailbox:
    """Thread-safe store of received messages, bounded in pending bytes, with duplicate suppression."""

    def __init__(self, *, max_pending_bytes: int = 8 << 30, remember_ids: int = 200_000) -> None:
        self._lock = threading.Condition()
        self._queues: dict[tuple[str, str], deque[tuple[Any, int]]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pending_bytes = 0
        self._max_pending_bytes = max_pending_bytes
        self._remember_ids = remember_ids

    def seen(self, message_id: str) -> bool:
        """Whether a message with this id was already delivered."""
        with self._lock:
            return message_id in self._seen

    def reserve(self, size: int) -> None:
        """Refuse a message of `size` bytes up front when the pending messages would exceed the bound."""
        with self._lock:
            if self._pending_bytes + size > self._max_pending_bytes:
                raise Refused(
                    f"the receiver's mailbox is full ({self._pending_bytes} bytes waiting to be received); "
                    "retry once the receiving task has read its messages"
                )

    def put(self, sender: str, key: str, message_id: str, payload: Any, size: int) -> bool:
        """File a message; returns False (and drops it) if this id was delivered before."""
        with self._lock:
            if message_id in self._seen:
                return False
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
        with self._lock:
            while True:
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

    def pending(self) -> dict[tuple[str, str], int]:
        """How many messages wait under each (sender, key): for status pages and tests."""
        with self._lock:
            return {k: len(q) for k, q in self._queues.items()}
