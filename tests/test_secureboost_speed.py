"""The fast paths of SecureBoost's Paillier work give exactly the products of the plain definition: the host's
histogram sums (columns grouped, on worker processes), their packing, and the key owner's wide fixed-base
tables (fewer multiplications per obfuscator, never a shorter exponent, built only in worker processes)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from gmpy2 import mpz

from fedbench.crypto.paillier import (
    EncryptedVector,
    ObfuscatorPool,
    PrivateKey,
    PublicKey,
    generate_keypair,
    obfuscation,
    parallel,
)
from fedbench.crypto.paillier import buckets as bucket_ops
from fedbench.ml.secureboost.host import bin_sums, pack_sums

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    return generate_keypair(1024)


@pytest.fixture
def on_workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every operation worth two chunks goes to the worker processes; the names of the tasks they ran."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_COST", 200)
    ran: list[str] = []
    real = parallel._run

    def run(fn: Any, calls: Any, workers: Any) -> Any:
        ran.append(fn.__name__)
        return real(fn, calls, workers)

    monkeypatch.setattr(parallel, "_run", run)
    yield ran


def _ciphertexts(public: PublicKey, count: int) -> list[mpz]:
    return [mpz(secrets.randbelow(int(public.nsq) - 2) + 1) for _ in range(count)]


def _cumulative_sums(
    cts: list[mpz], codes: np.ndarray, features: list[int], bin_counts: np.ndarray, nsq: mpz
) -> list[mpz]:
    """The definition: per feature, the running product through bins 0..k of present values, then the
    product of the rows beyond them (the missing slot), one row at a time."""
    out = []
    for f in features:
        present = int(bin_counts[f])
        acc = mpz(1)
        for b in range(present):
            for i in np.flatnonzero(codes[:, f] == b).tolist():
                acc = acc * cts[i] % nsq
            out.append(acc)
        missing = mpz(1)
        for i in np.flatnonzero(codes[:, f] >= present).tolist():
            missing = missing * cts[i] % nsq
        out.append(missing)
    return out


def test_host_sums_equal_the_definition_on_workers_for_a_node_without_its_top_bins(keys, on_workers):
    """A node's rows need not reach every bin (nor the missing slot): the sums still cover every bin."""
    public, _ = keys
    rng = np.random.default_rng(3)
    rows, bins = 400, 8
    bin_counts = np.array([8, 5, 8, 3, 8, 8, 2])
    codes = np.stack([rng.integers(0, c, rows) for c in bin_counts], axis=1).astype(np.uint8)
    codes[rng.random(rows) < 0.1, 2] = bins  # some missing values in one feature
    codes[:, 0] = np.minimum(codes[:, 0], 4)  # no row in the top bins of feature 0
    cts = _ciphertexts(public, rows)
    features = [0, 2, 3, 4, 6]
    expected = _cumulative_sums(cts, codes, features, bin_counts, public.nsq)
    assert bin_sums(cts, codes, features, bin_counts, public) == expected
    low = [0, 3]  # no row of the node beyond bin 4: still 8 + 1 and 3 + 1 sums
    assert bin_sums(cts, codes, low, bin_counts, public) == _cumulative_sums(
        cts, codes, low, bin_counts, public.nsq
    )
    assert "_bucket_task" in on_workers, "the host's sums ran on the engine's worker processes"
    packed = pack_sums(expected, public, 90)
    assert "_pack_task" in on_workers
    assert packed == bucket_ops.pack_products(expected, 90, (public.n_bits - 3) // 90, public.nsq)


def test_grouped_columns_take_fewer_multiplications_with_the_same_products(keys):
    """Many rows over few buckets: columns taken together cost well under one multiplication per row and
    column, and every bucket's product is that of its rows."""
    public, _ = keys
    rng = np.random.default_rng(5)
    rows, columns, buckets = 3000, 5, 6
    codes = rng.integers(0, buckets, size=(rows, columns)).astype(np.uint8)
    groups = bucket_ops.plan_groups(codes, buckets)
    assert any(len(g) > 1 for g in groups) and sorted(j for g in groups for j in g) == list(range(columns))
    cost = sum(bucket_ops.group_cost(codes, g, buckets) for g in groups)
    assert cost < 0.6 * rows * columns
    for few in (codes[:20], codes[:200]):
        planned = sum(bucket_ops.group_cost(few, g, buckets) for g in bucket_ops.plan_groups(few, buckets))
        assert planned <= sum(bucket_ops.group_cost(few, [j], buckets) for j in range(columns))
    cts = _ciphertexts(public, rows)
    products = bucket_ops.bucket_products(cts, codes, buckets, public.nsq)
    for j in (0, columns - 1):
        for b in range(buckets):
            acc = mpz(1)
            for i in np.flatnonzero(codes[:, j] == b).tolist():
                acc = acc * cts[i] % public.nsq
            assert products[j][b] == acc


def test_a_large_owner_pool_makes_obfuscators_from_wide_tables_in_its_workers(keys):
    public, private = keys
    with ObfuscatorPool(private, size=4) as small:
        assert small._state.spec.window == 8
    with ObfuscatorPool(public, size=20_000) as peer_sized:
        assert peer_sized._state.spec.window == 8, "only the key owner's CRT tables are widened"
    with ObfuscatorPool(private, size=20_000) as large:
        spec = large._state.spec
        assert spec.kind == "crt_fixed_base" and spec.window == obfuscation.WIDE_WINDOW
    before = {key for key in obfuscation._TABLES if key[3] > 8}
    with ObfuscatorPool(private, size=64, window=obfuscation.WIDE_WINDOW, workers=2) as pool:
        assert pool.fill(timeout=120)
        obfuscators = pool.take(64)
        x = np.array([3.0, -1.5, 0.0, 7.25])
        assert private.decrypt(private.encrypt(x, pool=pool)).tolist() == x.tolist()
    assert {key for key in obfuscation._TABLES if key[3] > 8} == before, "wide tables stay in the workers"
    assert len(set(obfuscators)) == 64
    for r in obfuscators[:8]:
        assert private.decrypt(EncryptedVector(public, [r], 0, 0)).tolist() == [0]
    table = obfuscation.FixedBaseTable(
        3, int(private._crt.psq), public.exponent_bits, obfuscation.WIDE_WINDOW
    )
    assert table.digits * table.window >= public.exponent_bits, "the exponent is never shorter"
    assert table.digits < obfuscation.FixedBaseTable(3, 101, public.exponent_bits).digits


def test_a_pool_with_a_total_stops_refilling_once_nothing_more_will_be_asked(keys):
    """The guest's pool knows it serves at most rows x trees: after the last tree, no core makes more."""
    public, _ = keys
    with ObfuscatorPool(public, size=32, batch=8, workers=1, total=40) as pool:
        assert pool.fill(timeout=60) and len(pool) == 32
        first = pool.take(20)
        assert pool.fill(timeout=60) and len(pool) == 20, "refilled only up to what the total still allows"
        last = pool.take(20)
        time.sleep(0.5)
        assert len(pool) == 0 and pool.fill(timeout=1), "nothing more is made after the total"
        assert len(set(first) | set(last)) == 40
        assert len(pool.take(3)) == 3, "asking past the total still gets obfuscators, made on the spot"
