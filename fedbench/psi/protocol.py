"""ECDH-PSI between two parties over a `Transport`, with a release policy that decides who learns which rows.

Both parties call `run_psi` with complementary roles (one "initiator", one "partner"). Each hashes its IDs into
the group with the project's domain key and raises them to a fresh secret scalar; doubly-masked values are
equal exactly when the IDs are. Only a side entitled by the release policy gets back its own doubly-masked
values, and only in an order shuffled by the peer; the peer sends the un-shuffling permutation only when the
intersection reaches `min_intersection`. Every message from one party to the other travels on one federation
`Channel` (one key, FIFO), so a failure can replace whatever the peer awaits with an error record
``{"error": code, "reason": ...}``; waits are sliced, so a cancelled side stops within about a second.
With an `arbiter` (a project's arbiter, `arbiter_count.py`) each side sends the peer's doubly-masked values to
the arbiter instead, which counts; rows are exchanged as above only when the policy releases some and the
count reaches the minimum. The message flow, what each side sees and the leakage are in docs/protocols/psi.md.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeGuard, TypeVar

import numpy as np

from fedbench import compute
from fedbench.compute import ComputeError
from fedbench.federation import Channel
from fedbench.net.transport import Transport
from fedbench.psi import group
from fedbench.psi import release as policy
from fedbench.psi.errors import PsiError, PsiPeerError, PsiRefused

if TYPE_CHECKING:
    from fedbench.federation.errors import ErrorRecord
    from fedbench.psi.arbiter_count import ArbiterLink

__all__ = [
    "DEFAULT_CHUNK",
    "INLINE_BELOW",
    "RELEASES",
    "ROLES",
    "ProgressFn",
    "PsiResult",
    "run_psi",
    "run_psi_on",
]

RELEASES = policy.RELEASES
ROLES = policy.SIDES
DEFAULT_CHUNK = 1 << 16
"""Elements per message (2 MiB of 32-byte values)."""
INLINE_BELOW = 20_000
"""Below this many elements (both sides together) the group operations run in this process."""

ProgressFn = Callable[[float, str], None]

_VERSION = 2
"""v2: the hello names the arbiter that counts (None: the parties count, as in v1)."""
_MIN_TASK = 2048
_MAX_TASK = 16384
"""Elements per worker task: about 0.4 s of work, so that no worker idles long at the end of a phase."""


def _learners(release: str) -> frozenset[str]:
    """The roles that get back their own doubly-masked values (shuffled) and count the intersection: those the
    release gives rows to, or the initiator alone when it gives rows to nobody."""
    return policy.receivers(release) or frozenset({"initiator"})


T = TypeVar("T")


@dataclass(frozen=True)
class PsiResult:
    """What one party learned: `indices` into its own `ids` (None if not entitled or not released; aligned
    across parties under "both", else ascending); `released`: rows went to the entitled side(s); `refusal`:
    why not, when the intersection was under `min_intersection`."""

    role: str
    release: str
    size_self: int
    size_peer: int
    intersection_size: int
    indices: np.ndarray[Any, np.dtype[np.int64]] | None
    released: bool
    entitled: bool
    refusal: str | None = None
    min_intersection: int = 0
    seconds: float = field(default=0.0, compare=False)
    count_from_peer: bool = False
    """The intersection size is the peer's report (this side did not count): true only for the side that does
    not get its own values back (the partner under `count_only`, the side not entitled under `initiator` or
    `partner`); a peer running modified code can report any size up to the smaller set's."""
    count_from_arbiter: bool = False
    """The intersection size is the project's arbiter's count (the arbiter gate, `arbiter_count.py`); any count
    the parties made themselves afterwards had to agree with it."""

    def metrics(self) -> dict[str, Any]:
        """Sizes, intersection size and rates, as plain JSON-ready values."""
        size = self.intersection_size
        return {
            "role": self.role,
            "release": self.release,
            "size_self": self.size_self,
            "size_peer": self.size_peer,
            "intersection_size": size,
            "intersection_size_from": (
                "arbiter" if self.count_from_arbiter else "peer" if self.count_from_peer else "own count"
            ),
            "match_rate_self": size / self.size_self if self.size_self else 0.0,
            "match_rate_peer": size / self.size_peer if self.size_peer else 0.0,
            "released": self.released,
            "rows_received": None if self.indices is None else int(len(self.indices)),
            "min_intersection": self.min_intersection,
            "refusal": self.refusal,
            "seconds": round(self.seconds, 3),
        }


