"""The arbiter gate of ECDH-PSI: the project's arbiter counts the intersection, so no counting side exists.

Under `count_only` or a `min_intersection`, a side that gets its own doubly-masked values back can run
modified code and find which of its IDs matched (docs/protocols/psi.md). When the project has an arbiter
(a member that brings no data), guest and host instead raise the peer's values to their own secret as usual,
shuffle them with a fresh permutation and stream them to the arbiter only; the arbiter checks each list has
the size the *other* party declared to it, counts the distinct values present in both, and tells both parties
the count. Nothing computed from a party's own values comes back to it before the count is settled, and the
arbiter sees only doubly-masked values (pseudorandom, fresh per run), the two sizes and the count.

`ArbiterLink` is a data party's side (the PSI session calls it where it would otherwise return values to its
peer); `count_for_parties` is the arbiter's side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedbench.federation import Channel
from fedbench.psi import group
from fedbench.psi import release as policy
from fedbench.psi.errors import PsiRefused
from fedbench.psi.protocol import _permutation, _SortedValues, _Stream, is_element_chunk

__all__ = ["DATA_ROLES", "ArbiterCount", "ArbiterLink", "count_for_parties", "gate_applies"]

GATE_VERSION = 1
"""The version of the messages between a data party and the arbiter."""
DATA_ROLES = ("guest", "host")
"""The two parties whose IDs are intersected; the arbiter talks to each on its own channel."""


def gate_applies(release: str, min_intersection: int) -> bool:
    """Whether a PSI in a project with an arbiter is counted by the arbiter: when the policy withholds rows
    (`count_only`) or a minimum applies; `both` with no minimum keeps the two-party protocol."""
    return not policy.releases_rows(release) or min_intersection > 0


class ArbiterLink:
    """A data party's channel to the arbiter: declare our sizes, stream the peer's doubly-masked values
    shuffled, receive the count (checked against the sizes we know)."""

    def __init__(self, channel: Channel, role: str) -> None:
        if role not in DATA_ROLES:
            raise PsiRefused(f"only {DATA_ROLES} send values to the arbiter, not {role!r}")
        self.channel = channel
        self.role = role
        self.peer_role = DATA_ROLES[1 - DATA_ROLES.index(role)]
        self._stream = _Stream(channel)

    @property
    def party(self) -> str:
        """The arbiter's party name (both data parties must name the same one)."""
        return self.channel.peer

    def hello(self, *, release: str, min_intersection: int, size: int, peer_size: int) -> None:
        """Tell the arbiter the policy, our own minimum, our declared size and the size the peer declared."""
        self._stream.send(
            {
                "t": "hello",
                "v": GATE_VERSION,
                "group": group.GROUP,
                "role": self.role,
                "release": release,
                "min_intersection": min_intersection,
                "size": size,
                "peer_size": peer_size,
            }
        )

    def count(self, peer_doubled: np.ndarray[Any, np.dtype[np.uint8]], *, size: int, chunk: int) -> int:
        """Send the peer's values raised to our secret, in a fresh secret order, then take the arbiter's count."""
        order = _permutation(len(peer_doubled))
        for start in range(0, len(order), chunk):
            self._stream.send({"t": "values", "data": peer_doubled[order[start : start + chunk]]})
        self._stream.send({"t": "end", "n": len(peer_doubled)})
        answer = self._stream.recv("count")
        count, sizes = answer.get("count"), answer.get("sizes")
        peer_size = len(peer_doubled)
        if sizes != {self.role: size, self.peer_role: peer_size}:
            raise PsiRefused(
                f"the arbiter {self.party!r} counted sets of sizes {sizes!r}, but {self.role} has {size:,} IDs and "
                f"{self.peer_role} declared {peer_size:,}: the runs are inconsistent"
            )
        if type(count) is not int or not 0 <= count <= min(size, peer_size):
            raise PsiRefused(f"the arbiter {self.party!r} reported an impossible intersection size {count!r}")
        return count


@dataclass(frozen=True)
class ArbiterCount:
    """What the arbiter learned: each data party's declared size and the intersection size it counted."""

    release: str
    min_intersection: int
    sizes: dict[str, int]
    intersection_size: int

    def metrics(self) -> dict[str, Any]:
        """Plain JSON-ready values for the arbiter's own record of the run."""
        return {
            "role": "arbiter",
            "release": self.release,
            "min_intersection": self.min_intersection,
            "size_guest": self.sizes["guest"],
            "size_host": self.sizes["host"],
            "intersection_size": self.intersection_size,
        }


