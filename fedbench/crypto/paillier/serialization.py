"""Ciphertext vectors as fixed-width bytes and as a codec-friendly dict; no pickle, hostile input checked.

Each ciphertext is `width` bytes big-endian, width = bytes of n^2 (512 for a 2048-bit key). Two forms:

* `to_bytes` (one blob)::

      b"FBPV" | u8 version=1 | 3 zero bytes | 16-byte key fingerprint | u32 frac_bits | u32 width
      | u64 count | u32 L | L bytes: bound, big-endian | count * width bytes: the ciphertexts

  (integers little-endian; the key fingerprint is the first 16 bytes of SHA-256 of n, big-endian).
* `to_dict`: ``{"n_bits": int, "key_id": hex fingerprint, "exponent": -frac_bits, "bound": int,
  "data": bytes}`` where data is the concatenated ciphertexts: the federation codec carries it as is.

Loading checks everything: magic, version, lengths (the body a whole number of `width`-byte values),
the key fingerprint (a mismatch is a `KeyMismatchError`), 0 < c < n^2 for every value, the bound within
the key's range; any defect is a `MalformedCiphertextError`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gmpy2 import mpz

from fedbench.crypto.paillier.encoding import MAX_FRAC_BITS
from fedbench.crypto.paillier.errors import KeyMismatchError, MalformedCiphertextError

__all__ = [
    "MAGIC",
    "VERSION",
    "VectorFields",
    "ciphertexts_from_bytes",
    "ciphertexts_to_bytes",
    "fields_from_bytes",
    "fields_from_dict",
    "fields_to_bytes",
    "fields_to_dict",
]

MAGIC = b"FBPV"
VERSION = 1
_HEADER = struct.Struct("<4sB3s16sIIQI")
_DICT_KEYS = {"n_bits", "key_id", "exponent", "bound", "data"}


@dataclass(frozen=True)
class VectorFields:
    """The parts of a serialized vector, validated against the receiving key."""

    frac_bits: int
    bound: int
    ciphertexts: list[mpz]


def ciphertexts_to_bytes(ciphertexts: Sequence[mpz], width: int) -> bytes:
    """The ciphertexts as `width`-byte big-endian values, concatenated."""
    return b"".join([int(c).to_bytes(width, "big") for c in ciphertexts])


def ciphertexts_from_bytes(
    data: bytes | bytearray | memoryview, width: int, nsq: int | None = None
) -> list[mpz]:
    """Parse concatenated `width`-byte values; with `nsq`, check 0 < c < n^2 for each (else malformed)."""
    if width <= 0 or len(data) % width:
        raise MalformedCiphertextError(
            f"ciphertext data of {len(data)} bytes is not a whole number of {width}-byte values"
        )
    view = memoryview(data)
    from_bytes = mpz.from_bytes
    values = [from_bytes(view[i : i + width], "big") for i in range(0, len(view), width)]
    if nsq is not None:
        for index, c in enumerate(values):
            if not 0 < c < nsq:
                raise MalformedCiphertextError(
                    f"ciphertext {index} is not in (0, n^2): wrong key or corrupt data"
                )
    return values


def _check_meta(frac_bits: Any, bound: Any, limit: int) -> None:
    if type(frac_bits) is not int or not 0 <= frac_bits <= MAX_FRAC_BITS:
        raise MalformedCiphertextError(f"frac_bits {frac_bits!r} is not an int in [0, {MAX_FRAC_BITS}]")
    if type(bound) is not int or not 0 <= bound <= limit:
        raise MalformedCiphertextError(f"bound {bound!r} is not an int in [0, n // 3 - 1]")


def fields_to_bytes(fingerprint: bytes, width: int, frac_bits: int, bound: int, cts: Sequence[mpz]) -> bytes:
    """The `to_bytes` blob (see the module docstring)."""
    bound_bytes = bound.to_bytes((bound.bit_length() + 7) // 8, "big")
    head = _HEADER.pack(MAGIC, VERSION, bytes(3), fingerprint, frac_bits, width, len(cts), len(bound_bytes))
    return head + bound_bytes + ciphertexts_to_bytes(cts, width)


def fields_from_bytes(
    data: bytes | bytearray | memoryview, fingerprint: bytes, width: int, nsq: int, limit: int
) -> VectorFields:
    """Parse and validate a `to_bytes` blob for the key with this fingerprint, width, n^2 and max_int."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedCiphertextError(f"expected bytes, got {type(data).__name__!r}")
    view = memoryview(data).cast("B")
    if len(view) < _HEADER.size:
        raise MalformedCiphertextError(
            f"serialized vector truncated: {len(view)} bytes, header is {_HEADER.size}"
        )
    magic, version, reserved, key, frac_bits, got_width, count, bound_length = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise MalformedCiphertextError(
            f"not a serialized encrypted vector: magic {magic!r}, expected {MAGIC!r}"
        )
    if version != VERSION or reserved != bytes(3):
        raise MalformedCiphertextError(f"unsupported serialized vector version {version}")
    if key != fingerprint:
        raise KeyMismatchError(
            f"the ciphertexts were made under key {key.hex()}, not under this key {fingerprint.hex()}"
        )
    if got_width != width:
        raise MalformedCiphertextError(f"ciphertext width {got_width} does not match the key's {width} bytes")
    start = _HEADER.size + bound_length
    if len(view) != start + count * width:
        raise MalformedCiphertextError(
            f"serialized vector of {len(view)} bytes does not hold the {count} values of {width} bytes its "
            "header announces"
        )
    bound = int.from_bytes(view[_HEADER.size : start], "big")
    _check_meta(frac_bits, bound, limit)
    return VectorFields(frac_bits, bound, ciphertexts_from_bytes(view[start:], width, nsq))


def fields_to_dict(n_bits: int, key_id: str, frac_bits: int, bound: int, data: bytes) -> dict[str, Any]:
    """The dict form (see the module docstring)."""
    return {"n_bits": n_bits, "key_id": key_id, "exponent": -frac_bits, "bound": bound, "data": data}


def fields_from_dict(obj: Any, n_bits: int, key_id: str, width: int, nsq: int, limit: int) -> VectorFields:
    """Parse and validate the dict form for the key with these n_bits, key_id, width, n^2 and max_int."""
    if not isinstance(obj, dict) or set(obj) != _DICT_KEYS:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise MalformedCiphertextError(
            f"an encrypted vector dict has the keys {sorted(_DICT_KEYS)}, got {got}"
        )
    if obj["key_id"] != key_id or obj["n_bits"] != n_bits:
        raise KeyMismatchError(
            f"the ciphertexts were made under key {obj['key_id']!r} ({obj['n_bits']!r} bits), not under this "
            f"key {key_id} ({n_bits} bits)"
        )
    exponent, data = obj["exponent"], obj["data"]
    if type(exponent) is not int:
        raise MalformedCiphertextError(f"exponent {exponent!r} is not an int")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedCiphertextError(f"data must be bytes, got {type(data).__name__!r}")
    _check_meta(-exponent, obj["bound"], limit)
    return VectorFields(-exponent, obj["bound"], ciphertexts_from_bytes(data, width, nsq))
