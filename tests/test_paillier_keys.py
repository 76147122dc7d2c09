"""Keys of the Paillier engine: size policy, generation, phe compatibility both ways, wrong keys failing loudly.

Interoperability is checked on ciphertexts, not just keys: ours decrypt with phe's private key (through
phe's EncodedNumber exponent convention, base 16), and phe's decrypt with ours.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import gmpy2
import numpy as np
import phe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedbench.crypto.paillier import (
    EncryptedVector,
    KeyMismatchError,
    KeySizeError,
    ObfuscatorPool,
    PaillierError,
    PaillierOverflowError,
    PeerKeyError,
    PrivateKey,
    PublicKey,
    WeakKeyWarning,
    from_phe,
    generate_keypair,
)
from fedbench.errors import FedbenchError

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

FAST = settings(max_examples=25, deadline=None, database=None)
reals = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
# phe encodes a float at an exponent fitted to its magnitude: aligning 1e-300 with 1e9 needs > 1024 bits
moderate = reals.filter(lambda v: v == 0 or abs(v) > 1e-6)


def quiet_keypair(bits: int = 1024) -> tuple[PublicKey, PrivateKey]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakKeyWarning)
        return generate_keypair(bits)


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    return quiet_keypair()


@pytest.fixture(scope="module")
def other_keys() -> tuple[PublicKey, PrivateKey]:
    return quiet_keypair()


def test_key_sizes_default_warn_and_refuse() -> None:
    public, private = generate_keypair()
    assert public.n_bits == 2048 and private.p * private.q == public.n
    with pytest.warns(WeakKeyWarning):
        generate_keypair(1024)
    with pytest.raises(KeySizeError):
        generate_keypair(768)
    with pytest.raises(KeySizeError):
        generate_keypair(1025)
    with pytest.raises(KeySizeError):
        PublicKey(phe.generate_paillier_keypair(n_length=512)[0].n)
    with pytest.warns(WeakKeyWarning):
        PublicKey(phe.generate_paillier_keypair(n_length=1024)[0].n)
    assert issubclass(KeySizeError, FedbenchError) and issubclass(KeyMismatchError, PaillierError)


def test_generated_modulus_is_admissible(keys: Any) -> None:
    public, private = keys
    p, q = private.p, private.q
    assert gmpy2.is_prime(p) and gmpy2.is_prime(q) and p < q
    assert p % 4 == 3 and q % 4 == 3 and gmpy2.gcd(p - 1, q - 1) == 2
    assert public.n_bits == 1024 and p.bit_length() == q.bit_length() == 512
    assert public.exponent_bits == 512 and public.precision_bits == 32
    assert 0 < public.hs < public.nsq and gmpy2.jacobi(public.hs % public.n, public.n) == 1
    assert "p=" not in repr(private) and str(int(p)) not in repr(private)


@FAST
@given(x=hnp.arrays(np.float64, st.integers(1, 6), elements=reals))
def test_our_ciphertexts_decrypt_with_phe(keys: Any, x: np.ndarray) -> None:
    public, private = keys
    phe_private = private.to_phe()
    for ev in (public.encrypt(x), private.encrypt(x, mode="crt"), public.encrypt(x, precision_bits=13)):
        numbers = ev.to_phe()
        assert all(isinstance(n, phe.EncryptedNumber) for n in numbers)
        got = np.array([phe_private.decrypt(n) for n in numbers])
        np.testing.assert_allclose(got, x, rtol=1e-12, atol=2.0**-12)
    ints = np.arange(-3, 3)
    assert [phe_private.decrypt(n) for n in public.encrypt(ints).to_phe()] == ints.tolist()


@FAST
@given(values=st.lists(moderate, min_size=1, max_size=6))
def test_phe_ciphertexts_decrypt_with_ours(keys: Any, values: list[float]) -> None:
    public, private = keys
    phe_public = public.to_phe()
    numbers = [phe_public.encrypt(v) for v in values]
    ev = EncryptedVector.from_phe(numbers, public=public, max_abs=1e9)
    np.testing.assert_allclose(private.decrypt(ev), values, rtol=1e-12, atol=1e-12)
    doubled = private.decrypt(ev + ev)
    np.testing.assert_allclose(doubled, 2 * np.array(values), rtol=1e-12, atol=1e-12)
    same = [phe_public.encrypt(v, precision=2**-32) for v in values]
    assert np.allclose(private.decrypt(from_phe(same)), values, atol=2.0**-32)  # type: ignore[arg-type]


def test_phe_keys_convert_losslessly(keys: Any) -> None:
    public, private = keys
    phe_public, phe_private = private.public.to_phe(), private.to_phe()
    assert isinstance(phe_public, phe.PaillierPublicKey) and phe_public.n == int(public.n)
    assert isinstance(phe_private, phe.PaillierPrivateKey) and {phe_private.p, phe_private.q} == {
        int(private.p),
        int(private.q),
    }
    back_public = from_phe(phe_public)
    back_private = from_phe(phe_private)
    assert isinstance(back_public, PublicKey) and back_public == public
    assert (
        isinstance(back_private, PrivateKey) and back_private.p == private.p and back_private.q == private.q
    )
    x = np.array([1.25, -7.5])
    assert back_private.decrypt(public.encrypt(x)).tolist() == x.tolist()
    assert private.decrypt(back_public.encrypt(x)).tolist() == x.tolist()
    ours_from_phe_key = PrivateKey.from_phe(phe.generate_paillier_keypair(n_length=1024)[1])
    assert ours_from_phe_key.decrypt(ours_from_phe_key.public.encrypt(x)).tolist() == x.tolist()
    with pytest.raises(TypeError):
        from_phe(3)


def test_phe_numbers_with_differing_exponents_need_a_bound(keys: Any) -> None:
    public, private = keys
    phe_public = public.to_phe()
    numbers = [phe_public.encrypt(0.001), phe_public.encrypt(12345.5), phe_public.encrypt(3)]
    assert len({n.exponent for n in numbers}) > 1
    with pytest.raises(PaillierOverflowError, match="max_abs"):
        EncryptedVector.from_phe(numbers)
    ev = EncryptedVector.from_phe(numbers, max_abs=2e4)
    np.testing.assert_allclose(private.decrypt(ev), [0.001, 12345.5, 3], rtol=1e-12)
    assert private.decrypt(EncryptedVector.from_phe([phe_public.encrypt(5)])).tolist() == [5]


def test_wrong_key_fails_loudly(keys: Any, other_keys: Any) -> None:
    public, private = keys
    other_public, other_private = other_keys
    ev = public.encrypt(np.array([1.0, 2.0]))
    theirs = other_public.encrypt(np.array([1.0, 2.0]))
    with pytest.raises(KeyMismatchError):
        other_private.decrypt(ev)
    with pytest.raises(KeyMismatchError):
        ev + theirs
    with pytest.raises(KeyMismatchError):
        ev - theirs
    with pytest.raises(KeyMismatchError):
        EncryptedVector.from_bytes(other_public, ev.to_bytes())
    with pytest.raises(KeyMismatchError):
        EncryptedVector.from_dict(other_public, ev.to_dict())
    with pytest.raises(KeyMismatchError):
        EncryptedVector.from_phe(theirs.to_phe(), public=public)
    with pytest.raises(KeyMismatchError):
        PrivateKey(public, other_private.p, other_private.q)
    with ObfuscatorPool(other_public, size=4) as pool:
        with pytest.raises(KeyMismatchError):
            public.encrypt(np.ones(2), pool=pool)
        with pytest.raises(KeyMismatchError):
            ev.rerandomize(pool=pool)


def test_public_key_pickles_and_travels_as_a_dict(keys: Any) -> None:
    from fedbench.net import codec

    public, private = keys
    again = pickle.loads(pickle.dumps(public))
    assert again == public and again.hs == public.hs and hash(again) == hash(public)
    received = PublicKey.from_dict(codec.decode(codec.encode(public.to_dict())))
    assert received == public and not received.owned and received.hs != public.hs
    assert received.obfuscator_spec().kind == "peer_fixed_base"
    assert private.decrypt(received.encrypt(np.array([0.5]))).tolist() == [0.5]
    assert private.decrypt(public.encrypt(np.array([2, 3])).rerandomize()).tolist() == [2, 3]
    with pytest.raises(PeerKeyError):
        PublicKey.from_dict({"n": 5})
    with pytest.raises(KeyMismatchError):
        PublicKey(public.n).to_dict()


def test_key_parameters_are_validated(keys: Any) -> None:
    public, _ = keys
    with pytest.raises(ValueError):
        generate_keypair(1024, exponent_bits=64)
    with pytest.raises(ValueError):
        PublicKey(public.n, precision_bits=-1)
    with pytest.raises(KeySizeError):
        PublicKey(public.n + 1)
    coarse = PublicKey(public.n, precision_bits=16)
    assert coarse.encrypt(np.array([0.5])).frac_bits == 16
    assert coarse.exponent_bits == public.n_bits + 128, "a key we did not generate gets long exponents"
    short, _ = generate_keypair(1024, exponent_bits=256)
    assert short.owned and short.obfuscator_spec().exponent_bits == 256
