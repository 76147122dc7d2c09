"""Serialization of encrypted vectors: exact round trips through bytes, a dict and the federation codec, and
refusal of every malformed input (truncated, padded, bad header, value outside (0, n^2), wrong key).
"""

from __future__ import annotations

import struct
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedbench.crypto.paillier import (
    EncryptedVector,
    KeyMismatchError,
    MalformedCiphertextError,
    PaillierError,
    PrivateKey,
    PublicKey,
    WeakKeyWarning,
    generate_keypair,
)
from fedbench.net import codec

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

FAST = settings(max_examples=25, deadline=None, database=None)
HEADER = 4 + 1 + 3 + 16 + 4 + 4 + 8 + 4


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakKeyWarning)
        return generate_keypair(1024)


def same(a: EncryptedVector, b: EncryptedVector) -> None:
    """Equal ciphertexts and scale; the bound travels rounded up to 2^k - 1 (only its bit length shows)."""
    assert a.ciphertexts == b.ciphertexts and a.frac_bits == b.frac_bits
    assert a.bound == b.public_bound() and b.bound <= a.bound < 2 * b.bound + 1


@FAST
@given(x=hnp.arrays(np.float64, st.integers(0, 12), elements=st.floats(-1e12, 1e12)))
def test_round_trips_bytes_dict_and_codec(keys: Any, x: np.ndarray) -> None:
    public, private = keys
    ev = public.encrypt(x) * np.full(len(x), 3.0) if len(x) else public.encrypt(x)
    blob = ev.to_bytes()
    assert len(blob) == HEADER + (ev.bound.bit_length() + 7) // 8 + len(ev) * public.width
    assert ev.public_bound() + 1 & ev.public_bound() == 0
    same(EncryptedVector.from_bytes(public, blob), ev)
    same(EncryptedVector.from_bytes(public, bytearray(blob)), ev)
    same(EncryptedVector.from_bytes(public, memoryview(blob)), ev)
    form = ev.to_dict()
    assert form["n_bits"] == 1024 and form["exponent"] == -ev.frac_bits and len(form["data"]) == len(ev) * 256
    same(EncryptedVector.from_dict(public, form), ev)
    carried = codec.decode(codec.encode({"gradients": form, "blob": blob}))
    same(EncryptedVector.from_dict(public, carried["gradients"]), ev)
    same(EncryptedVector.from_bytes(public, carried["blob"]), ev)
    got = private.decrypt(EncryptedVector.from_dict(public, carried["gradients"]))
    np.testing.assert_allclose(got, 3 * x, rtol=1e-12, atol=2.0**-31)


def test_big_bound_crosses_the_codec(keys: Any) -> None:
    public, private = keys
    ev = public.encrypt(np.array([public.max_int // 7], dtype=object))
    carried = EncryptedVector.from_dict(public, codec.decode(codec.encode(ev.to_dict())))
    assert (
        carried.bound == ev.public_bound() >= ev.bound and carried.bound.bit_length() == ev.bound.bit_length()
    )
    assert private.decrypt(carried).tolist() == [public.max_int // 7]
    edge = public.encrypt(np.array([public.max_int - 1], dtype=object))
    assert EncryptedVector.from_bytes(public, edge.to_bytes()).bound == public.max_int


def test_malformed_bytes_are_refused(keys: Any) -> None:
    public, _ = keys
    blob = public.encrypt(np.array([1.0, 2.0, 3.0])).to_bytes()
    width = public.width
    body = len(blob) - 3 * width
    cases = {
        "truncated": blob[:-1],
        "padded": blob + b"\0",
        "header only": blob[: HEADER - 1],
        "bad magic": b"XXXX" + blob[4:],
        "bad version": blob[:4] + b"\x02" + blob[5:],
        "bad width": blob[:28] + struct.pack("<I", width + 8) + blob[32:],
        "count too big": blob[:32] + struct.pack("<Q", 4) + blob[40:],
        "zero value": blob[:body] + bytes(width) + blob[body + width :],
        "value >= n^2": blob[:body] + int(public.nsq).to_bytes(width, "big") + blob[body + width :],
        "all ones": blob[:body] + b"\xff" * width + blob[body + width :],
        "huge frac_bits": blob[:24] + struct.pack("<I", 10**6) + blob[28:],
        "not bytes": "text",
    }
    for name, data in cases.items():
        with pytest.raises(MalformedCiphertextError):
            EncryptedVector.from_bytes(public, data)  # type: ignore[arg-type]
        assert name
    bound_huge = blob[:40] + struct.pack("<I", 130) + b"\xff" * 130 + blob[HEADER + 5 :]
    with pytest.raises(MalformedCiphertextError):
        EncryptedVector.from_bytes(public, bound_huge)


def test_malformed_dicts_are_refused(keys: Any) -> None:
    public, _ = keys
    good = public.encrypt(np.array([1.0, 2.0])).to_dict()
    bad = [
        {**good, "data": good["data"][:-1]},
        {**good, "data": "text"},
        {**good, "data": int(public.nsq).to_bytes(public.width, "big")},
        {**good, "exponent": "x"},
        {**good, "exponent": 1},
        {**good, "bound": -1},
        {**good, "bound": public.max_int + 1},
        {k: v for k, v in good.items() if k != "bound"},
        {**good, "extra": 1},
        [good],
    ]
    for obj in bad:
        with pytest.raises(MalformedCiphertextError):
            EncryptedVector.from_dict(public, obj)
    with pytest.raises(KeyMismatchError):
        EncryptedVector.from_dict(public, {**good, "key_id": "00" * 16})
    with pytest.raises(KeyMismatchError):
        EncryptedVector.from_dict(public, {**good, "n_bits": 2048})


@FAST
@given(data=st.data())
def test_corrupted_bytes_never_raise_anything_else(keys: Any, data: st.DataObject) -> None:
    public, _ = keys
    blob = bytearray(public.encrypt(np.array([0.5, -0.5])).to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    for candidate in (bytes(blob), bytes(blob[:cut])):
        try:
            loaded = EncryptedVector.from_bytes(public, candidate)
        except PaillierError:
            continue
        assert len(loaded) == 2


def test_from_ciphertexts_validates(keys: Any) -> None:
    public, private = keys
    ev = public.encrypt(np.array([4, 5]))
    again = EncryptedVector.from_ciphertexts(public, ev.ciphertexts, bound=5)
    assert private.decrypt(again).tolist() == [4, 5]
    with pytest.raises(MalformedCiphertextError):
        EncryptedVector.from_ciphertexts(public, [0])
    with pytest.raises(MalformedCiphertextError):
        EncryptedVector.from_ciphertexts(public, [int(public.nsq)])
