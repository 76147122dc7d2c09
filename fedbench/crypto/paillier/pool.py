"""`ObfuscatorPool`: obfuscators made ahead of time by a background thread, used once each by `encrypt`.

A vertical protocol spends much of its time waiting for the peer; the pool fills that time. A daemon
thread keeps up to `size` obfuscators ready, making them in batches through `parallel.make_obfuscators`:
a default batch (1024) is worth worker processes, so the thread only waits while every core refills;
smaller batches stay in the thread, which holds the GIL a few microseconds per multiplication. `encrypt(...,
pool=pool)` takes what it needs and makes any shortfall inline. Each obfuscator is handed out once and
never kept after; it is as secret as the plaintext it hides. The pool of a private key makes them
modulo p^2 and q^2, from wide tables when the pool is large (`WIDE_POOL`; `window=` chooses); the pool of
a peer's key from a wider table than 8 bits when it holds a batch of rows (`PEER_WIDE_POOL`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from typing import TYPE_CHECKING

from gmpy2 import mpz

from fedbench.crypto.paillier import parallel
from fedbench.crypto.paillier.errors import PaillierError
from fedbench.crypto.paillier.obfuscation import WIDE_WINDOW, peer_window

if TYPE_CHECKING:
    from fedbench.crypto.paillier.keys import Mode, PrivateKey, PublicKey
    from fedbench.crypto.paillier.obfuscation import ObfuscatorSpec

__all__ = ["PEER_WIDE_POOL", "WIDE_POOL", "ObfuscatorPool"]

WIDE_POOL = 16384
"""A key owner's pool of at least this size makes its fixed-base obfuscators from wide tables (`WIDE_WINDOW`
bits per digit, in its worker processes): a third fewer multiplications each, for a table of about 200 MB
and 1 s per worker process at 2048 bits, repaid after some ten thousand obfuscators."""

PEER_WIDE_POOL = 2048
"""A pool for a peer's key of at least this size makes its obfuscators from a wider table (`peer_window`, in
its worker processes): their exponents are long (n_bits + 128 bits), so the table (0.4 s at 1024 bits, 1.1 s at
2048 per worker) is repaid within a batch or two of a vertical protocol's rows."""


class _State:
    """What the refill thread shares with the pool (the thread holds no reference to the pool itself)."""

    def __init__(
        self, spec: ObfuscatorSpec, size: int, batch: int, workers: int | None, total: int | None
    ) -> None:
        self.spec = spec
        self.size = size
        self.batch = batch
        self.workers = workers
        self.total = total
        self.handed = 0
        self.items: deque[mpz] = deque()
        self.cond = threading.Condition()
        self.closed = False
        self.busy = False
        self.error: BaseException | None = None

    def wanted(self) -> int:
        """How many more the refill should make now: up to `size` ready, and within `total` if there is one."""
        room = self.size - len(self.items)
        if self.total is not None:
            room = min(room, self.total - self.handed - len(self.items))
        return max(0, min(self.batch, room))

    def full(self) -> bool:
        """`size` ready, or all that `total` still allows."""
        target = self.size if self.total is None else min(self.size, self.total - self.handed)
        return len(self.items) >= target

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.closed and not self.wanted():
                    self.cond.wait()
                if self.closed:
                    return
                need = self.wanted()
                self.busy = True
            try:
                made = parallel.make_obfuscators(self.spec, need, self.workers)
            except BaseException as exc:
                with self.cond:
                    self.error = exc
                    self.closed = True
                    self.busy = False
                    self.cond.notify_all()
                return
            with self.cond:
                self.items.extend(made)
                self.busy = False
                self.cond.notify_all()


class ObfuscatorPool:
    """Up to `size` ready obfuscators for one key, refilled in the background in batches of `batch`.

    `total`, if given, is the most the pool will be asked for over its life (e.g. rows times trees): the refill
    stops once the obfuscators handed out and ready reach it, so no core is spent on ones nobody will take.
    """

    def __init__(
        self,
        key: PublicKey | PrivateKey,
        size: int = 4096,
        *,
        mode: Mode = "fixed_base",
        batch: int = 1024,
        workers: int | None = None,
        window: int | None = None,
        total: int | None = None,
    ) -> None:
        if type(size) is not int or size < 1 or type(batch) is not int or batch < 1:
            raise ValueError("size and batch must be positive ints")
        if total is not None and (type(total) is not int or total < 0):
            raise ValueError(f"total must be a non-negative int or None, got {total!r}")
        self.public: PublicKey = key.public
        self.mode = mode
        spec = key.obfuscator_spec(mode)
        if window is None:
            window = spec.window
            if spec.kind == "crt_fixed_base" and size >= WIDE_POOL:
                window = WIDE_WINDOW
            elif spec.kind == "peer_fixed_base" and size >= PEER_WIDE_POOL:
                window = peer_window(self.public.n_bits, spec.exponent_bits)
        self._state = _State(dataclasses.replace(spec, window=window), size, batch, workers, total)
        # A small shortfall is made in-process from the key's ordinary table, not a wide one built for it.
        self._narrow = spec
        self._thread = threading.Thread(target=self._state.run, name="paillier-obfuscator-pool", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return (
            f"ObfuscatorPool(key={self.public.key_id[:12]}, mode={self.mode}, ready={len(self)}/{self.size})"
        )

    def __len__(self) -> int:
        with self._state.cond:
            return len(self._state.items)

    @property
    def size(self) -> int:
        """How many obfuscators the pool keeps ready."""
        return self._state.size

    def take(self, count: int) -> list[mpz]:
        """`count` obfuscators, each handed out once: ready ones first, the shortfall made now.

        While the refill thread is making a batch, wait for it rather than make the same work twice over.
        """
        state = self._state
        with state.cond:
            state.cond.wait_for(lambda: state.closed or len(state.items) >= count or not state.busy)
            ready = min(count, len(state.items))
            out = [state.items.popleft() for _ in range(ready)]
            state.handed += count
            state.cond.notify_all()
        if ready < count:
            short = count - ready
            spec = state.spec if short >= state.batch else self._narrow
            out.extend(parallel.make_obfuscators(spec, short, state.workers))
        return out

    def fill(self, timeout: float | None = None) -> bool:
        """Wait until the pool is full, or holds all that `total` still allows (True), or `timeout` seconds
        passed (False)."""
        state = self._state
        with state.cond:
            done = state.cond.wait_for(lambda: state.closed or state.full(), timeout)
            if state.error is not None:
                raise PaillierError(f"the obfuscator pool's refill failed: {state.error}") from state.error
            return bool(done) and state.full()

    def close(self) -> None:
        """Stop refilling and drop the ready obfuscators."""
        state = self._state
        with state.cond:
            state.closed = True
            state.items.clear()
            state.cond.notify_all()

    def __enter__(self) -> ObfuscatorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            with state.cond:
                state.closed = True
                state.cond.notify_all()
