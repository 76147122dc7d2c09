"""One client's side of a round: keys, encrypted shares to its neighbours, the masked vector, unmasking.

The client recomputes its neighbours from the round's configuration, masks only with neighbours it exchanged
shares with both ways (and says which, so the server can check that every pair agrees), and keeps the
consistency rule: it never gives the server a seed share and a key share of the same client, whatever the
server asks across requests, so a malicious server cannot unmask one client's vector.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Sequence

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedbench.secagg import keys, masks, shamir
from fedbench.secagg.config import RoundConfig
from fedbench.secagg.errors import RoundAborted, SecAggError, ShareRefused
from fedbench.secagg.messages import (
    NONCE_BYTES,
    SHARE_PLAINTEXT,
    SHARE_PLAINTEXT_BYTES,
    AdvertiseKeys,
    EncryptedShare,
    MaskedInput,
    UnmaskRequest,
    UnmaskResponse,
    Withdrawal,
)
from fedbench.secagg.shamir import SECRET_BYTES, Share


def share_aad(round_id: bytes, sender: int, recipient: int) -> bytes:
    """The associated data of a share ciphertext: the round and the direction, so none can be replayed."""
    return round_id + struct.pack(">QQ", sender, recipient)


class SecAggClient:
    """A client of one round. Methods are called once each, in stage order."""

    def __init__(self, client: int, config: RoundConfig) -> None:
        if client not in config.clients:
            raise SecAggError(f"client {client} is not in the round's client list")
        self.client = client
        self.config = config
        self.neighbours = config.neighbours(client)
        self._mask_pair = keys.generate()
        self._share_pair = keys.generate()
        self._seed = secrets.token_bytes(SECRET_BYTES)
        self._peers: dict[int, AdvertiseKeys] = {}
        self._held: dict[int, tuple[Share, Share]] = {}
        self._sent_to: frozenset[int] = frozenset()
        self._revealed_seed: set[int] = set()
        self._revealed_key: set[int] = set()

    def advertise(self) -> AdvertiseKeys:
        """Stage 1: the two public keys."""
        return AdvertiseKeys(self.client, self._mask_pair.public_bytes, self._share_pair.public_bytes)

    def share_keys(self, advertised: Sequence[AdvertiseKeys]) -> list[EncryptedShare]:
        """Stage 2: shares of b_u and of the mask private key, one sealed bundle per neighbour heard from."""
        peers = {m.client: m for m in advertised if m.client in self.neighbours and m.problem() is None}
        self._require(len(peers), "advertised keys")
        self._peers = peers
        holders = sorted(peers)
        self._sent_to = frozenset(holders)
        threshold = self.config.threshold
        seed_shares = shamir.split(self._seed, threshold, holders)
        key_shares = shamir.split(self._mask_pair.private_bytes, threshold, holders)
        out = []
        for peer in holders:
            key = keys.derive(
                self._share_pair,
                peers[peer].share_public,
                round_id=self.config.round_id,
                purpose=keys.SHARE_PURPOSE,
                a=self.client,
                b=peer,
            )
            seed_share, key_share = seed_shares[peer], key_shares[peer]
            plain = (
                SHARE_PLAINTEXT.pack(self.client, peer, seed_share.index) + seed_share.value + key_share.value
            )
            nonce = os.urandom(NONCE_BYTES)
            sealed = AESGCM(key).encrypt(nonce, plain, share_aad(self.config.round_id, self.client, peer))
            out.append(EncryptedShare(self.client, peer, nonce + sealed))
        return out

    def receive_shares(self, shares: Sequence[EncryptedShare]) -> None:
        """Stage 2, receiving: decrypt and keep each neighbour's bundle (a bundle that fails is ignored)."""
        for message in shares:
            if message.recipient != self.client or message.sender not in self._peers or message.problem():
                continue
            held = self._open(message)
            if held is not None:
                self._held[message.sender] = held
        self._require(len(self._held), "shares received")

    def masked_input(self, update: np.ndarray) -> MaskedInput | Withdrawal:
        """Stage 3: the quantized update plus its masks, or a withdrawal saying why the update is refused."""
        values = np.asarray(update)
        if values.size != self.config.length:
            return Withdrawal(
                self.client,
                f"its update has {values.size} values; the round's vectors have {self.config.length}",
            )
        try:
            encoded = self.config.quantizer.encode(values)
        except SecAggError as exc:
            return Withdrawal(self.client, str(exc))
        masks.apply(encoded, self._seed, 1)
        paired = frozenset(self._held) & self._sent_to
        for peer in sorted(paired):
            masks.apply(encoded, self._pairwise_key(peer), 1 if self.client < peer else -1)
        return MaskedInput(self.client, encoded.tobytes(), paired)

    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Stage 4: seed shares of survivors and key shares of the dropped; ShareRefused breaks the rule."""
        both = request.survivors & request.dropped
        if both:
            raise ShareRefused(
                f"client {self.client} refuses: the server lists client {min(both)} as both a survivor and "
                "dropped, which would reveal its seed and its mask key together"
            )
        if self.client not in request.survivors:
            raise ShareRefused(
                f"client {self.client} refuses: it sent its vector but is not listed as a survivor"
            )
        if len(request.survivors) < self.config.threshold:
            raise ShareRefused(
                f"client {self.client} refuses: {len(request.survivors)} survivors are fewer than the "
                f"threshold {self.config.threshold}"
            )
        seeds = request.survivors & set(self._held)
        dropped = request.dropped & set(self._held)
        crossed = (seeds & self._revealed_key) | (dropped & self._revealed_seed)
        if crossed:
            raise ShareRefused(
                f"client {self.client} refuses: it already gave the other kind of share of client "
                f"{min(crossed)}"
            )
        self._revealed_seed |= seeds
        self._revealed_key |= dropped
        return UnmaskResponse(
            self.client,
            seed_shares={owner: self._held[owner][0] for owner in seeds},
            key_shares={owner: self._held[owner][1] for owner in dropped},
        )

    def _pairwise_key(self, peer: int) -> bytes:
        return keys.derive(
            self._mask_pair,
            self._peers[peer].mask_public,
            round_id=self.config.round_id,
            purpose=keys.MASK_PURPOSE,
            a=self.client,
            b=peer,
        )

    def _open(self, message: EncryptedShare) -> tuple[Share, Share] | None:
        key = keys.derive(
            self._share_pair,
            self._peers[message.sender].share_public,
            round_id=self.config.round_id,
            purpose=keys.SHARE_PURPOSE,
            a=self.client,
            b=message.sender,
        )
        nonce, sealed = message.ciphertext[:NONCE_BYTES], message.ciphertext[NONCE_BYTES:]
        try:
            plain = AESGCM(key).decrypt(
                nonce, sealed, share_aad(self.config.round_id, message.sender, self.client)
            )
        except InvalidTag:
            return None
        if len(plain) != SHARE_PLAINTEXT_BYTES:
            return None
        sender, recipient, index = SHARE_PLAINTEXT.unpack_from(plain)
        if (sender, recipient) != (message.sender, self.client):
            return None
        body = plain[SHARE_PLAINTEXT.size :]
        return Share(index, body[:SECRET_BYTES]), Share(index, body[SECRET_BYTES:])

    def _require(self, count: int, what: str) -> None:
        if count < self.config.threshold:
            raise RoundAborted(
                f"client {self.client} has {what} from {count} of its {len(self.neighbours)} neighbours; "
                f"the round needs at least the threshold, {self.config.threshold}"
            )
