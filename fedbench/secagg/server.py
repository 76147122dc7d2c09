"""The server's side of a round: it routes keys and shares, sums masked vectors and removes the masks.

It learns the sum of the survivors' quantized updates and nothing else of any single update: it rebuilds the
self-mask seed b_u of each survivor and the mask private key of each client that dropped out after sending
its shares, each from `threshold` shares held by that client's neighbours. A client whose message is
malformed (a vector of the wrong length, a bad key) is excluded with its reason and the round goes on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedbench.secagg import keys, masks, shamir
from fedbench.secagg.config import RoundConfig
from fedbench.secagg.errors import RoundAborted, SecAggError
from fedbench.secagg.messages import (
    AdvertiseKeys,
    EncryptedShare,
    MaskedInput,
    UnmaskRequest,
    UnmaskResponse,
    Withdrawal,
)


@dataclass(frozen=True)
class AggregateResult:
    """A round's outcome: the sum in Z_2^k (`fixed_sum`), decoded (`total`), and who counted or why not."""

    fixed_sum: np.ndarray
    total: np.ndarray
    survivors: frozenset[int]
    dropped: frozenset[int]
    excluded: dict[int, str] = field(default_factory=dict)
    ignored_answers: dict[int, str] = field(default_factory=dict)
    """Survivors whose unmasking answer was malformed or repeated (their vector still counts), and why."""

    @property
    def mean(self) -> np.ndarray:
        """The survivors' average update (FedAvg with equal weights)."""
        return self.total / max(len(self.survivors), 1)


