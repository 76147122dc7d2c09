"""The heartbeat: while a job runs here, its other parties are pinged; one that stops answering is reported lost.

Without it, a party whose node died (killed, machine gone, network cut) is noticed only when a message to or
from it times out, minutes later. Each watched peer gets one thread that pings it every `interval` seconds over
the federation channel (mutual TLS, the same channel as the job's messages). The ping is answered by the peer
node's gRPC server, not by its worker, so a peer busy with a heavy step still answers at once. A peer is
declared lost only when `misses` pings in a row got no answer AND nothing was heard from it for `patience`
seconds; then every job watching it is told once (`on_lost(party, seconds silent)`) and stops watching.
After a missed ping the next one comes after half an interval, so a dead peer is declared soon after
`patience` has passed (4 to 6 s after it died, with the defaults).
Any answer counts as heard, even a refusal: only silence (unreachable, no answer in time) is a miss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fedbench.errors import FedbenchError, PeerUnavailable

__all__ = ["MISSES", "PATIENCE", "PING_INTERVAL", "PING_TIMEOUT", "Heartbeat", "LostCallback", "Ping"]

PING_INTERVAL = 2.0
"""Seconds between two pings of one peer."""
PING_TIMEOUT = 2.0
"""Seconds a ping may take; the peer's gRPC server answers in milliseconds even while its worker is busy."""
PATIENCE = 6.0
"""Seconds without an answer after which a peer is lost (with `MISSES` missed pings in a row)."""
MISSES = 3
"""Missed pings in a row needed as well: a heartbeat thread that was starved of CPU declares nobody lost."""

Ping = Callable[[str, float], Any]
"""(party, timeout) -> anything; raises `PeerUnavailable` when the party did not answer."""
LostCallback = Callable[[str, float], None]
"""Called with the lost party and how many seconds it has been silent."""

log = logging.getLogger("fedbench.heartbeat")


@dataclass
class _Watch:
    """One job's interest in one peer, since `since` (a job never counts silence from before it started)."""

    on_lost: LostCallback
    since: float


@dataclass
class _Peer:
    """What the heartbeat knows of one peer: the jobs watching it, when it last answered, misses in a row."""

    last_heard: float
    watches: dict[str, _Watch] = field(default_factory=dict)
    missed: int = 0


class Heartbeat:
    """Pings the peers of the jobs running on this node and reports the ones that stop answering."""

    def __init__(
        self,
        ping: Ping,
        *,
        interval: float = PING_INTERVAL,
        timeout: float = PING_TIMEOUT,
        patience: float = PATIENCE,
        misses: int = MISSES,
    ) -> None:
        self._ping = ping
        self.interval, self.timeout, self.patience, self.misses = interval, timeout, patience, misses
        self._peers: dict[str, _Peer] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def watch(self, job_id: str, parties: Iterable[str], on_lost: LostCallback) -> None:
        """Watch `parties` for job `job_id` until `unwatch(job_id)`; `on_lost` is called at most once per party."""
        now = time.monotonic()
        with self._lock:
            for party in parties:
                peer = self._peers.get(party)
                if peer is None:
                    peer = self._peers[party] = _Peer(last_heard=now)
                    threading.Thread(
                        target=self._beat, args=(party, peer), name=f"heartbeat-{party}", daemon=True
                    ).start()
                peer.watches[job_id] = _Watch(on_lost, now)

    def unwatch(self, job_id: str) -> None:
        """Stop watching for `job_id` (a peer no job watches is no longer pinged)."""
        with self._lock:
            for peer in self._peers.values():
                peer.watches.pop(job_id, None)

    def close(self) -> None:
        """Stop every heartbeat thread (the node is stopping)."""
        self._closed.set()

    def _beat(self, party: str, peer: _Peer) -> None:
        """One peer's thread: ping, account, report lost jobs; ends when no job watches the peer any more."""
        while not self._closed.is_set():
            with self._lock:
                if not peer.watches:
                    if self._peers.get(party) is peer:
                        del self._peers[party]
                    return
            started = time.monotonic()
            answered = self._probe(party)
            lost = self._account(party, peer, answered)
            for on_lost, silent in lost:
                try:
                    on_lost(party, silent)
                except Exception:  # one job's handler must not stop the heartbeat of the others
                    log.exception("handling the loss of %s failed", party)
            # after a miss, ping twice as often: a lost peer is then declared close to `patience` after it was
            # last heard, rather than up to a whole interval later
            pause = self.interval if answered is not False else self.interval / 2
            self._closed.wait(max(0.0, pause - (time.monotonic() - started)))

    def _probe(self, party: str) -> bool | None:
        """True if `party` answered (anything, even a refusal), False if silent, None if we cannot tell."""
        try:
            self._ping(party, self.timeout)
        except PeerUnavailable as exc:
            log.debug("heartbeat: %s did not answer: %s", party, exc.detail or exc)
            return False
        except FedbenchError as exc:
            log.debug("heartbeat: %s answered with an error: %s", party, exc)
            return True
        except Exception as exc:  # e.g. our own channel closed while the node stops: no evidence either way
            log.debug("heartbeat: could not ping %s: %s: %s", party, type(exc).__name__, exc)
            return None
        return True

    def _account(self, party: str, peer: _Peer, answered: bool | None) -> list[tuple[LostCallback, float]]:
        """Record one probe; return the (callback, seconds silent) of each job that has now lost `party`."""
        now = time.monotonic()
        lost: list[tuple[LostCallback, float]] = []
        with self._lock:
            if answered:
                peer.last_heard, peer.missed = now, 0
                return lost
            if answered is None:
                return lost
            peer.missed += 1
            if peer.missed < self.misses:
                return lost
            for job_id, watch in list(peer.watches.items()):
                silent = now - max(peer.last_heard, watch.since)
                if silent >= self.patience:
                    del peer.watches[job_id]
                    lost.append((watch.on_lost, silent))
        if lost:
            log.warning("%s stopped answering (last heard %.0f s ago)", party, now - peer.last_heard)
        return lost
