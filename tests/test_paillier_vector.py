"""Property tests of the Paillier vector operations: decrypt(op(encrypt(x))) == op(x) within the precision.

Every operation is checked in every encryption mode (public fixed-base and textbook, private CRT fixed-base
and CRT textbook, with an obfuscator pool), with negatives, zeros and range edges, and every way a result
could overflow is checked to raise rather than wrap. 1024-bit keys (tests only), generated once per module.
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
    EncryptedVector,
    ObfuscatorPool,
    PaillierOverflowError,
    PrivateKey,
    PublicKey,
    WeakKeyWarning,
    concatenate,
    generate_keypair,
)

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

PRECISION = 2.0**-32
FAST = settings(max_examples=25, deadline=None, database=None)
MODES = ["public-fixed_base", "public-textbook", "private-fixed_base", "private-crt", "public-pool"]

reals = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
edgy = st.one_of(reals, st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0**-33, -(2.0**-33), 1e6, -1e6]))


def vectors(min_size: int = 1, max_size: int = 8) -> Any:
    return hnp.arrays(np.float64, st.integers(min_size, max_size), elements=edgy)


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakKeyWarning)
        return generate_keypair(1024)


@pytest.fixture(scope="module")
def pool(keys: tuple[PublicKey, PrivateKey]) -> Any:
    with ObfuscatorPool(keys[0], size=64, batch=16) as pool:
        yield pool


def encryptor(keys: tuple[PublicKey, PrivateKey], pool: ObfuscatorPool, mode: str) -> Any:
    public, private = keys
    owner, how = mode.split("-")
    if how == "pool":
        return lambda x: public.encrypt(x, pool=pool, workers=1)
    key = public if owner == "public" else private
    return lambda x: key.encrypt(x, mode=how, workers=1)


def close(got: np.ndarray, want: np.ndarray, atol: Any) -> None:
    """|got - want| <= atol (a scalar or per element) + a float64 rounding margin, elementwise."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    error = np.abs(got - want)
    assert np.all(error <= np.asarray(atol) + 1e-12 * np.abs(want)), f"{got} != {want} (error {error})"


@pytest.mark.parametrize("mode", MODES)
@FAST
@given(x=vectors())
def test_encrypt_decrypt_round_trip(keys: Any, pool: Any, mode: str, x: np.ndarray) -> None:
    ev = encryptor(keys, pool, mode)(x)
    got = keys[1].decrypt(ev)
    assert got.dtype == np.float64 and got.shape == x.shape
    close(got, x, PRECISION / 2)


@pytest.mark.parametrize("mode", MODES)
@FAST
@given(data=st.data())
def test_add_sub_neg(keys: Any, pool: Any, mode: str, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6))
    x = data.draw(hnp.arrays(np.float64, n, elements=edgy))
    y = data.draw(hnp.arrays(np.float64, n, elements=edgy))
    encrypt, private = encryptor(keys, pool, mode), keys[1]
    a, b = encrypt(x), encrypt(y)
    close(private.decrypt(a + b), x + y, 2 * PRECISION)
    close(private.decrypt(a - b), x - y, 2 * PRECISION)
    close(private.decrypt(-a), -x, PRECISION)
    close(private.decrypt(a + y), x + y, 2 * PRECISION)
    close(private.decrypt(y + a), x + y, 2 * PRECISION)
    close(private.decrypt(a - y), x - y, 2 * PRECISION)
    close(private.decrypt(y - a), y - x, 2 * PRECISION)
    close(private.decrypt(a + 2.5), x + 2.5, 2 * PRECISION)


@pytest.mark.parametrize("mode", MODES)
@FAST
@given(data=st.data())
def test_multiply_by_plaintext(keys: Any, pool: Any, mode: str, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6))
    x = data.draw(hnp.arrays(np.float64, n, elements=edgy))
    y = data.draw(hnp.arrays(np.float64, n, elements=edgy))
    k = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-(10**6), 10**6)))
    encrypt, private = encryptor(keys, pool, mode), keys[1]
    a = encrypt(x)
    tolerance = (np.abs(x) + np.abs(y) + 1) * PRECISION
    close(private.decrypt(a * y), x * y, tolerance)
    close(private.decrypt(y * a), x * y, tolerance)
    close(private.decrypt(a * k), x * k, np.abs(k) * PRECISION)
    close(private.decrypt(a * -3), x * -3, 3 * PRECISION)
    close(private.decrypt(a * 0.0), np.zeros(n), PRECISION)


