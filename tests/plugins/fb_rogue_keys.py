"""A rogue key owner: its node sends a malformed Paillier public key wherever a protocol sends ours.

Setting `key`: "even" (n + 1), "g" (g != n + 1), "small_factor" (n times a small prime, with a made-up
proof), "hs" (the honest key plus an obfuscation base n^2 - 1 for the peer to use).
"""

from __future__ import annotations

from typing import Any

from fb_rogue import rogue_setting

from fedbench.crypto.paillier import PublicKey

_honest_to_dict = PublicKey.to_dict


def _rogue_to_dict(self: PublicKey) -> dict[str, Any]:
    message = _honest_to_dict(self)
    n = message["n"]
    deviation = rogue_setting("key")
    if deviation == "even":
        message.update(n=n + 1, g=n + 2)
    elif deviation == "g":
        message.update(g=n + 3)
    elif deviation == "small_factor":
        message.update(n=n * 65521, g=n * 65521 + 1)
    elif deviation == "hs":
        message["hs"] = n * n - 1
    return message


if rogue_setting("key") is not None:
    PublicKey.to_dict = _rogue_to_dict  # type: ignore[method-assign]