def run_psi(
    transport: Transport,
    *,
    role: str,
    peer: str,
    ids: Sequence[str],
    domain_key: bytes,
    key_prefix: str,
    release: str,
    min_intersection: int = 0,
    max_peer_rows: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 1800.0,
    is_cancelled: Callable[[], bool] | None = None,
    arbiter: ArbiterLink | None = None,
) -> PsiResult:
    """Run one side of ECDH-PSI with `peer` over `transport`, under the key `<key_prefix>/psi`.

    The same as `run_psi_on` on that channel (a node's steps get theirs from their context)."""
    if not isinstance(key_prefix, str) or not key_prefix:
        raise PsiError(f"key_prefix must be a non-empty str such as 'job/task', got {key_prefix!r}")
    channel = Channel(transport, peer, f"{key_prefix}/psi", timeout=timeout, is_cancelled=is_cancelled)
    return run_psi_on(
        channel,
        role=role,
        ids=ids,
        domain_key=domain_key,
        release=release,
        min_intersection=min_intersection,
        max_peer_rows=max_peer_rows,
        chunk_size=chunk_size,
        workers=workers,
        progress=progress,
        arbiter=arbiter,
    )


def run_psi_on(
    channel: Channel,
    *,
    role: str,
    ids: Sequence[str],
    domain_key: bytes,
    release: str,
    min_intersection: int = 0,
    max_peer_rows: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    arbiter: ArbiterLink | None = None,
) -> PsiResult:
    """Run one side of ECDH-PSI on `channel` (its peer, key, timeout and cancellation); `ids` must be distinct
    strings (`prepare_ids`). With `arbiter` (the arbiter gate, `arbiter_count.py`) the arbiter counts the
    intersection before anything computed from a party's own values may return to it; the peer must name the
    same arbiter.

    Raises PsiRefused if either side refuses, PsiPeerError if the peer fails, PsiError otherwise, `Cancelled`
    if our task is cancelled; the peer is told in every case but the last (our node tells it of a cancel).
    The channel's timeout bounds the wait for any one message of the peer."""
    stream = _Stream(channel)
    try:
        ids = _check_arguments(role, release, ids, domain_key, min_intersection, max_peer_rows, chunk_size)
        if workers is not None and (type(workers) is not int or workers < 1):
            raise PsiError(f"workers must be a positive int or None, got {workers!r}")
        session = _Session(
            stream,
            role=role,
            ids=ids,
            domain_key=domain_key,
            release=release,
            min_intersection=min_intersection,
            max_peer_rows=max_peer_rows,
            chunk_size=chunk_size,
            workers=workers or os.cpu_count() or 1,
            progress=progress,
            arbiter=arbiter,
        )
        return session.run()
    except BaseException as exc:
        channel.fail(exc)
        if arbiter is not None:
            arbiter.channel.fail(exc)
        raise


def _check_arguments(
    role: str,
    release: str,
    ids: Sequence[str],
    domain_key: bytes,
    min_intersection: int,
    max_peer_rows: int | None,
    chunk_size: int,
) -> Sequence[str]:
    if role not in ROLES:
        raise PsiError(f"role must be one of {ROLES}, got {role!r}")
    if release not in RELEASES:
        raise PsiError(f"release must be one of {RELEASES}, got {release!r}")
    if not isinstance(domain_key, bytes) or not domain_key:
        raise PsiError("domain_key must be non-empty bytes (the project's PSI key)")
    if type(min_intersection) is not int or min_intersection < 0:
        raise PsiError(f"min_intersection must be an int >= 0, got {min_intersection!r}")
    if max_peer_rows is not None and (type(max_peer_rows) is not int or max_peer_rows < 0):
        raise PsiError(f"max_peer_rows must be an int >= 0 or None, got {max_peer_rows!r}")
    if type(chunk_size) is not int or chunk_size < 1:
        raise PsiError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not isinstance(ids, (list, tuple)):
        ids = list(ids)
    if not all(isinstance(value, str) for value in ids):
        raise PsiError("ids must all be str (use prepare_ids to build them from table columns)")
    duplicates = len(ids) - len(set(ids))
    if duplicates:
        raise PsiError(f"ids has {duplicates} duplicate values; use prepare_ids(..., duplicates='first')")
    return ids


