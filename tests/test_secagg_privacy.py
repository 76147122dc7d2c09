"""What a secure-aggregation server sees: uniform masked vectors, masks only from 256-bit keys, and Shamir
shares that rebuild a secret from the threshold and not from one fewer."""

from __future__ import annotations

import numpy as np
import pytest
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives.ciphers import CipherContext
from scipy import stats

from fedbench.secagg import MaskKeyError, RoundAborted, RoundConfig, shamir, simulate_round
from fedbench.secagg import masks as masks_module
from fedbench.secagg.messages import MaskedInput


def test_masked_vectors_are_uniform_bytes_even_for_an_all_zero_update() -> None:
    length = 50_000
    run = simulate_round([np.zeros(length) for _ in range(4)])
    for message in run.view.vectors:
        assert isinstance(message, MaskedInput)
        counts = np.bincount(np.frombuffer(message.vector, dtype=np.uint8), minlength=256)
        assert stats.chisquare(counts).pvalue > 1e-6
    unmasked = np.bincount(run.config.quantizer.encode(np.zeros(length)).view(np.uint8), minlength=256)
    assert stats.chisquare(unmasked).pvalue < 1e-6


def test_every_mask_is_expanded_from_a_full_256_bit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    real = masks_module.keystream

    def recording(key: bytes) -> CipherContext:
        seen.append(key)
        return real(key)

    monkeypatch.setattr(masks_module, "keystream", recording)
    config = RoundConfig(tuple(range(8)), 16, degree=4, threshold=3)
    simulate_round([np.zeros(16) for _ in range(8)], config=config, dropped_after_shares={6})
    # 7 clients mask (seed + 4 pairwise each); the server expands 7 seeds and client 6's 4 pairwise masks.
    assert len(seen) == 7 * 5 + 7 + 4
    for key in seen:
        assert len(key) * 8 >= 256
        # A short seed padded to 32 bytes would show as zero bytes; a random key has next to none.
        assert key.count(0) < 8


@pytest.mark.parametrize("size", [4, 15, 16, 31])
def test_the_mask_function_refuses_keys_shorter_than_256_bits(size: int) -> None:
    with pytest.raises(MaskKeyError, match=f"a mask key has {size * 8} bits"):
        masks_module.expand(bytes(range(size)), 8, 32)


def test_threshold_shares_rebuild_a_secret_and_one_fewer_do_not() -> None:
    secret = bytes(range(100, 132))
    holders = list(range(10, 17))
    shares = shamir.split(secret, 4, holders)
    chosen = [shares[h] for h in (11, 13, 14, 16)]
    assert shamir.combine(chosen, 4, owner=0, what="seed") == secret
    with pytest.raises(RoundAborted, match="only 3 shares of client 0's seed arrived; 4 are needed"):
        shamir.combine(chosen[:3], 4, owner=0, what="seed")
    low = [(s.index, s.value[:16]) for s in chosen[:3]]
    high = [(s.index, s.value[16:]) for s in chosen[:3]]
    assert Shamir.combine(low) + Shamir.combine(high) != secret


def test_the_server_cannot_rebuild_a_seed_from_fewer_than_threshold_answers() -> None:
    config = RoundConfig(tuple(range(6)), 8, degree=5, threshold=4)
    with pytest.raises(RoundAborted, match="3 are needed|4 are needed"):
        simulate_round([np.ones(8) * 0.5 for _ in range(6)], config=config, dropped_after_masking={0, 1, 2})
