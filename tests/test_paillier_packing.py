"""Packing: several fixed-point slots per plaintext, exact round trips up to the stated number of additions,
refusal of one more, and homomorphic packing of an encrypted vector to cut decryptions.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedbench.crypto.paillier import (
    PackedVector,
    PackingSpec,
    PaillierOverflowError,
    PrivateKey,
    PublicKey,
    WeakKeyWarning,
    decrypt_packed,
    encrypt_packed,
    generate_keypair,
    pack,
)

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

FAST = settings(max_examples=25, deadline=None, database=None)
GRAD = PackingSpec(slot_bits=34, slots=2, max_additions=7, frac_bits=32)


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakKeyWarning)
        return generate_keypair(1024)


def grads(rows: int) -> Any:
    return hnp.arrays(np.float64, (rows, 2), elements=st.floats(-1.99, 1.99))


@FAST
@given(data=st.data())
def test_pack_add_unpack_up_to_the_maximum_additions(keys: Any, data: st.DataObject) -> None:
    public, private = keys
    rows = data.draw(st.integers(1, 4))
    parts = [data.draw(grads(rows)) for _ in range(GRAD.max_additions + 1)]
    packed = [encrypt_packed(private if i % 2 else public, part, GRAD) for i, part in enumerate(parts)]
    total = packed[0]
    for more in packed[1:]:
        total = total + more
    assert total.terms == GRAD.max_additions + 1 and len(total) == rows
    np.testing.assert_allclose(private.decrypt(total), sum(parts), atol=len(parts) * 2.0**-32)
    with pytest.raises(PaillierOverflowError, match="headroom"):
        total + packed[0]


@FAST
@given(x=grads(8))
def test_row_sums_for_histograms(keys: Any, x: np.ndarray) -> None:
    public, private = keys
    spec = PackingSpec(slot_bits=34, slots=2, max_additions=7)
    packed = encrypt_packed(public, x, spec)
    np.testing.assert_allclose(private.decrypt(packed.sum()), x.sum(axis=0, keepdims=True), atol=8 * 2.0**-32)
    left = x[:, 0] < 0
    np.testing.assert_allclose(
        private.decrypt(packed[left].sum()), x[left].sum(axis=0, keepdims=True), atol=1e-8
    )
    with pytest.raises(PaillierOverflowError):
        encrypt_packed(public, np.vstack([x, x]), spec).sum()


def test_spec_arithmetic_and_limits(keys: Any) -> None:
    public, private = keys
    assert GRAD.width == 34 + 3 and GRAD.max_abs == pytest.approx(2.0)
    widest = PackingSpec.for_key(public, slot_bits=40, max_additions=1000)
    assert widest.slots == (1024 - 2) // 50 and widest.width == 50
    with pytest.raises(ValueError, match="slots"):
        PackingSpec(slot_bits=100, slots=11, max_additions=0).check(public)
    with pytest.raises(ValueError):
        PackingSpec(slot_bits=1, slots=1)
    with pytest.raises(TypeError):
        PackingSpec(slot_bits=10.0, slots=1)  # type: ignore[arg-type]
    with pytest.raises(PaillierOverflowError, match="slots"):
        encrypt_packed(public, np.array([[2.0, 0.0]]), GRAD)
    with pytest.raises(ValueError):
        encrypt_packed(public, np.zeros((1, 3)), GRAD)
    edge = np.array([[GRAD.max_abs, -GRAD.max_abs]])
    np.testing.assert_allclose(private.decrypt(encrypt_packed(public, edge, GRAD)), edge)
    ints = PackingSpec(slot_bits=8, slots=40, max_additions=1, frac_bits=0)
    row = np.arange(-20, 20).reshape(1, 40)
    got = private.decrypt(encrypt_packed(public, row, ints) + encrypt_packed(public, row, ints))
    assert got.dtype == np.int64 and got.tolist() == (2 * row).tolist()
    with pytest.raises(ValueError):
        encrypt_packed(public, row, PackingSpec(8, 40, max_additions=3, frac_bits=0)) + encrypt_packed(
            public, row, ints
        )


@FAST
@given(x=hnp.arrays(np.float64, st.integers(1, 70), elements=st.floats(-1e4, 1e4)))
def test_pack_an_encrypted_vector_cuts_decryptions(keys: Any, x: np.ndarray) -> None:
    public, private = keys
    ev = public.encrypt(x) * np.full(len(x), 0.5)
    packed = pack(ev)
    assert isinstance(packed, PackedVector) and packed.shape == (len(x),)
    assert len(packed) == -(-len(x) // packed.spec.slots) and len(packed) < len(x) or len(x) <= 2
    np.testing.assert_allclose(
        decrypt_packed(private, packed), x * 0.5, atol=2.0**-31 * (np.abs(x).max() + 1)
    )
    with pytest.raises(PaillierOverflowError, match="headroom"):
        packed + packed
    roomy = PackingSpec.for_key(public, packed.spec.slot_bits, max_additions=1, frac_bits=ev.frac_bits)
    twice = pack(ev, roomy) + pack(ev, roomy)
    np.testing.assert_allclose(private.decrypt(twice), x, atol=2.0**-30 * (np.abs(x).max() + 1))
    with pytest.raises(PaillierOverflowError, match="headroom"):
        twice + pack(ev, roomy)


def test_pack_with_a_spec_and_rerandomize(keys: Any) -> None:
    public, private = keys
    ev = public.encrypt(np.array([1.5, -2.25, 3.0, 0.0, -7.0]))
    spec = PackingSpec(slot_bits=40, slots=3, max_additions=3, frac_bits=32)
    packed = pack(ev, spec)
    assert len(packed) == 2
    summed = packed + packed + packed
    assert private.decrypt(summed.rerandomize()).tolist() == [4.5, -6.75, 9.0, 0.0, -21.0]
    with pytest.raises(PaillierOverflowError):
        pack(public.encrypt(np.array([2.0**20])), spec)
    with pytest.raises(TypeError):
        packed.sum()
    finer = pack(ev, PackingSpec(slot_bits=60, slots=3, frac_bits=40))
    assert private.decrypt(finer).tolist() == [1.5, -2.25, 3.0, 0.0, -7.0]
