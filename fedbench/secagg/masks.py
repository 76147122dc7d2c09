"""Masks: a 256-bit key expanded by AES-256-CTR into a vector of Z_2^k (k = 32 or 64).

The key is either a client's self-mask seed b_u (32 random bytes) or a pairwise key from `keys.derive`; each
key expands one stream in one round, so the all-zero initial counter block is never reused with a key. A key
shorter than 256 bits is refused: masks never come from a short seed or a non-cryptographic generator.
AES-256-CTR (OpenSSL, AES-NI) beat ChaCha20 here; the keystream is made in cache-sized chunks straight into
a reused buffer and added in place, with no per-mask allocation (docs/protocols/secure_aggregation.md, Cost).
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from fedbench.secagg.errors import MaskKeyError, SecAggError

MASK_KEY_BYTES = 32
_COUNTER = bytes(16)
_CHUNK_BYTES = 1 << 18
"""Keystream bytes made per call: small enough to stay in the CPU cache while they are added."""
_ZEROS = memoryview(bytes(_CHUNK_BYTES))
_DTYPES: dict[int, np.dtype] = {32: np.dtype("<u4"), 64: np.dtype("<u8")}


def dtype_of(bits: int) -> np.dtype:
    """The numpy dtype of Z_2^bits (uint32 or uint64; their arithmetic wraps modulo 2^bits)."""
    if bits not in _DTYPES:
        raise SecAggError(f"the ring has {bits} bits; secure aggregation supports 32 or 64")
    return _DTYPES[bits]


def keystream(key: bytes) -> CipherContext:
    """The AES-256-CTR keystream of `key` (an encryptor of zeros); MaskKeyError unless `key` has 256 bits."""
    if not isinstance(key, bytes) or len(key) != MASK_KEY_BYTES:
        size = len(key) * 8 if isinstance(key, bytes) else type(key).__name__
        raise MaskKeyError(
            f"a mask key has {size} bits; masks are expanded only from 256-bit keys "
            "(a seed b_u of 32 random bytes or an HKDF-derived pairwise key)"
        )
    return Cipher(algorithms.AES(key), modes.CTR(_COUNTER)).encryptor()


def apply(total: np.ndarray, key: bytes, sign: int) -> None:
    """Add (`sign` = 1) or subtract (-1) the mask of `key` to `total` in place, modulo 2^k."""
    if total.dtype not in _DTYPES.values() or not total.flags.c_contiguous or not total.flags.writeable:
        raise SecAggError("masks apply only to a writable, contiguous uint32 or uint64 vector")
    if sign not in (1, -1):
        raise SecAggError(f"a mask is added (1) or subtracted (-1), not multiplied by {sign}")
    stream = keystream(key)
    step = _CHUNK_BYTES // total.itemsize
    scratch = np.empty(_CHUNK_BYTES + 16, dtype=np.uint8)
    chunk = scratch[:_CHUNK_BYTES].view(total.dtype)
    combine = np.add if sign == 1 else np.subtract
    for start in range(0, total.size, step):
        part = total[start : start + step]
        stream.update_into(_ZEROS[: part.nbytes], scratch.data)
        combine(part, chunk[: part.size], out=part)


def expand(key: bytes, length: int, bits: int) -> np.ndarray:
    """`length` uniform elements of Z_2^bits from the AES-256-CTR keystream of `key`."""
    out = np.zeros(length, dtype=dtype_of(bits))
    apply(out, key, 1)
    return out