def count_for_parties(
    channels: Mapping[str, Channel],
    *,
    release: str,
    min_intersection: int,
    max_rows: Mapping[str, int | None],
    progress: Callable[[float, str], None] | None = None,
) -> ArbiterCount:
    """The arbiter's side: check both hellos against our own terms, take both lists, count, tell both.

    `channels` maps "guest" and "host" to their channels; `release` and `min_intersection` are what our own
    records say the run uses; `max_rows` is the cap our terms hold for each role's party. Raises PsiRefused
    (and tells both parties) on any deviation: a size over its cap, sizes the two parties declare differently,
    a list longer or shorter than the other party declared, a malformed message.
    """
    streams = {role: _Stream(channels[role]) for role in DATA_ROLES}
    report = progress or (lambda fraction, message: None)
    try:
        report(0.0, "waiting for the parties' sizes")
        hellos = {role: streams[role].recv("hello") for role in DATA_ROLES}
        sizes = _check_hellos(hellos, release, min_intersection, max_rows, streams)
        report(0.1, f"receiving {sizes['host']:,} values from the guest")
        reference = _SortedValues(_receive_list(streams["guest"], sizes["host"], "host"))
        report(0.5, f"matching {sizes['guest']:,} values from the host")
        count = _count_matches(streams["host"], sizes["guest"], "guest", reference)
        del reference
        for stream in streams.values():
            stream.send({"t": "count", "count": count, "sizes": dict(sizes)})
        report(1.0, f"intersection: {count}")
        return ArbiterCount(release, min_intersection, sizes, count)
    except BaseException as exc:
        for channel in channels.values():
            channel.fail(exc)
        raise


def _check_hellos(
    hellos: Mapping[str, dict[str, Any]],
    release: str,
    min_intersection: int,
    max_rows: Mapping[str, int | None],
    streams: Mapping[str, _Stream],
) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for role, hello in hellos.items():
        party = streams[role].peer
        if hello.get("v") != GATE_VERSION or hello.get("group") != group.GROUP:
            raise PsiRefused(
                f"{party!r} runs the arbiter count v{hello.get('v')!r} on {hello.get('group')!r}; the arbiter "
                f"runs v{GATE_VERSION} on {group.GROUP}"
            )
        if hello.get("role") != role:
            raise PsiRefused(f"{party!r} plays {role!r} in this job but says it is {hello.get('role')!r}")
        if hello.get("release") != release or hello.get("min_intersection") != min_intersection:
            raise PsiRefused(
                f"{party!r} runs release {hello.get('release')!r} with min_intersection "
                f"{hello.get('min_intersection')!r}; the arbiter's terms say {release!r} and {min_intersection}"
            )
        size, peer_size = hello.get("size"), hello.get("peer_size")
        if type(size) is not int or size < 0 or type(peer_size) is not int or peer_size < 0:
            raise PsiRefused(f"{party!r} declared a malformed size to the arbiter")
        cap = max_rows.get(role)
        if cap is None or size > cap:
            raise PsiRefused(
                f"{party!r} declared {size:,} rows to the arbiter, more than the "
                f"{'(unset)' if cap is None else f'{cap:,}'} rows the project's terms allow it (max_psi_rows)"
            )
        sizes[role] = size
    for role in DATA_ROLES:
        other = DATA_ROLES[1 - DATA_ROLES.index(role)]
        if hellos[role]["peer_size"] != sizes[other]:
            raise PsiRefused(
                f"{streams[role].peer!r} says {streams[other].peer!r} declared {hellos[role]['peer_size']:,} IDs, "
                f"but {streams[other].peer!r} declared {sizes[other]:,} to the arbiter: the parties disagree"
            )
    return sizes


def _chunks(stream: _Stream, expected: int, owner: str) -> Any:
    """The value chunks `stream`'s party sends, exactly `expected` of them in all (the size `owner` declared)."""
    received = 0
    while True:
        message = stream.channel.recv_message()
        if message.error is not None:
            stream.raise_error(message.error)
        content = message.content
        kind = content.get("t") if isinstance(content, dict) else None
        if kind == "end":
            if received != expected:
                raise PsiRefused(
                    f"{stream.peer!r} sent {received:,} values, but {owner!r} declared {expected:,} IDs: "
                    "a list must hold exactly one value per ID of the other party"
                )
            return
        if kind != "values":
            raise PsiRefused(
                f"expected values from {stream.peer!r}, got {kind!r}: the party left the protocol"
            )
        data = content.get("data")
        if not is_element_chunk(data):
            raise PsiRefused(f"{stream.peer!r} sent a malformed chunk of values to the arbiter")
        if received + data.shape[0] > expected:
            raise PsiRefused(
                f"{stream.peer!r} sent more values than {owner!r} declared IDs ({received + data.shape[0]:,} > "
                f"{expected:,}): the run stops here"
            )
        received += data.shape[0]
        yield data


def _receive_list(stream: _Stream, expected: int, owner: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
    out = np.empty((expected, group.ELEMENT_BYTES), dtype=np.uint8)
    position = 0
    for data in _chunks(stream, expected, owner):
        out[position : position + len(data)] = data
        position += len(data)
    return out


def _count_matches(stream: _Stream, expected: int, owner: str, reference: _SortedValues) -> int:
    """How many distinct values of the streamed list are in `reference` (a repeated value counts once)."""
    hits = [data[reference.contains(data)] for data in _chunks(stream, expected, owner)]
    found = np.concatenate(hits) if hits else np.empty((0, group.ELEMENT_BYTES), dtype=np.uint8)
    return int(len(np.unique(found, axis=0))) if len(found) else 0
