"""The round's messages as plain codec values and back, each field checked: they come from another party.

Every message crosses a party boundary as a dict of ints, bytes and lists (the codec never pickles), and what
arrives is rebuilt only after each field has the right type; anything else is a `MalformedMessage` naming the
field, which the receiving side treats like any other bad message of that client (excluded with the reason).
"""

from __future__ import annotations

from typing import Any

from fedbench.secagg.errors import SecAggError
from fedbench.secagg.messages import (
    AdvertiseKeys,
    EncryptedShare,
    MaskedInput,
    UnmaskRequest,
    UnmaskResponse,
    Withdrawal,
)
from fedbench.secagg.shamir import Share

__all__ = [
    "MalformedMessage",
    "keys_from_wire",
    "keys_to_wire",
    "request_from_wire",
    "request_to_wire",
    "response_from_wire",
    "response_to_wire",
    "shares_from_wire",
    "shares_to_wire",
    "vector_from_wire",
    "vector_to_wire",
]

_MAX_CLIENT = 2**32


class MalformedMessage(SecAggError):
    """A round message from another party does not have the fields and types the protocol sends."""

    code = "secagg_malformed"


def _field(value: Any, name: str, kind: type, where: str) -> Any:
    if not isinstance(value, dict) or name not in value:
        raise MalformedMessage(f"{where}: the field {name!r} is missing")
    found = value[name]
    if kind is int and (isinstance(found, bool) or not isinstance(found, int)):
        raise MalformedMessage(f"{where}: {name!r} is {type(found).__name__}, not an integer")
    if kind is int and not 0 <= found < _MAX_CLIENT:
        raise MalformedMessage(f"{where}: {name!r} is {found}, outside 0..2^32")
    if kind is not int and not isinstance(found, kind):
        raise MalformedMessage(f"{where}: {name!r} is {type(found).__name__}, not {kind.__name__}")
    return found


def _ints(value: Any, name: str, where: str) -> frozenset[int]:
    items = _field(value, name, list, where)
    return frozenset(_field({"i": item}, "i", int, f"{where} ({name})") for item in items)


def keys_to_wire(message: AdvertiseKeys) -> dict[str, Any]:
    """Stage 1 as a codec value."""
    return {"client": message.client, "mask": message.mask_public, "share": message.share_public}


def keys_from_wire(value: Any) -> AdvertiseKeys:
    """Stage 1 from a codec value (`problem()` then checks the key sizes)."""
    where = "advertised keys"
    return AdvertiseKeys(
        _field(value, "client", int, where),
        _field(value, "mask", bytes, where),
        _field(value, "share", bytes, where),
    )


def shares_to_wire(messages: list[EncryptedShare]) -> list[dict[str, Any]]:
    """One client's stage-2 bundles as a codec value."""
    return [{"sender": m.sender, "recipient": m.recipient, "ciphertext": m.ciphertext} for m in messages]


def shares_from_wire(value: Any) -> list[EncryptedShare]:
    """Stage-2 bundles from a codec value."""
    if not isinstance(value, list):
        raise MalformedMessage(f"encrypted shares: a {type(value).__name__}, not a list")
    where = "an encrypted share"
    return [
        EncryptedShare(
            _field(item, "sender", int, where),
            _field(item, "recipient", int, where),
            _field(item, "ciphertext", bytes, where),
        )
        for item in value
    ]


def vector_to_wire(message: MaskedInput | Withdrawal) -> dict[str, Any]:
    """Stage 3 (a masked vector or a withdrawal) as a codec value."""
    if isinstance(message, Withdrawal):
        return {"client": message.client, "withdraw": message.reason}
    return {"client": message.client, "vector": message.vector, "pairs": sorted(message.masked_with)}


def vector_from_wire(value: Any) -> MaskedInput | Withdrawal:
    """Stage 3 from a codec value."""
    where = "a masked vector"
    client = _field(value, "client", int, where)
    if "withdraw" in value:
        return Withdrawal(client, _field(value, "withdraw", str, where)[:500])
    return MaskedInput(client, _field(value, "vector", bytes, where), _ints(value, "pairs", where))


def request_to_wire(request: UnmaskRequest | None) -> dict[str, Any]:
    """Stage 4's request as a codec value; None tells a client the round was abandoned."""
    if request is None:
        return {"abandoned": True}
    return {"survivors": sorted(request.survivors), "dropped": sorted(request.dropped)}


def request_from_wire(value: Any) -> UnmaskRequest | None:
    """Stage 4's request from a codec value (None: the server abandoned the round)."""
    if isinstance(value, dict) and value.get("abandoned") is True:
        return None
    where = "the unmasking request"
    return UnmaskRequest(_ints(value, "survivors", where), _ints(value, "dropped", where))


def _shares_to_wire(shares: dict[int, Share]) -> list[list[Any]]:
    return [[owner, share.index, share.value] for owner, share in sorted(shares.items())]


def _shares_from_wire(value: Any, name: str) -> dict[int, Share]:
    where = f"an unmasking answer ({name})"
    items = _field(value, name, list, where)
    out: dict[int, Share] = {}
    for item in items:
        if not (isinstance(item, list) and len(item) == 3):
            raise MalformedMessage(f"{where}: a share is not [owner, index, bytes]")
        owner = _field({"v": item[0]}, "v", int, where)
        index = _field({"v": item[1]}, "v", int, where)
        data = _field({"v": item[2]}, "v", bytes, where)
        if owner in out:
            raise MalformedMessage(f"{where}: two shares of client {owner}")
        out[owner] = Share(index, data)
    return out


def response_to_wire(response: UnmaskResponse) -> dict[str, Any]:
    """Stage 4's answer as a codec value."""
    return {
        "client": response.client,
        "seeds": _shares_to_wire(response.seed_shares),
        "keys": _shares_to_wire(response.key_shares),
    }


def response_from_wire(value: Any) -> UnmaskResponse:
    """Stage 4's answer from a codec value (`problem()` then checks it against the request)."""
    return UnmaskResponse(
        _field(value, "client", int, "an unmasking answer"),
        seed_shares=_shares_from_wire(value, "seeds"),
        key_shares=_shares_from_wire(value, "keys"),
    )