@pytest.mark.parametrize("mode", MODES)
@FAST
@given(x=vectors(1, 12))
def test_sum(keys: Any, pool: Any, mode: str, x: np.ndarray) -> None:
    total = encryptor(keys, pool, mode)(x).sum()
    assert len(total) == 1
    close(keys[1].decrypt(total), np.array([x.sum()]), len(x) * PRECISION + 1e-9 * np.abs(x).sum())


@pytest.mark.parametrize("mode", ["public-fixed_base", "private-crt"])
@FAST
@given(data=st.data())
def test_dot_matches_numpy(keys: Any, pool: Any, mode: str, data: st.DataObject) -> None:
    rows = data.draw(st.integers(1, 10))
    features = data.draw(st.integers(1, 4))
    d = data.draw(hnp.arrays(np.float64, rows, elements=st.floats(-1e3, 1e3)))
    x = data.draw(hnp.arrays(np.float64, (rows, features), elements=st.floats(-1e3, 1e3)))
    ev = encryptor(keys, pool, mode)(d)
    got = keys[1].decrypt(ev.dot(x, workers=1))
    atol = (np.abs(x).T @ (np.abs(d) + 1) + np.abs(d).sum() + 1) * PRECISION
    assert got.shape == (features,)
    close(got, x.T @ d, atol)
    naive = keys[1].decrypt(ev.dot(x, workers=1, method="naive"))
    close(naive, got, 1e-9)


@FAST
@given(data=st.data())
def test_dot_with_integer_matrix_is_exact(keys: Any, data: st.DataObject) -> None:
    rows = data.draw(st.integers(1, 12))
    d = data.draw(hnp.arrays(np.int64, rows, elements=st.integers(-(10**9), 10**9)))
    x = data.draw(hnp.arrays(np.int64, (rows, 3), elements=st.integers(-(2**40), 2**40)))
    public, private = keys
    got = private.decrypt(public.encrypt(d, workers=1).dot(x, workers=1))
    want = [sum(int(a) * int(b) for a, b in zip(x[:, j], d, strict=True)) for j in range(3)]
    assert [int(v) for v in got] == want


def test_dot_of_one_dimensional_matrix_and_histogram_indicator(keys: Any) -> None:
    public, private = keys
    d = np.array([0.5, -1.5, 2.0, 4.0])
    ev = public.encrypt(d)
    close(private.decrypt(ev.dot(np.array([1.0, 2.0, 0.0, -1.0]))), np.array([-6.5]), 1e-8)
    bins = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.int8)
    close(private.decrypt(ev.dot(bins)), bins.T @ d, 1e-9)
    with pytest.raises(ValueError, match="shape"):
        ev.dot(np.ones((3, 2)))


def test_integers_are_exact_and_stay_integers(keys: Any) -> None:
    public, private = keys
    x = np.array([0, 1, -1, 2**62, -(2**62)], dtype=np.int64)
    ev = public.encrypt(x)
    got = private.decrypt(ev)
    assert got.dtype == np.int64 and got.tolist() == x.tolist()
    assert private.decrypt(ev * np.array([3, 0, -5, 1, 1])).tolist()[:3] == [0, 0, 5]
    assert private.decrypt(public.encrypt([True, False])).tolist() == [1, 0]
    mixed = private.decrypt(public.encrypt(np.array([1, 2])) + 0.25)
    assert mixed.dtype == np.float64 and mixed.tolist() == [1.25, 2.25]


