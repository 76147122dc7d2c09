"""Paillier keys: generation, size policy, encryption in each mode, decryption, and phe conversion.

Keys are n = p q with g = n + 1, exactly phe's: `to_phe()` / `from_phe()` convert losslessly and a
ciphertext of either library decrypts with the other. Generation draws p and q with `secrets` and
gmpy2's `next_prime` as an "admissible" modulus in the sense of DJN / HEU (p = q = 3 mod 4,
gcd(p-1, q-1) = 2, |p - q| of nearly half the bits). Sizes: 2048 bits by default, 3072 (or more)
available, 1024 only for tests (a `WeakKeyWarning`), below 1024 refused (`KeySizeError`).

Encryption modes (see docs/protocols/paillier.md for what each rests on):
``"fixed_base"`` (default, DJN short-exponent obfuscator hs^a from a precomputed table),
``"textbook"`` (r^n for uniform r), and for the key owner ``"crt"`` (textbook computed modulo p^2 and
q^2); the private key always works modulo p^2 and q^2, whichever mode.

A peer's key arrives through `PublicKey.from_dict`, which validates it (`validation`: size bounds, g = n + 1,
odd, not square, no prime factor below 2^16, the owner's proof that gcd(n, phi(n)) = 1) and never takes an
obfuscation base from it: fixed-base obfuscators for a key we did not generate come from our own secret base.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import gmpy2
import numpy as np
from gmpy2 import mpz

from fedbench.crypto.paillier import parallel
from fedbench.crypto.paillier.crt import crt_params
from fedbench.crypto.paillier.encoding import (
    DEFAULT_PRECISION_BITS,
    MAX_FRAC_BITS,
    as_vector,
    check_bound,
    decode,
    encode,
    is_integer_valued,
    max_int,
    signed,
)
from fedbench.crypto.paillier.errors import KeyMismatchError, KeySizeError, PeerKeyError, WeakKeyWarning
from fedbench.crypto.paillier.obfuscation import ObfuscatorSpec
from fedbench.crypto.paillier.validation import check_modulus, prove_modulus, verify_modulus
from fedbench.crypto.paillier.vector import EncryptedVector

if TYPE_CHECKING:
    from fedbench.crypto.paillier.packing import PackedVector
    from fedbench.crypto.paillier.pool import ObfuscatorPool

__all__ = [
    "DEFAULT_KEY_BITS",
    "MIN_KEY_BITS",
    "Mode",
    "PrivateKey",
    "PublicKey",
    "from_phe",
    "generate_keypair",
]

Mode = Literal["fixed_base", "textbook", "crt"]
DEFAULT_KEY_BITS = 2048
MIN_KEY_BITS = 1024
_SAFE_KEY_BITS = 2048
_MIN_EXPONENT_BITS = 256
_PEER_EXTRA_BITS = 128
"""Our exponents for a key we did not generate: n_bits + this, so a mod any group order is near uniform."""
_KEY_FIELDS = {"n", "g", "precision_bits", "proof"}


def _check_size(bits: int) -> None:
    if bits < MIN_KEY_BITS:
        raise KeySizeError(f"a {bits}-bit Paillier key is refused: use 2048 bits (3072 for long-term data)")
    if bits < _SAFE_KEY_BITS:
        warnings.warn(
            f"a {bits}-bit Paillier key is for tests only; use 2048 bits or more for real data",
            WeakKeyWarning,
            stacklevel=4,
        )


class PublicKey:
    """A Paillier public key (n, g = n + 1) with its fixed-point precision and *our* obfuscation base.

    The base is never taken from anyone: a key we generated carries the DJN base we made with it (short
    exponents, `exponent_bits`); any other key (a peer's, from `from_dict`, phe or the constructor) gets a
    base this object draws itself on first use, with long exponents and a random sign (see `obfuscation`).
    """

    def __init__(self, n: int, *, precision_bits: int = DEFAULT_PRECISION_BITS) -> None:
        self.n = mpz(n)
        if self.n < 3 or self.n % 2 == 0:
            raise KeySizeError("a Paillier modulus n must be an odd integer > 2")
        self.n_bits = int(self.n.bit_length())
        _check_size(self.n_bits)
        if not 0 <= precision_bits <= MAX_FRAC_BITS:
            raise ValueError(f"precision_bits must be in [0, {MAX_FRAC_BITS}], got {precision_bits}")
        self.nsq = self.n * self.n
        self.max_int = max_int(self.n)
        self.width = (int(self.nsq).bit_length() + 7) // 8
        digest = hashlib.sha256(int(self.n).to_bytes((self.n_bits + 7) // 8, "big")).digest()
        self.fingerprint = digest[:16]
        self.key_id = self.fingerprint.hex()
        self.precision_bits = precision_bits
        self.exponent_bits = self.n_bits + _PEER_EXTRA_BITS
        self._owned = False
        self._hs: mpz | None = None
        self._proof: list[int] | None = None
        self._lock = threading.Lock()
        self._phe: Any = None

    def _own(self, hs: int, exponent_bits: int) -> None:
        """Mark this key as ours (we generated it) with the DJN base we made for it."""
        if exponent_bits < _MIN_EXPONENT_BITS:
            raise ValueError(f"exponent_bits must be at least {_MIN_EXPONENT_BITS}, got {exponent_bits}")
        self._owned, self._hs, self.exponent_bits = True, mpz(hs), exponent_bits

    def __getstate__(self) -> dict[str, Any]:
        return {
            "n": int(self.n),
            "precision_bits": self.precision_bits,
            "owned": self._owned,
            "hs": None if self._hs is None else int(self._hs),
            "exponent_bits": self.exponent_bits,
            "proof": self._proof,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WeakKeyWarning)
            self.__init__(state["n"], precision_bits=state["precision_bits"])  # type: ignore[misc]
        if state["owned"]:
            self._own(state["hs"], state["exponent_bits"])
        elif state["hs"] is not None:
            self._hs = mpz(state["hs"])
        self._proof = state["proof"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(self.n)

    def __repr__(self) -> str:
        return f"PublicKey(n_bits={self.n_bits}, key_id={self.key_id[:12]})"

    @property
    def public(self) -> PublicKey:
        """The key itself (so that `key.public` works for both key classes)."""
        return self

    @property
    def owned(self) -> bool:
        """True for a key we generated (with `generate_keypair`), False for anyone else's."""
        return self._owned

    @property
    def hs(self) -> mpz:
        """Our fixed base for this key: the one made with it if we generated it, else y^n mod n^2 for a secret
        y of ours with Jacobi symbol -1, drawn once per key object. Never a value a peer sent."""
        with self._lock:
            if self._hs is None:
                n = self.n
                while True:
                    y = mpz(secrets.randbelow(int(n) - 2) + 2)
                    if gmpy2.jacobi(y, n) == -1:
                        break
                self._hs = gmpy2.powmod(y, n, self.nsq)
            return self._hs

    def obfuscator_spec(self, mode: Mode = "fixed_base") -> ObfuscatorSpec:
        """How obfuscators of `mode` are made for this key (plain ints, for worker processes)."""
        if mode == "fixed_base":
            kind: Literal["fixed_base", "peer_fixed_base"] = (
                "fixed_base" if self._owned else "peer_fixed_base"
            )
            return ObfuscatorSpec(kind, int(self.n), int(self.hs), self.exponent_bits)
        if mode == "textbook":
            return ObfuscatorSpec("textbook", int(self.n))
        if mode == "crt":
            raise ValueError("mode 'crt' needs the private key: call private.encrypt(...)")
        raise ValueError(f"unknown encryption mode {mode!r}; use 'fixed_base' or 'textbook'")

    def _check_pool(self, pool: ObfuscatorPool) -> None:
        if pool.public.n != self.n:
            raise KeyMismatchError("the obfuscator pool belongs to another key")

    def obfuscators(
        self,
        count: int,
        *,
        mode: Mode = "fixed_base",
        pool: ObfuscatorPool | None = None,
        workers: int | None = None,
    ) -> list[mpz]:
        """`count` fresh obfuscators: from `pool` if given (in its mode), else made in `mode`."""
        if pool is not None:
            self._check_pool(pool)
            return pool.take(count)
        return parallel.make_obfuscators(self.obfuscator_spec(mode), count, workers)

    def encrypt(
        self,
        values: Any,
        *,
        mode: Mode = "fixed_base",
        precision_bits: int | None = None,
        pool: ObfuscatorPool | None = None,
        workers: int | None = None,
    ) -> EncryptedVector:
        """Encrypt a 1-D array (or scalar): integers exactly, floats at `precision_bits` (key default)."""
        ints, frac = _encode_values(self, values, precision_bits)
        return self.encrypt_encoded(ints, frac, mode=mode, pool=pool, workers=workers)

    def encrypt_encoded(
        self,
        ints: Sequence[int],
        frac_bits: int,
        *,
        mode: Mode = "fixed_base",
        pool: ObfuscatorPool | None = None,
        workers: int | None = None,
    ) -> EncryptedVector:
        """Encrypt signed fixed-point integers (m stands for m * 2**-frac_bits)."""
        return _encrypt(self, self, ints, frac_bits, mode, pool, workers)

    def to_phe(self) -> Any:
        """The equivalent `phe.PaillierPublicKey`."""
        if self._phe is None:
            from phe import PaillierPublicKey

            self._phe = PaillierPublicKey(int(self.n))
        return self._phe

    @classmethod
    def from_phe(cls, key: Any, **options: Any) -> PublicKey:
        """A PublicKey from a `phe.PaillierPublicKey` (options as for the constructor); g must be n + 1."""
        if int(key.g) != int(key.n) + 1:
            raise PeerKeyError("the phe key's g is not n + 1: only keys with g = n + 1 are supported")
        return cls(int(key.n), **options)

    def to_dict(self) -> dict[str, Any]:
        """``{"n", "g", "precision_bits", "proof"}`` for the codec: what a peer needs to check and use our key.

        Only a key with a modulus proof can be sent (ours, made by `PrivateKey`, or a peer's we verified); no
        obfuscation base or exponent length crosses: each party makes its own.
        """
        if self._proof is None:
            raise KeyMismatchError(
                "this public key has no modulus proof: only the key owner can send it (generate_keypair, or "
                "PrivateKey(public, p, q) to attach the proof)"
            )
        return {
            "n": int(self.n),
            "g": int(self.n) + 1,
            "precision_bits": self.precision_bits,
            "proof": list(self._proof),
        }

    @classmethod
    def from_dict(cls, obj: Any) -> PublicKey:
        """A peer's key from `to_dict` output (as decoded by the codec), validated before any use.

        Refused (`PeerKeyError`): other fields (an obfuscation base `hs` above all), g != n + 1, a modulus
        outside our size bounds, even, square, prime or with a prime factor below 2^16, or a modulus proof
        that does not verify. The key gets our own obfuscation base, never one the peer chose.
        """
        if not isinstance(obj, dict):
            raise PeerKeyError(f"a peer's public key must be a dict, got {type(obj).__name__}")
        if "hs" in obj or "exponent_bits" in obj:
            raise PeerKeyError(
                "the peer's public key carries an obfuscation base ('hs' / 'exponent_bits'): we never use a "
                "peer's; each party makes its own. The peer must send `public.to_dict()` of this version"
            )
        if set(obj) != _KEY_FIELDS:
            raise PeerKeyError(
                f"a peer's public key has the fields {sorted(_KEY_FIELDS)}, got {sorted(map(str, obj))}"
            )
        n, g, precision = obj["n"], obj["g"], obj["precision_bits"]
        check_modulus(n, MIN_KEY_BITS)
        if g != n + 1:
            raise PeerKeyError(
                "the peer's public key has g != n + 1: only Paillier keys with g = n + 1 are used"
            )
        if (
            isinstance(precision, bool)
            or not isinstance(precision, int)
            or not 0 <= precision <= MAX_FRAC_BITS
        ):
            raise PeerKeyError(f"the peer's precision_bits must be an integer in [0, {MAX_FRAC_BITS}]")
        verify_modulus(n, obj["proof"])
        public = cls(n, precision_bits=precision)
        public._proof = list(obj["proof"])
        return public


def _encode_values(public: PublicKey, values: Any, precision_bits: int | None) -> tuple[list[int], int]:
    array = as_vector(values)
    precision = public.precision_bits if precision_bits is None else precision_bits
    frac = 0 if is_integer_valued(array) else precision
    return encode(array, frac)[0], frac


def _encrypt(
    owner: PublicKey | PrivateKey,
    public: PublicKey,
    ints: Sequence[int],
    frac_bits: int,
    mode: Mode,
    pool: ObfuscatorPool | None,
    workers: int | None,
) -> EncryptedVector:
    bound = check_bound(max((abs(m) for m in ints), default=0), public.max_int, "a value to encrypt")
    n, nsq = public.n, public.nsq
    residues = [int(m % n) for m in ints]
    if pool is None:
        cts = parallel.encrypt(owner.obfuscator_spec(mode), residues, workers)
    else:
        obfs = owner.obfuscators(len(residues), mode=mode, pool=pool, workers=workers)
        cts = [(m * n + 1) * r % nsq for m, r in zip(residues, obfs, strict=True)]
    return EncryptedVector(public, cts, frac_bits, bound)


class PrivateKey:
    """A Paillier private key (p, q) with its public key; encrypts and decrypts modulo p^2 and q^2."""

    def __init__(self, public: PublicKey, p: int, q: int) -> None:
        p, q = (mpz(p), mpz(q)) if p < q else (mpz(q), mpz(p))
        if p * q != public.n or p == q or p < 3:
            raise KeyMismatchError("p and q are not the two distinct prime factors of the public key's n")
        self.public = public
        self.p, self.q = p, q
        self._crt = crt_params(p, q)
        if public._proof is None:
            public._proof = prove_modulus(int(p), int(q))

    def __repr__(self) -> str:
        return f"PrivateKey(n_bits={self.public.n_bits}, key_id={self.public.key_id[:12]})"

    def obfuscator_spec(self, mode: Mode = "fixed_base") -> ObfuscatorSpec:
        """Obfuscators of `mode` computed modulo p^2 and q^2 ('textbook' and 'crt' are the same)."""
        public = self.public
        if mode == "fixed_base":
            return ObfuscatorSpec(
                "crt_fixed_base",
                int(public.n),
                int(public.hs),
                public.exponent_bits,
                int(self.p),
                int(self.q),
            )
        if mode in ("textbook", "crt"):
            return ObfuscatorSpec("crt_textbook", int(public.n), p=int(self.p), q=int(self.q))
        raise ValueError(f"unknown encryption mode {mode!r}; use 'fixed_base', 'textbook' or 'crt'")

    def obfuscators(
        self,
        count: int,
        *,
        mode: Mode = "fixed_base",
        pool: ObfuscatorPool | None = None,
        workers: int | None = None,
    ) -> list[mpz]:
        """`count` fresh obfuscators: from `pool` if given, else made modulo p^2 and q^2."""
        if pool is not None:
            self.public._check_pool(pool)
            return pool.take(count)
        return parallel.make_obfuscators(self.obfuscator_spec(mode), count, workers)

    def encrypt(
        self,
        values: Any,
        *,
        mode: Mode = "fixed_base",
        precision_bits: int | None = None,
        pool: ObfuscatorPool | None = None,
        workers: int | None = None,
    ) -> EncryptedVector:
        """Encrypt like `PublicKey.encrypt`, faster: obfuscators are computed modulo p^2 and q^2."""
        ints, frac = _encode_values(self.public, values, precision_bits)
        return self.encrypt_encoded(ints, frac, mode=mode, pool=pool, workers=workers)

    def encrypt_encoded(
        self,
        ints: Sequence[int],
        frac_bits: int,
        *,
        mode: Mode = "fixed_base",
        pool: ObfuscatorPool | None = None,
        workers: int | None = None,
    ) -> EncryptedVector:
        """Encrypt signed fixed-point integers with the CRT speed-up."""
        return _encrypt(self, self.public, ints, frac_bits, mode, pool, workers)

    def _check(self, vector: EncryptedVector) -> None:
        if vector.public.n != self.public.n:
            raise KeyMismatchError(
                f"these ciphertexts were made under key {vector.public.key_id[:12]}, not under this private "
                f"key's {self.public.key_id[:12]}"
            )

    def decrypt_encoded(self, vector: EncryptedVector, *, workers: int | None = None) -> list[int]:
        """The signed fixed-point integers of the vector (m stands for m * 2**-frac_bits)."""
        if not isinstance(vector, EncryptedVector):
            raise TypeError(f"expected an EncryptedVector, got {type(vector).__name__}")
        self._check(vector)
        public = self.public
        residues = parallel.decrypt(int(self.p), int(self.q), vector._ct, workers)
        n, limit = public.n, public.max_int
        return [signed(m, n, limit) for m in residues]

    def decrypt(
        self, vector: EncryptedVector | PackedVector, *, workers: int | None = None
    ) -> np.ndarray[Any, Any]:
        """The values: float64 for fixed-point vectors, int64 for integer ones; packed vectors unpacked."""
        from fedbench.crypto.paillier.packing import PackedVector, unpack

        if isinstance(vector, PackedVector):
            return unpack(vector, self.decrypt_encoded(vector.vector, workers=workers))
        ints = self.decrypt_encoded(vector, workers=workers)
        return decode(ints, vector.frac_bits, vector.bound)

    def to_phe(self) -> Any:
        """The equivalent `phe.PaillierPrivateKey`."""
        from phe import PaillierPrivateKey

        return PaillierPrivateKey(self.public.to_phe(), int(self.p), int(self.q))

    @classmethod
    def from_phe(cls, key: Any, **options: Any) -> PrivateKey:
        """A PrivateKey (with its PublicKey) from a `phe.PaillierPrivateKey`."""
        return cls(PublicKey.from_phe(key.public_key, **options), int(key.p), int(key.q))


def _prime(bits: int) -> mpz:
    while True:
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 3
        p = gmpy2.next_prime(candidate)
        if p % 4 == 3 and p.bit_length() == bits and gmpy2.is_prime(p, 40):
            return p


def generate_keypair(
    bits: int = DEFAULT_KEY_BITS,
    *,
    precision_bits: int = DEFAULT_PRECISION_BITS,
    exponent_bits: int | None = None,
) -> tuple[PublicKey, PrivateKey]:
    """A new keypair of `bits` bits (2048 default; 1024 warns; below is refused).

    `precision_bits` is the fixed-point scale of floats; `exponent_bits` the length of the DJN random
    exponent (default bits // 2, as HEU).
    """
    if type(bits) is not int or bits % 2:
        raise KeySizeError(f"key size must be an even number of bits, got {bits!r}")
    if bits < MIN_KEY_BITS:
        _check_size(bits)
    half = bits // 2
    while True:
        p, q = _prime(half), _prime(half)
        n = p * q
        if (
            p != q
            and gmpy2.gcd(p - 1, q - 1) == 2
            and (p - q).bit_length() >= half - 8
            and n.bit_length() == bits
        ):
            break
    while True:
        x = mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(x, n) == 1:
            break
    params = crt_params(p, q)
    h = -x * x % n
    hs = params.combine(gmpy2.powmod(h, n, params.psq), gmpy2.powmod(h, n, params.qsq))
    public = PublicKey(n, precision_bits=precision_bits)
    public._own(hs, half if exponent_bits is None else exponent_bits)
    return public, PrivateKey(public, p, q)


def from_phe(obj: Any, **options: Any) -> PublicKey | PrivateKey | EncryptedVector:
    """Convert a phe public key, private key, EncryptedNumber or sequence of EncryptedNumbers.

    Options go to `PublicKey.from_phe` / `PrivateKey.from_phe` / `EncryptedVector.from_phe`.
    """
    from phe import EncryptedNumber, PaillierPrivateKey, PaillierPublicKey

    if isinstance(obj, PaillierPublicKey):
        return PublicKey.from_phe(obj, **options)
    if isinstance(obj, PaillierPrivateKey):
        return PrivateKey.from_phe(obj, **options)
    if isinstance(obj, EncryptedNumber):
        return EncryptedVector.from_phe([obj], **options)
    if isinstance(obj, (list, tuple)) and all(isinstance(x, EncryptedNumber) for x in obj):
        return EncryptedVector.from_phe(obj, **options)
    raise TypeError(f"cannot convert {type(obj).__name__} from phe")