class SecAggServer:
    """The aggregator of one round. Methods are called once each, in stage order."""

    def __init__(self, config: RoundConfig) -> None:
        self.config = config
        self.excluded: dict[int, str] = {}
        self._advertised: dict[int, AdvertiseKeys] = {}
        self._senders: frozenset[int] = frozenset()
        self._sum: np.ndarray | None = None
        self._request: UnmaskRequest | None = None
        self._pairs: dict[int, frozenset[int]] = {}

    def exclude(self, client: int, reason: str) -> None:
        """Leave `client` out of the round for `reason` (the first reason given is kept)."""
        self.excluded.setdefault(client, reason)

    def receive_keys(self, messages: Sequence[AdvertiseKeys]) -> dict[int, list[AdvertiseKeys]]:
        """Stage 1: keep well-formed, distinct advertisements; return each client's neighbours' ones."""
        seen: dict[int, AdvertiseKeys] = {}
        public_keys: set[bytes] = set()
        for message in messages:
            client = message.client
            if client not in self.config.clients:
                continue
            reason = message.problem()
            if client in seen:
                reason = "it advertised keys twice"
            elif reason is None and {message.mask_public, message.share_public} & public_keys:
                reason = "it advertised a public key another client already advertised"
            if reason is not None:
                self.exclude(client, f"client {client} at key advertisement: {reason}")
                seen.pop(client, None)
                continue
            seen[client] = message
            public_keys |= {message.mask_public, message.share_public}
        self._advertised = {c: m for c, m in seen.items() if c not in self.excluded}
        return {
            client: [
                self._advertised[p] for p in sorted(self.config.neighbours(client)) if p in self._advertised
            ]
            for client in self._advertised
        }

    def receive_shares(self, messages: Sequence[EncryptedShare]) -> dict[int, list[EncryptedShare]]:
        """Stage 2: route each client's encrypted bundles to its neighbours; the senders go on to stage 3."""
        routed: dict[int, list[EncryptedShare]] = defaultdict(list)
        senders: set[int] = set()
        for message in messages:
            sender = message.sender
            if sender not in self._advertised or sender in self.excluded:
                continue
            if message.recipient not in self.config.neighbours(sender):
                self.exclude(sender, f"client {sender} at share exchange: it sent a share to a non-neighbour")
                continue
            reason = message.problem()
            if reason is not None:
                self.exclude(sender, f"client {sender} at share exchange: {reason}")
                continue
            senders.add(sender)
        self._senders = frozenset(senders - set(self.excluded))
        for message in messages:
            if message.sender in self._senders and message.recipient in self._advertised:
                routed[message.recipient].append(message)
        return {client: routed.get(client, []) for client in self._advertised}

    def receive_masked(self, messages: Iterable[MaskedInput | Withdrawal]) -> UnmaskRequest:
        """Stage 3: sum the well-formed vectors of clients that sent shares; exclude others, with reasons."""
        dtype = masks.dtype_of(self.config.bits)
        total = np.zeros(self.config.length, dtype=dtype)
        survivors: set[int] = set()
        for message in messages:
            client = message.client
            if client not in self._senders or client in self.excluded:
                continue
            if isinstance(message, Withdrawal):
                self.exclude(client, f"client {client} withdrew: {message.reason}")
                continue
            reason = "it sent two vectors" if client in survivors else None
            reason = reason or message.problem(self.config.vector_bytes, self.config.bits)
            if reason is None and not message.masked_with <= self.config.neighbours(client) & self._senders:
                reason = "it names mask partners that are not neighbours who sent shares"
            if reason is not None:
                self.exclude(client, f"client {client} at masked input: {reason}")
                continue
            total += np.frombuffer(message.vector, dtype=dtype)
            survivors.add(client)
            self._pairs[client] = message.masked_with
        for client in [c for c in survivors if c in self.excluded]:
            raise SecAggError(f"client {client} was summed and excluded; the server's bookkeeping is wrong")
        if len(survivors) < self.config.threshold:
            raise RoundAborted(
                f"only {len(survivors)} clients sent a usable vector; the round needs {self.config.threshold}"
            )
        for client in sorted(survivors):
            for peer in sorted(self._pairs[client] & survivors):
                if client not in self._pairs[peer]:
                    raise RoundAborted(
                        f"clients {client} and {peer} disagree on their pairwise mask (one of them did not "
                        "get the other's shares), so their masks would not cancel; the round is abandoned"
                    )
        self._sum = total
        self._request = UnmaskRequest(frozenset(survivors), frozenset(self._senders - survivors))
        return self._request

    def finish(self, responses: Sequence[UnmaskResponse]) -> AggregateResult:
        """Stage 4: rebuild the seeds and dropped keys from the shares, remove every mask, decode the sum."""
        if self._sum is None or self._request is None:
            raise SecAggError("finish() was called before receive_masked()")
        request, config = self._request, self.config
        seed_shares: dict[int, list[shamir.Share]] = defaultdict(list)
        key_shares: dict[int, list[shamir.Share]] = defaultdict(list)
        answered: set[int] = set()
        ignored: dict[int, str] = {}
        for response in responses:
            if response.client not in request.survivors:
                continue
            reason = "it answered twice" if response.client in answered else response.problem(request)
            if reason is not None:
                ignored.setdefault(response.client, f"client {response.client} at unmasking: {reason}")
                continue
            answered.add(response.client)
            for owner, share in response.seed_shares.items():
                seed_shares[owner].append(share)
            for owner, share in response.key_shares.items():
                key_shares[owner].append(share)
        total = self._sum.copy()
        for owner in sorted(request.survivors):
            seed = shamir.combine(seed_shares[owner], config.threshold, owner=owner, what="self-mask seed")
            masks.apply(total, seed, -1)
        for owner in sorted(request.dropped):
            raw = shamir.combine(key_shares[owner], config.threshold, owner=owner, what="mask private key")
            pair = keys.from_private_bytes(raw)
            if pair.public_bytes != self._advertised[owner].mask_public:
                raise RoundAborted(
                    f"the shares of client {owner}'s mask key do not rebuild the key it advertised: "
                    "a neighbour sent a wrong share"
                )
            for peer in sorted(p for p in request.survivors if owner in self._pairs[p]):
                key = keys.derive(
                    pair,
                    self._advertised[peer].mask_public,
                    round_id=config.round_id,
                    purpose=keys.MASK_PURPOSE,
                    a=owner,
                    b=peer,
                )
                masks.apply(total, key, -1 if peer < owner else 1)
        return AggregateResult(
            fixed_sum=total,
            total=config.quantizer.decode(total),
            survivors=request.survivors,
            dropped=request.dropped,
            excluded=dict(self.excluded),
            ignored_answers=ignored,
        )