def test_range_edges_round_trip_and_one_past_raises(keys: Any) -> None:
    public, private = keys
    edge = public.max_int
    values = np.array([edge, -edge, 0, 1, -1], dtype=object)
    got = private.decrypt(public.encrypt(values))
    assert got.dtype == object and got.tolist() == [edge, -edge, 0, 1, -1]
    with pytest.raises(PaillierOverflowError):
        public.encrypt(np.array([edge + 1], dtype=object))
    with pytest.raises(PaillierOverflowError):
        private.encrypt(np.array([-edge - 1], dtype=object))
    with pytest.raises(PaillierOverflowError):
        public.encrypt(np.array([edge], dtype=object)) + 1
    with pytest.raises(PaillierOverflowError):
        public.encrypt(np.array([edge // 2 + 1], dtype=object)) * 2


def test_overflow_is_detected_in_every_operation(keys: Any) -> None:
    public, private = keys
    big = 2.0 ** (public.n_bits - 40)
    ev = public.encrypt(np.array([big, -big]))
    with pytest.raises(PaillierOverflowError):
        ev * np.array([2.0**10, 1.0])
    with pytest.raises(PaillierOverflowError):
        ev.dot(np.array([[2.0**9], [2.0**9]]))
    with pytest.raises(PaillierOverflowError):
        ev.rescaled(ev.frac_bits + 40)
    half = public.encrypt(np.array([public.max_int // 2 + 1], dtype=object))
    with pytest.raises(PaillierOverflowError):
        half + half
    with pytest.raises(PaillierOverflowError):
        concatenate([half, half]).sum()
    with pytest.raises(PaillierOverflowError):
        public.encrypt(np.array([1e300]))
    assert private.decrypt(ev * 1).tolist() == [big, -big]


def test_overflow_gap_is_detected_on_decrypt(keys: Any) -> None:
    public, private = keys
    inside_gap = public.encrypt(np.array([public.max_int], dtype=object)).sum()
    tampered = EncryptedVector(public, inside_gap._ct, 0, 0)
    doubled = tampered + tampered
    with pytest.raises(PaillierOverflowError, match="gap"):
        private.decrypt(doubled)


def test_non_finite_and_bad_shapes_are_refused(keys: Any) -> None:
    public = keys[0]
    with pytest.raises(ValueError):
        public.encrypt(np.array([np.nan]))
    with pytest.raises(ValueError):
        public.encrypt(np.array([np.inf]))
    with pytest.raises(ValueError):
        public.encrypt(np.ones((2, 2)))
    with pytest.raises(TypeError):
        public.encrypt(np.array(["a"]))
    ev = public.encrypt(np.ones(3))
    with pytest.raises(TypeError):
        ev * ev
    with pytest.raises(ValueError, match="broadcast"):
        ev + np.ones(2)
    with pytest.raises(ValueError):
        public.encrypt(np.ones(1), mode="crt")
    with pytest.raises(ValueError):
        public.encrypt(np.ones(1), mode="fast")  # type: ignore[arg-type]


def test_scales_align_and_precision_is_configurable(keys: Any) -> None:
    public, private = keys
    coarse = public.encrypt(np.array([0.5, 1.5]), precision_bits=8)
    fine = public.encrypt(np.array([0.125, 0.25]))
    assert coarse.frac_bits == 8 and fine.frac_bits == 32
    total = coarse + fine
    assert total.frac_bits == 32
    assert private.decrypt(total).tolist() == [0.625, 1.75]
    product = fine * np.array([2.0, 4.0])
    assert product.frac_bits == 64
    assert private.decrypt(product + fine).tolist() == [0.375, 1.25]
    assert private.decrypt(public.encrypt(np.array([0.3]), precision_bits=4)).tolist() == [0.3125]


def test_broadcast_indexing_and_concatenate(keys: Any) -> None:
    public, private = keys
    x = np.array([1.0, -2.0, 3.0, -4.0])
    ev = public.encrypt(x)
    one = public.encrypt(np.array([10.0]))
    assert private.decrypt(ev + one).tolist() == (x + 10).tolist()
    assert private.decrypt(one - ev).tolist() == (10 - x).tolist()
    assert len(ev) == 4 and len(ev[1:3]) == 2
    assert private.decrypt(ev[1]).tolist() == [-2.0]
    assert private.decrypt(ev[-1]).tolist() == [-4.0]
    assert private.decrypt(ev[np.array([3, 0])]).tolist() == [-4.0, 1.0]
    assert private.decrypt(ev[x > 0]).tolist() == [1.0, 3.0]
    assert private.decrypt(ev[::2]).tolist() == [1.0, 3.0]
    assert len(ev[[]]) == 0 and private.decrypt(ev[[]]).tolist() == []
    with pytest.raises(IndexError):
        ev[4]
    with pytest.raises(IndexError):
        ev[np.array([True])]
    joined = concatenate([ev[:2], public.encrypt(np.array([7])), ev[3:]])
    assert private.decrypt(joined).tolist() == [1.0, -2.0, 7.0, -4.0]
    assert "EncryptedVector(len=4" in repr(ev)


def test_rerandomize_changes_ciphertexts_not_values(keys: Any, pool: Any) -> None:
    public, private = keys
    ev = public.encrypt(np.array([1.5, -2.5]))
    for fresh in (ev.rerandomize(), ev.rerandomize(mode="textbook"), ev.rerandomize(pool=pool)):
        assert all(a != b for a, b in zip(fresh.ciphertexts, ev.ciphertexts, strict=True))
        assert private.decrypt(fresh).tolist() == [1.5, -2.5]


def test_fresh_encryptions_differ(keys: Any) -> None:
    public, private = keys
    for key in (public, private):
        for mode in ("fixed_base", "textbook"):
            a, b = key.encrypt(np.zeros(3), mode=mode), key.encrypt(np.zeros(3), mode=mode)
            assert len(set(a.ciphertexts + b.ciphertexts)) == 6
