"""Masks: a 256-bit key expanded by ChaCha20 into a vector of Z_2^k (k = 32 or 64).

The key is either a client's self-mask seed b_u (32 random bytes) or a pairwise key from `keys.derive`; each
key expands one stream in one round, so the all-zero nonce is never reused with a key. A key shorter than
256 bits is refused: masks never come from a short seed or a non-cryptographic generator.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from fedbench.secagg.errors import MaskKeyError, SecAggError

MASK_KEY_BYTES = 32
_NONCE = bytes(16)
_DTYPES: dict[int, np.dtype] = {32: np.dtype("<u4"), 64: np.dtype("<u8")}


def dtype_of(bits: int) -> np.dtype:
    """The numpy dtype of Z_2^bits (uint32 or uint64; their arithmetic wraps modulo 2^bits)."""
    if bits not in _DTYPES:
        raise SecAggError(f"the ring has {bits} bits; secure aggregation supports 32 or 64")
    return _DTYPES[bits]


def expand(key: bytes, length: int, bits: int) -> np.ndarray:
    """`length` uniform elements of Z_2^bits from the ChaCha20 keystream of `key` (read-only array)."""
    if not isinstance(key, bytes) or len(key) != MASK_KEY_BYTES:
        size = len(key) * 8 if isinstance(key, bytes) else type(key).__name__
        raise MaskKeyError(
            f"a mask key has {size} bits; masks are expanded only from 256-bit keys "
            "(a seed b_u of 32 random bytes or an HKDF-derived pairwise key)"
        )
    dtype = dtype_of(bits)
    encryptor = Cipher(algorithms.ChaCha20(key, _NONCE), mode=None).encryptor()
    stream = encryptor.update(bytes(length * dtype.itemsize))
    return np.frombuffer(stream, dtype=dtype)
