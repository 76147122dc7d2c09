"""The ECDH-PSI protocol: exact intersections, release policies, refusals, ordering, fresh secrets, real gRPC."""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedbench.errors import RecvTimeout
from fedbench.net.transport import InMemoryFederation, Transport
from fedbench.psi import PsiError, PsiPeerError, PsiRefused, PsiResult, prepare_ids, run_psi
from fedbench.psi import group as psi_group

KEY = b"project-42-psi-key"
ROLES = {"guest": "initiator", "host": "partner"}
HANG_GUARD = 500.0
"""How long `run_pair` waits for a side before calling it hung: only a hang reaches it, never a slow machine
(a 200,000-ID PSI took 123 s under a load average of 25 on 2 cores); below pytest's 600 s timeout."""
PROMPT = 10.0
"""A protocol timeout far above what a small in-memory exchange needs and far below the 1800 s default: a side
that is not told of its peer's refusal or failure ends on this timeout (a `RecvTimeout`), not on the reason."""


class Recording(Transport):
    """A transport that keeps every payload its party received."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.party = inner.party
        self.received: list[Any] = []

    def send(self, party: str, key: str, payload: Any) -> None:
        self.inner.send(party, key, payload)

    def recv(self, party: str, key: str, timeout: float = 60.0) -> Any:
        payload = self.inner.recv(party, key, timeout)
        self.received.append(payload)
        return payload


def run_pair(
    guest_ids: list[str],
    host_ids: list[str],
    *,
    transports: dict[str, Transport] | None = None,
    limit: float = HANG_GUARD,
    key_prefix: str | None = None,
    **options: Any,
) -> dict[str, PsiResult | BaseException]:
    """Both sides in two threads (named after the party); a side's exception is returned, not raised."""
    if transports is None:
        federation = InMemoryFederation(["guest", "host"])
        transports = {party: federation.transport(party) for party in ROLES}
    per_party = {
        party: {k[len(party) + 1 :]: v for k, v in options.items() if k.startswith(party + "_")}
        for party in ROLES
    }
    shared = {k: v for k, v in options.items() if not k.startswith(("guest_", "host_"))}
    shared.setdefault("release", "both")
    shared.setdefault("domain_key", KEY)
    key_prefix = key_prefix or f"job-{uuid.uuid4().hex[:8]}/psi"
    out: dict[str, PsiResult | BaseException] = {}

    def side(party: str, ids: list[str]) -> None:
        peer = "host" if party == "guest" else "guest"
        try:
            out[party] = run_psi(
                transports[party],
                role=ROLES[party],
                peer=peer,
                ids=ids,
                key_prefix=key_prefix,
                **{**shared, **per_party[party]},
            )
        except BaseException as exc:
            out[party] = exc

    threads = [
        threading.Thread(target=side, args=(party, ids), name=party)
        for party, ids in (("guest", guest_ids), ("host", host_ids))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(limit)
        assert not thread.is_alive(), "a side of the PSI hung"
    return out


def ok(result: PsiResult | BaseException) -> PsiResult:
    if isinstance(result, BaseException):
        raise result
    return result


def make_sets(n: int, overlap: float = 0.5, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    common = [f"c{rng.getrandbits(64):x}" for _ in range(int(n * overlap))]
    guest = common + [f"g{rng.getrandbits(64):x}" for _ in range(n - len(common))]
    host = common + [f"h{rng.getrandbits(64):x}" for _ in range(n - len(common))]
    rng.shuffle(guest)
    rng.shuffle(host)
    return guest, host


def assert_exact(guest: list[str], host: list[str], out: dict[str, Any]) -> None:
    g, h = ok(out["guest"]), ok(out["host"])
    expected = set(guest) & set(host)
    assert g.intersection_size == h.intersection_size == len(expected)
    assert g.indices is not None and h.indices is not None
    matched_guest = [guest[i] for i in g.indices]
    matched_host = [host[i] for i in h.indices]
    assert set(matched_guest) == expected
    assert matched_guest == matched_host, "row k of the initiator and row k of the partner must be one ID"
    assert g.released and h.released and g.refusal is None


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_intersection_equals_plaintext_intersection(n):
    guest, host = make_sets(n, seed=n)
    out = run_pair(guest, host)
    assert_exact(guest, host, out)
    assert ok(out["guest"]).size_peer == len(host)


def test_one_side_empty():
    guest, _ = make_sets(50)
    out = run_pair(guest, [])
    assert ok(out["guest"]).intersection_size == ok(out["host"]).intersection_size == 0
    indices = ok(out["guest"]).indices
    assert indices is not None and len(indices) == 0


def test_many_chunks_on_worker_processes():
    """Two worker processes mask 13 tasks a side (chunks of 4,096 IDs), as many as 200,000 IDs with the
    default chunks give; the sizes the protocol is built for run in benchmarks/psi.py."""
    guest, host = make_sets(50_000, overlap=0.3, seed=7)
    out = run_pair(guest, host, workers=2, chunk_size=4096)
    assert_exact(guest, host, out)
    assert ok(out["guest"]).metrics()["match_rate_self"] == pytest.approx(0.3)


def test_unequal_sizes_and_chunks_of_any_size():
    guest, host = make_sets(3000, seed=3)
    host = host[:1234]
    out = run_pair(guest, host, guest_chunk_size=7, host_chunk_size=500)
    assert_exact(guest, host, out)


def test_prepared_ids_with_duplicates_empties_unicode_and_several_columns():
    guest_frame = pd.DataFrame(
        {
            "name": ["Zoë", "José", "  Müller ", "李雷", None, "Zoë", "Ann", "😀x"],
            "birth": [1990, 1985, 1970, 2001, 1999, 1990, 1980, 2000],
        }
    )
    host_frame = pd.DataFrame(
        {
            "full_name": ["Müller", "Jose\u0301", "李雷", "", "zoë", "Ann", "😀x", "Bob"],
            "year": [1970.0, 1985.0, 2001.0, 1999.0, 1990.0, 1981.0, 2000.0, 1975.0],
        }
    )
    guest = prepare_ids(guest_frame, ["name", "birth"], duplicates="first")
    host = prepare_ids(host_frame, ["full_name", "year"], duplicates="first")
    assert (guest.n_empty, guest.n_duplicates) == (1, 1)
    assert (host.n_empty, host.n_duplicates) == (1, 0)
    out = run_pair(guest.keys, host.keys)
    g, h = ok(out["guest"]), ok(out["host"])
    assert g.indices is not None and h.indices is not None
    rows_guest = guest.row_positions[g.indices]
    rows_host = host.row_positions[h.indices]
    assert sorted(guest_frame["name"].iloc[rows_guest].str.strip()) == sorted(
        ["José", "Müller", "李雷", "😀x"]
    )
    assert [guest.keys[i] for i in g.indices] == [host.keys[i] for i in h.indices]
    assert list(guest_frame["birth"].iloc[rows_guest]) == [int(y) for y in host_frame["year"].iloc[rows_host]]


def capture_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Record each party's secret scalar (by thread name) so a test can recompute what it may not see."""
    secrets: dict[str, bytes] = {}
    original = psi_group.new_secret

    def recorded() -> bytes:
        secret = original()
        secrets[threading.current_thread().name] = secret
        return secret

    monkeypatch.setattr(psi_group, "new_secret", recorded)
    return secrets


def received_elements(recording: Recording) -> set[bytes]:
    values: set[bytes] = set()
    for payload in recording.received:
        data = payload.get("data") if isinstance(payload, dict) else None
        if isinstance(data, np.ndarray) and data.dtype == np.uint8:
            values.update(bytes(row) for row in data)
    return values


def doubly_masked(ids: list[str], first: bytes, second: bytes) -> set[bytes]:
    values = psi_group.Masker(second, KEY).mask(psi_group.Masker(first, KEY).hash_mask(ids))
    return {values[i : i + 32] for i in range(0, len(values), 32)}


@pytest.mark.parametrize("release", ["initiator", "partner", "count_only"])
def test_side_not_entitled_receives_nothing_that_identifies_rows(release, monkeypatch):
    secrets = capture_secrets(monkeypatch)
    guest, host = make_sets(400, seed=11)
    federation = InMemoryFederation(["guest", "host"])
    recordings = {party: Recording(federation.transport(party)) for party in ROLES}
    out = run_pair(guest, host, transports=dict(recordings), release=release)
    expected = len(set(guest) & set(host))
    for party, ids in (("guest", guest), ("host", host)):
        result = ok(out[party])
        assert result.intersection_size == expected
        kinds = [p.get("t", p.get("error")) for p in recordings[party].received]
        if release == ROLES[party]:
            assert result.indices is not None and {ids[i] for i in result.indices} == set(guest) & set(host)
            assert "perm" in kinds
            continue
        assert result.indices is None
        assert "perm" not in kinds
        peer = "host" if party == "guest" else "guest"
        own_doubled = doubly_masked(ids, secrets[party], secrets[peer])
        seen = received_elements(recordings[party])
        if release == "count_only" and ROLES[party] == "initiator":
            assert own_doubled <= seen, "the counting side gets its own doubly-masked values, shuffled"
        else:
            assert not seen & own_doubled, f"{party} received its own doubly-masked values"
            assert "x2" not in kinds and len(seen) == len(host if party == "guest" else guest)


def test_declared_size_over_limit_is_refused_on_both_sides_promptly():
    """Both sides end on the refusal itself: a peer left waiting would end on its short timeout instead."""
    guest, host = make_sets(100)
    out = run_pair(guest, host[:20], guest_max_peer_rows=1000, host_max_peer_rows=50, timeout=PROMPT)
    assert isinstance(out["host"], PsiRefused)
    assert "max_peer_rows" in str(out["host"]) and "100" in str(out["host"])
    assert isinstance(out["guest"], PsiRefused)
    assert "'host' refused the PSI" in str(out["guest"]) and "max_peer_rows" in str(out["guest"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"host_release": "initiator"}, "release policies differ"),
        ({"host_domain_key": b"another project"}, "different PSI domain keys"),
    ],
)
def test_mismatched_parameters_are_refused(option, message):
    guest, host = make_sets(10)
    out = run_pair(guest, host, timeout=30, **option)
    for party in ROLES:
        assert isinstance(out[party], PsiRefused), out[party]
        assert message in str(out[party])


