"""The group operations of ECDH-PSI: hash an ID into the group, raise an element to a secret scalar.

We use X25519 through OpenSSL (the `cryptography` package, already a dependency): it was the fastest vetted
binding measured on our machines (figures and reasons in docs/protocols/psi.md). An ID maps to the u-coordinate
``SHA-512(tag || len(domain_key) || domain_key || len(id) || id)[:32]``; masking is ``X25519(k, u)``. X25519
clamps every scalar to a multiple of the cofactor 8, so each result lies in the prime-order subgroup of the
curve or of its twist (Curve25519 is twist-secure), and ``X25519(a, X25519(b, u)) == X25519(b, X25519(a, u))``.
No curve arithmetic is written here. `MaskingPool` spreads chunks over worker processes: the library holds the
GIL, so threads would not scale.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from fedbench.psi.errors import PsiError, PsiRefused

__all__ = ["BROKEN_POOL", "ELEMENT_BYTES", "GROUP", "Masker", "MaskingPool", "new_secret"]

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


BROKEN_POOL = (
    "a PSI worker process exited unexpectedly: out of memory, killed, or, when the caller is a script, a "
    "missing `if __name__ == '__main__':` guard (worker processes import the main module, as in any "
    "multiprocessing program)"
)

_WORKER: Masker | None = None


def _init_worker(secret: bytes, domain_key: bytes, owner: int) -> None:
    global _WORKER
    _WORKER = Masker(secret, domain_key)
    threading.Thread(target=_exit_with_owner, args=(owner,), name="owner-watch", daemon=True).start()


def _exit_with_owner(owner: int) -> None:
    """A masking process whose PSI's process is gone (killed, e.g. when its step was cancelled) stops instead
    of idling on: its parent is the fork server, which lives as long as any of its children do."""
    while True:
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(3)
        time.sleep(0.5)


def _worker_hash_mask(ids: list[str]) -> bytes:
    assert _WORKER is not None
    return _WORKER.hash_mask(ids)


def _worker_mask(values: bytes) -> bytes:
    assert _WORKER is not None
    return _WORKER.mask(values)


def _context() -> Any:
    """Worker processes start from a fork server, never by forking a process that runs gRPC threads."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


class MaskingPool:
    """`hash_mask` and `mask` as futures: on `workers` processes, or in this process when `workers` is 1."""

    def __init__(self, secret: bytes, domain_key: bytes, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._inline = Masker(secret, domain_key) if self.workers == 1 else None
        self._executor = (
            None
            if self._inline
            else ProcessPoolExecutor(
                self.workers,
                mp_context=_context(),
                initializer=_init_worker,
                initargs=(secret, domain_key, os.getpid()),
            )
        )

    def hash_mask(self, ids: list[str]) -> Future[bytes]:
        """Hash and mask a chunk of IDs."""
        if self._inline:
            return _done(self._inline.hash_mask, ids)
        return self._submit(_worker_hash_mask, ids)

    def mask(self, values: bytes) -> Future[bytes]:
        """Mask a chunk of 32-byte elements."""
        if self._inline:
            return _done(self._inline.mask, values)
        return self._submit(_worker_mask, values)

    def _submit(self, fn: Any, arg: Any) -> Future[bytes]:
        assert self._executor is not None
        try:
            return self._executor.submit(fn, arg)
        except BrokenProcessPool:
            raise PsiError(BROKEN_POOL) from None

    def close(self) -> None:
        """Stop the worker processes, dropping queued work."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> MaskingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _done(fn: Any, arg: Any) -> Future[bytes]:
    future: Future[bytes] = Future()
    try:
        future.set_result(fn(arg))
    except Exception as exc:
        future.set_exception(exc)
    return future
