"""A vectorised Paillier engine: fixed-base (DJN) and CRT encryption, bucketed dot products, packing,
multi-process execution and fixed-width serialization, compatible with `phe` keys and ciphertexts.

    public, private = generate_keypair()          # 2048 bits
    ev = public.encrypt(np.array([0.5, -1.25]))   # EncryptedVector; private.encrypt is faster
    total = (ev * np.array([2.0, 4.0])).sum()
    private.decrypt(total)                        # array([-4.])

See docs/protocols/paillier.md for the encoding and overflow rule, the modes and their assumptions.
"""

from fedbench.crypto.paillier.encoding import DEFAULT_PRECISION_BITS
from fedbench.crypto.paillier.errors import (
    KeyMismatchError,
    KeySizeError,
    MalformedCiphertextError,
    PaillierError,
    PaillierOverflowError,
    PeerKeyError,
    WeakKeyWarning,
)
from fedbench.crypto.paillier.keys import (
    DEFAULT_KEY_BITS,
    MIN_KEY_BITS,
    Mode,
    PrivateKey,
    PublicKey,
    from_phe,
    generate_keypair,
)
from fedbench.crypto.paillier.packing import PackedVector, PackingSpec, decrypt_packed, encrypt_packed, pack
from fedbench.crypto.paillier.parallel import get_workers, set_workers, shutdown
from fedbench.crypto.paillier.pool import ObfuscatorPool
from fedbench.crypto.paillier.vector import EncryptedVector, concatenate

__all__ = [
    "DEFAULT_KEY_BITS",
    "DEFAULT_PRECISION_BITS",
    "MIN_KEY_BITS",
    "EncryptedVector",
    "KeyMismatchError",
    "KeySizeError",
    "MalformedCiphertextError",
    "Mode",
    "ObfuscatorPool",
    "PackedVector",
    "PackingSpec",
    "PaillierError",
    "PaillierOverflowError",
    "PeerKeyError",
    "PrivateKey",
    "PublicKey",
    "WeakKeyWarning",
    "concatenate",
    "decrypt_packed",
    "encrypt_packed",
    "from_phe",
    "generate_keypair",
    "get_workers",
    "pack",
    "set_workers",
    "shutdown",
]