def test_under_min_intersection_no_rows_are_released():
    guest, host = make_sets(100, overlap=0.05)
    out = run_pair(guest, host, guest_min_intersection=10)
    for party in ROLES:
        result = ok(out[party])
        assert result.intersection_size == 5
        assert not result.released and result.indices is None
        assert result.min_intersection == 10
        assert "fewer than min_intersection=10" in (result.refusal or "")
        assert result.metrics()["refusal"] == result.refusal


def test_at_min_intersection_rows_are_released():
    guest, host = make_sets(100, overlap=0.05)
    out = run_pair(guest, host, min_intersection=5, release="initiator")
    indices = ok(out["guest"]).indices
    assert ok(out["guest"]).released and indices is not None and len(indices) == 5
    assert ok(out["host"]).released and ok(out["host"]).indices is None


def test_fresh_secrets_give_different_values_on_the_wire():
    guest, host = make_sets(200)
    seen = []
    for _ in range(2):
        federation = InMemoryFederation(["guest", "host"])
        recording = Recording(federation.transport("guest"))
        out = run_pair(guest, host, transports={"guest": recording, "host": federation.transport("host")})
        assert_exact(guest, host, out)
        seen.append(received_elements(recording))
    assert len(seen[0]) == len(seen[1]) > 0
    assert not seen[0] & seen[1]


