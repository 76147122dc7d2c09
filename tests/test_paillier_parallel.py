"""Multi-process execution and the background obfuscator pool: parallel results equal serial ones.

The engine keeps small vectors in-process; here the cost threshold is lowered so that small vectors also
take the worker-process path, and every operation is compared with its serial run and with numpy.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedbench.compute.owner_watch import owner_alive
from fedbench.crypto.paillier import (
    EncryptedVector,
    ObfuscatorPool,
    PackingSpec,
    PrivateKey,
    PublicKey,
    WeakKeyWarning,
    encrypt_packed,
    generate_keypair,
    get_workers,
    obfuscation,
    parallel,
    set_workers,
)
from fedbench.crypto.paillier.pool import PEER_WIDE_POOL

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

FAST = settings(max_examples=10, deadline=None, database=None)


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakKeyWarning)
        return generate_keypair(1024)


@pytest.fixture(scope="module")
def always_parallel() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "MIN_PARALLEL_COST", 0)
        yield


def test_engine_keeps_small_vectors_in_process() -> None:
    assert parallel.plan(10, 100.0, workers=2) == 1
    assert parallel.plan(10_000, 100.0, workers=1) == 1
    assert parallel.plan(10_000, 100.0, workers=2) == 2
    assert parallel.plan(3, 1e9, workers=8) == 3
    set_workers(1)
    try:
        assert get_workers() == 1 and parallel.plan(10_000, 100.0) == 1
        assert get_workers(3) == 3
    finally:
        set_workers(None)
    with pytest.raises(ValueError):
        set_workers(0)
    with pytest.raises(ValueError):
        get_workers(-1)


@FAST
@given(x=hnp.arrays(np.float64, st.integers(2, 9), elements=st.floats(-1e6, 1e6)))
def test_parallel_equals_serial_for_every_operation(keys: Any, always_parallel: None, x: np.ndarray) -> None:
    public, private = keys
    y = np.linspace(-3.5, 2.25, len(x))
    matrix = np.outer(np.arange(len(x)) - 2.5, [1.0, -0.5, 2.0])
    for key, mode in (
        (public, "fixed_base"),
        (public, "textbook"),
        (private, "fixed_base"),
        (private, "crt"),
    ):
        ev = key.encrypt(x, mode=mode, workers=2)  # type: ignore[attr-defined]
        np.testing.assert_allclose(private.decrypt(ev, workers=2), private.decrypt(ev, workers=1))
        np.testing.assert_allclose(private.decrypt(ev, workers=2), x, atol=2.0**-32)
    serial, par = ev.multiply(y, workers=1), ev.multiply(y, workers=2)
    assert private.decrypt(serial).tolist() == private.decrypt(par).tolist()
    np.testing.assert_allclose(private.decrypt(par), x * y, rtol=1e-12, atol=(np.abs(x).max() + 4) * 2.0**-32)
    serial_dot, par_dot = ev.dot(matrix, workers=1), ev.dot(matrix, workers=2)
    assert private.decrypt(serial_dot).tolist() == private.decrypt(par_dot).tolist()
    atol = float((np.abs(matrix).T @ (np.abs(x) + 1)).max() + np.abs(x).sum() + 1) * 2.0**-32
    np.testing.assert_allclose(private.decrypt(par_dot), matrix.T @ x, rtol=1e-12, atol=atol)
    naive = ev.dot(matrix, workers=2, method="naive")
    assert private.decrypt(naive).tolist() == private.decrypt(par_dot).tolist()
    assert len(public.obfuscators(5, workers=2)) == 5


def test_parallel_with_a_thousand_rows(keys: Any) -> None:
    public, private = keys
    rng = np.random.default_rng(7)
    d = rng.normal(size=1000)
    x = rng.normal(size=(1000, 3))
    ev = public.encrypt(d)
    got = private.decrypt(ev.dot(x))
    np.testing.assert_allclose(got, x.T @ d, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(private.decrypt(ev), d, atol=2.0**-32)
    packed = encrypt_packed(private, np.c_[d, d * d], PackingSpec(40, 2, max_additions=999))
    np.testing.assert_allclose(private.decrypt(packed.sum())[0], [d.sum(), (d * d).sum()], atol=1e-6)


def test_pool_refills_in_the_background_and_hands_out_each_once(keys: Any) -> None:
    public, private = keys
    with ObfuscatorPool(public, size=32, batch=8, workers=1) as pool:
        assert pool.fill(timeout=30)
        assert len(pool) == 32 and "ready=32/32" in repr(pool)
        first = pool.take(20)
        assert len(first) == 20 and len(set(first)) == 20
        deadline = time.monotonic() + 30
        while len(pool) < 32 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(pool) == 32
        more = pool.take(40)
        assert len(more) == 40 and not set(first) & set(more)
        x = np.array([0.25, -8.0, 3.0])
        assert private.decrypt(public.encrypt(x, pool=pool)).tolist() == x.tolist()
        assert private.decrypt(private.encrypt(x, pool=pool)).tolist() == x.tolist()
    assert len(pool) == 0
    with ObfuscatorPool(private, size=8, mode="textbook", workers=2) as crt_pool:
        assert crt_pool.fill(timeout=30)
        assert private.decrypt(public.encrypt(x, pool=crt_pool)).tolist() == x.tolist()
    with pytest.raises(ValueError):
        ObfuscatorPool(public, size=0)


def test_pool_obfuscators_are_valid_nth_residues(keys: Any) -> None:
    public, private = keys
    with ObfuscatorPool(public, size=4) as pool:
        for r in pool.take(4):
            assert 0 < r < public.nsq
            assert private.decrypt(EncryptedVector(public, [r], 0, 0)).tolist() == [0]


def test_a_large_pool_for_a_peer_key_uses_a_wider_table_of_the_same_long_exponents(keys: Any) -> None:
    """A batch-sized pool for a peer's key makes its obfuscators from a wider table; they stay valid."""
    public, private = keys
    peer = PublicKey.from_dict(public.to_dict())
    assert [obfuscation.peer_window(bits, bits + 128) for bits in (1024, 2048, 3072)] == [11, 10, 8]
    with ObfuscatorPool(peer, size=PEER_WIDE_POOL, total=0) as idle:
        assert idle._state.spec.window == 11 and idle._state.spec.exponent_bits == 1024 + 128
    with ObfuscatorPool(peer, size=PEER_WIDE_POOL - 1, total=0) as small:
        assert small._state.spec.window == 8
    spec = dataclasses.replace(peer.obfuscator_spec(), window=11)
    for r in obfuscation.obfuscators(spec, 3):
        assert private.decrypt(EncryptedVector(public, [r], 0, 0)).tolist() == [0]


_KILLED_OWNER = """
import os, signal, sys
from fedbench.crypto.paillier import parallel

executor = parallel._get_executor(2)
print(" ".join(str(pid) for pid in executor._processes), flush=True)
os.kill(os.getpid(), getattr(signal, sys.argv[1]))
"""


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_the_worker_processes_end_with_a_killed_owner(signal_name: str) -> None:
    """A process killed while it holds the engine's workers (a step stopped mid-operation) takes them with it:
    they would otherwise wait on their task queue forever, with their fork server."""
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_OWNER, signal_name], capture_output=True, text=True, timeout=120
    )
    assert done.returncode < 0, done.stderr
    workers = [int(pid) for pid in done.stdout.split()]
    assert len(workers) == 2, done.stdout + done.stderr
    give_up = time.monotonic() + 30
    while any(owner_alive(pid) for pid in workers) and time.monotonic() < give_up:
        time.sleep(0.1)
    left = [pid for pid in workers if owner_alive(pid)]
    for pid in left:
        os.kill(pid, 9)
    assert left == [], f"workers {left} outlived their owner"
