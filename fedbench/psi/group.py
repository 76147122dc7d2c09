"""The group operations of ECDH-PSI: hash an ID into the group, raise an element to a secret scalar.

We use X25519 through OpenSSL (the `cryptography` package, already a dependency): it was the fastest vetted
binding measured on our machines (figures and reasons in docs/protocols/psi.md). An ID maps to the u-coordinate
``SHA-512(tag || len(domain_key) || domain_key || len(id) || id)[:32]``; masking is ``X25519(k, u)``. X25519
clamps every scalar to a multiple of the cofactor 8, so each result lies in the prime-order subgroup of the
curve or of its twist (Curve25519 is twist-secure), and ``X25519(a, X25519(b, u)) == X25519(b, X25519(a, u))``.
No curve arithmetic is written here. `MaskingPool` spreads chunks over a compute backend's worker processes
(`fedbench.compute`: the local pool or the party's Dask cluster): the library holds the GIL, so threads would
not scale.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from fedbench.compute.arrays import pack_texts, unpack_texts
from fedbench.compute.backend import ComputeBackend, ComputeJob
from fedbench.compute.errors import ComputeError
from fedbench.compute.local import BROKEN_POOL as BROKEN_LOCAL_POOL
from fedbench.compute.local import LocalBackend
from fedbench.psi.errors import PsiError, PsiRefused

__all__ = ["BROKEN_POOL", "ELEMENT_BYTES", "GROUP", "Masker", "MaskingPool", "Pending", "new_secret"]

GROUP = "x25519"
"""The group's name, declared in the first message so that two versions that disagree refuse early."""

ELEMENT_BYTES = 32
_TAG = b"fedbench/psi/x25519-sha512/v1\x00"


def new_secret() -> bytes:
    """A fresh secret scalar (32 random bytes from OpenSSL; X25519 clamps it when used)."""
    return X25519PrivateKey.generate().private_bytes_raw()


class Masker:
    """One party's secret and domain key: hashes IDs into the group and raises elements to the secret."""

    def __init__(self, secret: bytes, domain_key: bytes) -> None:
        if len(secret) != 32:
            raise PsiError(f"the secret scalar must be 32 bytes, got {len(secret)}")
        self._exchange = X25519PrivateKey.from_private_bytes(secret).exchange
        self._prefix = hashlib.sha512(_TAG + len(domain_key).to_bytes(8, "little") + domain_key)

    def hash_mask(self, ids: Sequence[str]) -> bytes:
        """``X25519(k, H(id))`` for each ID, concatenated (32 bytes each)."""
        copy = self._prefix.copy
        load = X25519PublicKey.from_public_bytes
        exchange = self._exchange
        out = []
        try:
            for text in ids:
                data = text.encode("utf-8")
                hasher = copy()
                hasher.update(len(data).to_bytes(8, "little") + data)
                out.append(exchange(load(hasher.digest()[:ELEMENT_BYTES])))
        except (AttributeError, UnicodeEncodeError):
            raise PsiError(f"ID number {len(out)} of a chunk is not a str encodable as UTF-8") from None
        return b"".join(out)

    def hash_mask_packed(self, texts: Sequence[bytes]) -> bytes:
        """`hash_mask` of IDs already encoded as UTF-8 (what a worker gets from a packed chunk)."""
        copy = self._prefix.copy
        load = X25519PublicKey.from_public_bytes
        exchange = self._exchange
        out = []
        for data in texts:
            hasher = copy()
            hasher.update(len(data).to_bytes(8, "little") + data)
            out.append(exchange(load(hasher.digest()[:ELEMENT_BYTES])))
        return b"".join(out)

    def mask(self, values: bytes) -> bytes:
        """``X25519(k, v)`` for each 32-byte element of `values`, concatenated."""
        if len(values) % ELEMENT_BYTES:
            raise PsiError(f"{len(values)} bytes are not a whole number of {ELEMENT_BYTES}-byte elements")
        load = X25519PublicKey.from_public_bytes
        exchange = self._exchange
        try:
            return b"".join(
                [exchange(load(values[i : i + ELEMENT_BYTES])) for i in range(0, len(values), ELEMENT_BYTES)]
            )
        except ValueError:
            raise PsiRefused("the peer sent an invalid group element (one of small order)") from None


BROKEN_POOL = BROKEN_LOCAL_POOL
"""What a PSI says when a local masking process died (the local backend's message)."""


def _masker(state: dict[str, Any]) -> Masker:
    """A masking worker's job state: the PSI's secret and domain key, made into a `Masker` once per worker."""
    return Masker(state["secret"], state["domain_key"])


def _hash_mask_task(masker: Masker, offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]) -> Any:
    return np.frombuffer(masker.hash_mask_packed(unpack_texts(offsets, data)), dtype=np.uint8)


def _mask_task(masker: Masker, values: np.ndarray[Any, Any]) -> Any:
    return np.frombuffer(masker.mask(values.tobytes()), dtype=np.uint8)


class Pending:
    """A masking task's result as bytes, when taken (`result()`)."""

    def __init__(self, job: ComputeJob, handle: Any) -> None:
        self._job = job
        self._handle = handle

    def result(self) -> bytes:
        return self._job.result(self._handle).tobytes()

    def cancel(self) -> None:
        self._job.cancel([self._handle])


class MaskingPool:
    """`hash_mask` and `mask` as pending results, on a compute backend: the local pool's `workers` processes (this
    process when `workers` is 1), or the party's Dask cluster. The secret reaches the workers as job state
    (codec bytes) and is dropped when the pool closes; chunks travel as numpy arrays."""

    def __init__(
        self,
        secret: bytes,
        domain_key: bytes,
        workers: int | None = None,
        backend: ComputeBackend | None = None,
    ) -> None:
        backend = backend or LocalBackend()
        self.backend = backend
        self.workers = backend.cores if backend.distributed else max(1, workers or os.cpu_count() or 1)
        self._job = backend.job(_masker, {"secret": secret, "domain_key": domain_key}, workers=self.workers)

    def hash_mask(self, ids: list[str]) -> Pending:
        """Hash and mask a chunk of IDs."""
        try:
            packed = pack_texts(ids)
        except (AttributeError, UnicodeEncodeError):
            raise PsiError("an ID of a chunk is not a str encodable as UTF-8") from None
        return self._submit(_hash_mask_task, packed)

    def mask(self, values: bytes) -> Pending:
        """Mask a chunk of 32-byte elements."""
        if len(values) % ELEMENT_BYTES:
            raise PsiError(f"{len(values)} bytes are not a whole number of {ELEMENT_BYTES}-byte elements")
        return self._submit(_mask_task, (np.frombuffer(values, dtype=np.uint8),))

    def _submit(self, fn: Any, chunk: tuple[Any, ...]) -> Pending:
        try:
            return Pending(self._job, self._job.submit(fn, chunk))
        except ComputeError as exc:
            raise PsiError(str(exc)) from None

    def close(self) -> None:
        """Stop the worker processes (or drop the job's state on the cluster), dropping queued work."""
        self._job.close()

    def __enter__(self) -> MaskingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