def test_a_local_failure_reaches_the_peer_as_a_value():
    """The peer learns of the failure from the failing side: left waiting, it would end on its short timeout."""
    guest, host = make_sets(30)
    out = run_pair(guest + guest[:1], host, timeout=PROMPT)
    assert isinstance(out["guest"], PsiError) and "duplicate" in str(out["guest"])
    assert isinstance(out["host"], PsiPeerError) and "'guest' failed" in str(out["host"])
    assert not isinstance(out["host"], RecvTimeout), "the host ended on its timeout, not on the guest's word"


def test_more_values_than_declared_are_refused():
    federation = InMemoryFederation(["guest", "host"])
    liar = federation.transport("host")
    key = "job-liar/psi/psi"
    out: dict[str, Any] = {}

    def honest() -> None:
        try:
            run_psi(
                federation.transport("guest"),
                role="initiator",
                peer="host",
                ids=["a", "b"],
                domain_key=KEY,
                key_prefix="job-liar/psi",
                release="both",
                timeout=10,
            )
        except BaseException as exc:
            out["guest"] = exc

    thread = threading.Thread(target=honest)
    thread.start()
    hello = liar.recv("guest", key, 10)
    liar.send("guest", key, {**hello, "role": "partner", "size": 1})
    liar.send("guest", key, {"t": "ok"})
    assert liar.recv("guest", key, 10) == {"t": "ok"}
    liar.send("guest", key, {"t": "x1", "data": np.zeros((3, 32), dtype=np.uint8)})
    thread.join(20)
    assert isinstance(out["guest"], PsiRefused) and "more 'x1' values than it declared" in str(out["guest"])
    while True:
        message = liar.recv("guest", key, 10)
        if "error" in message:
            break
    assert message["error"] == "psi_refused"


def test_the_side_that_does_not_count_says_its_count_is_the_peers_report():
    guest, host = make_sets(100)
    out = run_pair(guest, host, release="count_only")
    assert ok(out["guest"]).metrics()["intersection_size_from"] == "own count"
    assert ok(out["host"]).metrics()["intersection_size_from"] == "peer"
    both = run_pair(guest, host)
    assert {ok(both[party]).metrics()["intersection_size_from"] for party in ROLES} == {"own count"}


def test_progress_is_reported_up_to_one():
    reports: list[tuple[float, str]] = []
    guest, host = make_sets(500)
    out = run_pair(guest, host, guest_progress=lambda f, m: reports.append((f, m)))
    assert_exact(guest, host, out)
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] == 0.0
    assert any("own IDs" in m for _, m in reports)


def test_over_real_grpc_transport(channel):
    """Through two real nodes, inside a running job of theirs (a node takes messages only into its jobs)."""
    guest, host = make_sets(1000, seed=5)
    transports = {party: channel.transport(party) for party in ROLES}
    out = run_pair(
        guest, host, transports=transports, key_prefix=f"{channel.job_id}/psi-{uuid.uuid4().hex[:8]}"
    )
    assert_exact(guest, host, out)