class _Stream:
    """The PSI's view of its channel: messages tagged by kind `t`; a peer's error record becomes a PSI error."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.party = channel.party
        self.peer = channel.peer

    def send(self, message: dict[str, Any]) -> None:
        self.channel.send(message)

    def raise_error(self, error: ErrorRecord) -> NoReturn:
        """Raise the peer's error record as a PSI error: a refusal as `PsiRefused`, else `PsiPeerError`."""
        if error.is_refusal:
            raise PsiRefused(f"{self.peer!r} refused the PSI: {error.reason}")
        raise PsiPeerError(f"{self.peer!r} failed during the PSI: {error.reason}")

    def recv(self, kind: str) -> dict[str, Any]:
        received = self.channel.recv_message()
        if received.error is not None:
            self.raise_error(received.error)
        message = received.content
        if not isinstance(message, dict) or message.get("t") != kind:
            got = message.get("t") if isinstance(message, dict) else type(message).__name__
            raise PsiRefused(
                f"expected a {kind!r} message from {self.peer!r}, got {got!r}: the peer left the protocol"
            )
        return message


class _Session:
    """One party's run: handshake, mask and stream, return, count, release."""

    def __init__(
        self,
        channel: _Stream,
        *,
        role: str,
        ids: Sequence[str],
        domain_key: bytes,
        release: str,
        min_intersection: int,
        max_peer_rows: int | None,
        chunk_size: int,
        workers: int,
        progress: ProgressFn | None,
        arbiter: ArbiterLink | None = None,
    ) -> None:
        self.channel = channel
        self.arbiter = arbiter
        self.declared_min = min_intersection
        self.role = role
        self.peer_role = ROLES[1 - ROLES.index(role)]
        self.ids = ids
        self.n = len(ids)
        self.domain_key = domain_key
        self.release = release
        self.min_intersection = min_intersection
        self.max_peer_rows = max_peer_rows
        self.chunk = chunk_size
        self.workers = workers
        self._progress = progress
        self.n_peer = 0
        self.task = chunk_size
        self.done_units = 0
        self.where = ""
        """Where the masking runs, in progress messages, when it is the party's cluster."""

    def run(self) -> PsiResult:
        start = time.monotonic()
        self.report(0.0, "exchanging set sizes")
        self.handshake()
        backend = compute.current()
        if backend.distributed:
            workers = backend.cores
            self.where = f" on {backend.describe()}"
        else:
            workers = 1 if self.n + self.n_peer < INLINE_BELOW else self.workers
        balanced = math.ceil((self.n + self.n_peer) / (8 * workers))
        self.task = max(_MIN_TASK, min(self.chunk, _MAX_TASK, balanced))
        inflight = 2 * workers + 1
        order = _permutation(self.n)
        if self.arbiter is not None:
            self.arbiter.hello(
                release=self.release, min_intersection=self.declared_min, size=self.n, peer_size=self.n_peer
            )
        with group.MaskingPool(group.new_secret(), self.domain_key, workers, backend) as pool:
            self.send_own(pool, order, inflight)
            peer_doubled = self.mask_peer(pool, inflight)
        counted = None
        if self.arbiter is not None:
            self.report_phase(f"the arbiter {self.arbiter.party!r} counts the intersection")
            counted = self.arbiter.count(peer_doubled, size=self.n, chunk=self.chunk)
            if not policy.releases_rows(self.release) or counted < self.min_intersection:
                # the gate: nothing computed from our values returns, and under the minimum no x2 leaves
                del peer_doubled
                return self.result(counted, None, start, from_arbiter=True)
        self_learns = self.role in _learners(self.release)
        peer_learns = self.peer_role in _learners(self.release)
        shuffle = _permutation(self.n_peer) if peer_learns else None
        if shuffle is not None:
            self.report_phase("returning the peer's doubly-masked values")
            self.send_array("x2", peer_doubled, shuffle)
        match: np.ndarray[Any, np.dtype[np.bool_]] | None = None
        hit_values: np.ndarray[Any, np.dtype[np.uint8]] | None = None
        if self_learns:
            self.report_phase("receiving our doubly-masked values")
            match, hit_values = self.recv_and_match(_SortedValues(peer_doubled))
        del peer_doubled
        count = self.settle_count(None if match is None else int(match.sum()), self_learns, peer_learns)
        if counted is not None and count != counted:
            raise PsiRefused(
                f"the intersection counted by the parties ({count}) differs from the arbiter's count "
                f"({counted}): the runs are inconsistent"
            )
        released = policy.releases_rows(self.release) and count >= self.min_intersection
        indices = None
        if released and shuffle is not None and policy.receives_rows(self.release, self.peer_role):
            self.send_permutation(shuffle)
        if released and policy.receives_rows(self.release, self.role):
            assert match is not None and hit_values is not None
            theirs = self.recv_permutation(self.n)
            rows = order[theirs[np.flatnonzero(match)]].astype(np.int64)
            indices = rows[_value_order(hit_values)] if self.release == "both" else np.sort(rows)
        return self.result(count, indices, start, from_peer=not self_learns, from_arbiter=counted is not None)

    def result(
        self,
        count: int,
        indices: np.ndarray[Any, np.dtype[np.int64]] | None,
        start: float,
        *,
        from_peer: bool = False,
        from_arbiter: bool = False,
    ) -> PsiResult:
        """Our result for the intersection size `count`: released or refused under the policy's minimum."""
        released = policy.releases_rows(self.release) and count >= self.min_intersection
        refusal = None
        if policy.releases_rows(self.release) and not released:
            refusal = (
                f"the intersection has {count} rows, fewer than min_intersection={self.min_intersection}: "
                "no rows were released to either party"
            )
        self.report(1.0, "done")
        return PsiResult(
            role=self.role,
            release=self.release,
            size_self=self.n,
            size_peer=self.n_peer,
            intersection_size=count,
            indices=indices,
            released=released,
            entitled=policy.receives_rows(self.release, self.role),
            refusal=refusal,
            min_intersection=self.min_intersection,
            seconds=time.monotonic() - start,
            count_from_peer=from_peer and not from_arbiter,
            count_from_arbiter=from_arbiter,
        )

    def handshake(self) -> None:
        """Declare sizes and parameters; both sides check, then both say ok or send a refusal."""
        ours = {
            "t": "hello",
            "v": _VERSION,
            "group": group.GROUP,
            "role": self.role,
            "release": self.release,
            "min_intersection": self.min_intersection,
            "size": self.n,
            "key_check": _key_check(self.domain_key),
            "arbiter": None if self.arbiter is None else self.arbiter.party,
        }
        self.channel.send(ours)
        theirs = self.channel.recv("hello")
        problem = self.check_hello(theirs)
        if problem:
            raise PsiRefused(problem)
        self.n_peer = theirs["size"]
        self.min_intersection = max(self.min_intersection, theirs["min_intersection"])
        self.channel.send({"t": "ok"})
        self.channel.recv("ok")

    def check_hello(self, theirs: dict[str, Any]) -> str | None:
        party, peer = self.channel.party, self.channel.peer
        if theirs.get("v") != _VERSION or theirs.get("group") != group.GROUP:
            return (
                f"protocol versions differ: {party!r} runs v{_VERSION} on {group.GROUP}, "
                f"{peer!r} runs v{theirs.get('v')!r} on {theirs.get('group')!r}"
            )
        if theirs.get("role") != self.peer_role:
            return f"both parties call themselves {self.role!r}: one must be the initiator, one the partner"
        if theirs.get("release") != self.release:
            return (
                f"release policies differ: {party!r} runs {self.release!r}, "
                f"{peer!r} runs {theirs.get('release')!r}"
            )
        ours_counted, theirs_counted = (
            None if self.arbiter is None else self.arbiter.party,
            theirs.get("arbiter"),
        )
        if theirs_counted != ours_counted:
            return (
                f"the parties count the intersection differently: {party!r} "
                f"{_counted_by(ours_counted)}, {peer!r} {_counted_by(theirs_counted)}; both follow their own "
                "record of the project: a project with an arbiter has it count under count_only or a minimum"
            )
        if theirs.get("key_check") != _key_check(self.domain_key):
            return "the parties use different PSI domain keys (are they in the same project?)"
        size, least = theirs.get("size"), theirs.get("min_intersection")
        if type(size) is not int or size < 0 or type(least) is not int or least < 0:
            return f"{peer!r} declared a malformed size or min_intersection"
        if self.max_peer_rows is not None and size > self.max_peer_rows:
            return (
                f"{peer!r} declared {size:,} rows, more than the {self.max_peer_rows:,} rows that "
                f"{party!r} accepts from a peer (max_peer_rows)"
            )
        return None

    def send_own(self, pool: group.MaskingPool, order: np.ndarray[Any, Any], inflight: int) -> None:
        """Hash and mask our IDs in the order `order` (a secret shuffle), streaming them in chunks."""
        ids = self.ids

        def jobs() -> Iterator[list[str]]:
            for start in range(0, self.n, self.task):
                yield [ids[j] for j in order[start : start + self.task].tolist()]

        buffer: list[bytes] = []
        buffered = sent = 0
        for result in _ordered(pool.hash_mask, jobs(), inflight):
            buffer.append(result)
            buffered += len(result) // group.ELEMENT_BYTES
            if buffered >= self.chunk or sent + buffered == self.n:
                data = np.frombuffer(b"".join(buffer), dtype=np.uint8).reshape(-1, group.ELEMENT_BYTES)
                self.channel.send({"t": "x1", "data": data})
                sent += buffered
                self.advance(buffered, f"masked and sent {sent:,} of {self.n:,} own IDs{self.where}")
                buffer, buffered = [], 0

    def mask_peer(self, pool: group.MaskingPool, inflight: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Receive the peer's masked values and raise them to our secret, keeping the peer's order."""
        out = np.empty((self.n_peer, group.ELEMENT_BYTES), dtype=np.uint8)
        step = self.task * group.ELEMENT_BYTES

        def jobs() -> Iterator[bytes]:
            received = 0
            while received < self.n_peer:
                data = self.recv_chunk("x1", self.n_peer - received)
                received += len(data)
                raw = data.tobytes()
                for start in range(0, len(raw), step):
                    yield raw[start : start + step]

        position = 0
        for result in _ordered(pool.mask, jobs(), inflight):
            count = len(result) // group.ELEMENT_BYTES
            out[position : position + count] = np.frombuffer(result, dtype=np.uint8).reshape(count, -1)
            position += count
            self.advance(count, f"masked {position:,} of {self.n_peer:,} peer values{self.where}")
        return out

    def recv_chunk(self, kind: str, remaining: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """One chunk of values; more values than the peer declared (or than we sent) is a refusal."""
        data = self.channel.recv(kind).get("data")
        if not is_element_chunk(data):
            raise PsiRefused(
                f"{self.channel.peer!r} sent a malformed {kind!r} chunk: expected 1 to {remaining} values of "
                f"{group.ELEMENT_BYTES} bytes as a uint8 array"
            )
        if data.shape[0] > remaining:
            raise PsiRefused(
                f"{self.channel.peer!r} sent more {kind!r} values than it declared ({data.shape[0]:,} in one "
                f"chunk, {remaining:,} left of its declared size): the run stops here"
            )
        return data

    def recv_and_match(
        self, reference: _SortedValues
    ) -> tuple[np.ndarray[Any, np.dtype[np.bool_]], np.ndarray[Any, np.dtype[np.uint8]]]:
        """Stream our doubly-masked values back from the peer (in its shuffled order), marking those in
        `reference`; keeps only the matching values, needed to order the rows alike on both sides."""
        match = np.zeros(self.n, dtype=bool)
        hits = []
        position = 0
        while position < self.n:
            data = self.recv_chunk("x2", self.n - position)
            found = reference.contains(data)
            match[position : position + len(data)] = found
            hits.append(data[found])
            position += len(data)
        values = np.concatenate(hits) if hits else np.empty((0, group.ELEMENT_BYTES), dtype=np.uint8)
        return match, values

    def send_array(self, kind: str, values: np.ndarray[Any, Any], order: np.ndarray[Any, Any]) -> None:
        for start in range(0, len(order), self.chunk):
            self.channel.send({"t": kind, "data": values[order[start : start + self.chunk]]})

    def send_permutation(self, shuffle: np.ndarray[Any, Any]) -> None:
        for start in range(0, len(shuffle), self.chunk * 4):
            self.channel.send({"t": "perm", "data": shuffle[start : start + self.chunk * 4].astype("<i8")})

    def recv_permutation(self, total: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        out = np.empty(total, dtype=np.int64)
        position = 0
        while position < total:
            data = self.channel.recv("perm").get("data")
            if (
                not isinstance(data, np.ndarray)
                or data.dtype != np.dtype("<i8")
                or data.ndim != 1
                or not 1 <= len(data) <= total - position
            ):
                raise PsiRefused(f"{self.channel.peer!r} sent a malformed permutation chunk")
            out[position : position + len(data)] = data
            position += len(data)
        seen = np.zeros(total, dtype=bool)
        if total and out.min() >= 0 and out.max() < total:
            seen[out] = True
        if not seen.all():
            raise PsiRefused(f"{self.channel.peer!r} sent an order that is not a permutation of our values")
        return out

    def settle_count(self, count: int | None, self_learns: bool, peer_learns: bool) -> int:
        """Exchange the count: a counting side tells the other; when both count, they must agree."""
        if self_learns:
            self.channel.send({"t": "count", "count": count})
        if not peer_learns:
            assert count is not None
            return count
        theirs = self.channel.recv("count").get("count")
        if type(theirs) is not int or not 0 <= theirs <= min(self.n, self.n_peer):
            raise PsiRefused(f"{self.channel.peer!r} reported an impossible intersection size {theirs!r}")
        if count is not None and theirs != count:
            raise PsiRefused(
                f"the parties counted different intersections ({self.channel.party!r}: {count}, "
                f"{self.channel.peer!r}: {theirs}); the runs are inconsistent"
            )
        return theirs

    def advance(self, units: int, message: str) -> None:
        self.done_units += units
        total = max(1, self.n + self.n_peer)
        self.report(0.95 * self.done_units / total, message)

    def report_phase(self, message: str) -> None:
        self.report(0.95 * self.done_units / max(1, self.n + self.n_peer), message)

    def report(self, fraction: float, message: str) -> None:
        if self._progress is not None:
            self._progress(min(1.0, fraction), message)


def _counted_by(arbiter: object) -> str:
    return "counts itself" if arbiter is None else f"has the arbiter {arbiter!r} count"


def is_element_chunk(data: Any) -> TypeGuard[np.ndarray[Any, np.dtype[np.uint8]]]:
    """Whether a received chunk is what the protocol sends: a non-empty uint8 array of 32-byte group elements."""
    return (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == group.ELEMENT_BYTES
        and data.shape[0] >= 1
    )


def _key_check(domain_key: bytes) -> str:
    """A short fingerprint of the domain key, so parties of different projects refuse instead of not matching."""
    return hashlib.sha256(b"fedbench/psi/key-check/v1\x00" + domain_key).hexdigest()[:16]


def _permutation(n: int) -> np.ndarray[Any, Any]:
    """A uniformly random permutation of range(n) from the OS's cryptographic random source (uint32 when
    it fits, to halve what is kept)."""
    order = np.argsort(np.frombuffer(os.urandom(8 * n), dtype="<u8"), kind="stable")
    return order.astype(np.uint32) if n < 2**32 else order


def _ordered(submit: Callable[[T], group.Pending], jobs: Iterable[T], inflight: int) -> Iterator[bytes]:
    """The results of `submit(job)` in job order, with at most `inflight` jobs submitted and not yet taken."""
    pending: deque[group.Pending] = deque()
    for job in jobs:
        pending.append(submit(job))
        if len(pending) >= inflight:
            yield _result(pending.popleft())
    while pending:
        yield _result(pending.popleft())


def _result(future: group.Pending) -> bytes:
    try:
        return future.result()
    except ComputeError as exc:
        raise PsiError(str(exc)) from None


class _SortedValues:
    """A set of 32-byte values for membership tests: their 64-bit prefixes sorted (16 bytes a value with the
    order) over the values themselves; candidates are compared in full, and a slow path covers the rare
    values sharing a prefix."""

    def __init__(self, values: np.ndarray[Any, np.dtype[np.uint8]]) -> None:
        self.values = values
        prefix = _prefix(values)
        self.order = np.argsort(prefix)
        self.sorted_prefix = prefix[self.order]
        del prefix
        self.shared = bool(len(values) > 1 and (self.sorted_prefix[1:] == self.sorted_prefix[:-1]).any())

    def contains(self, values: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """For each row of `values`, whether it is in the set."""
        found = np.zeros(len(values), dtype=bool)
        size = len(self.sorted_prefix)
        if not len(values) or not size:
            return found
        prefix = _prefix(values)
        position = np.searchsorted(self.sorted_prefix, prefix)
        clipped = np.minimum(position, size - 1)
        hits = np.flatnonzero(self.sorted_prefix[clipped] == prefix)
        exact = (self.values[self.order[clipped[hits]]] == values[hits]).all(axis=1)
        found[hits[exact]] = True
        if self.shared:
            for row in hits[~exact].tolist():
                at = int(position[row]) + 1
                while at < size and self.sorted_prefix[at] == prefix[row]:
                    if (self.values[self.order[at]] == values[row]).all():
                        found[row] = True
                        break
                    at += 1
        return found


def _prefix(values: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    return np.ascontiguousarray(values[:, :8]).view("<u8").ravel()


def _value_order(values: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, np.dtype[np.intp]]:
    """An order of 32-byte values that both parties compute alike (lexicographic on four 64-bit words)."""
    words = np.ascontiguousarray(values).view("<u8")
    return np.lexsort((words[:, 3], words[:, 2], words[:, 1], words[:, 0]))
