"""The transport between two real nodes over mutual-TLS gRPC: sizes, exactness, exactly-once, retries."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from fedbench.errors import PeerUnavailable, RecvTimeout
from fedbench.net.peer import PeerClient
from fedbench.net.transport import GrpcTransport, message_key


def _key(tag: str) -> str:
    return message_key("job-" + uuid.uuid4().hex[:8], "task", tag)


@pytest.mark.parametrize("size", [1, 10 * 2**20, 300 * 2**20], ids=["1B", "10MB", "300MB"])
def test_payload_of_any_size_arrives_intact(federation, size):
    payload = np.random.default_rng(size).integers(0, 256, size=size, dtype=np.uint8).tobytes()
    key = _key("blob")
    guest = GrpcTransport(
        "guest", lambda p: federation.peer_client("guest", p), federation.client("guest").recv
    )
    host = GrpcTransport("host", lambda p: federation.peer_client("host", p), federation.client("host").recv)
    guest.send("host", key, payload)
    received = host.recv("guest", key, timeout=30)
    assert len(received) == size
    assert received == payload


def test_bigints_and_arrays_round_trip_exactly(federation):
    rng = np.random.default_rng(7)
    ciphertexts = [int.from_bytes(rng.bytes(512), "big") * (-1) ** i for i in range(200)]
    payload = {
        "ciphertexts": ciphertexts,
        "weights": rng.normal(size=(50, 3)),
        "mask": rng.integers(0, 2, size=17).astype(bool),
        "ids": np.arange(10, dtype=np.int64),
        "note": "epoch 3",
    }
    key = _key("mixed")
    assert federation.client("guest").send("host", key, payload)
    received = federation.client("host").recv("guest", key, timeout=30)
    assert received["ciphertexts"] == ciphertexts
    np.testing.assert_array_equal(received["weights"], payload["weights"])
    assert received["weights"].dtype == np.float64
    np.testing.assert_array_equal(received["mask"], payload["mask"])
    assert received["mask"].dtype == np.bool_
    np.testing.assert_array_equal(received["ids"], payload["ids"])
    assert received["note"] == "epoch 3"


def test_retried_message_is_delivered_once(federation):
    client = federation.peer_client("guest", "host")
    key = _key("once")
    assert client.push(key, "first", message_id="fixed-id-" + key) is True
    assert client.push(key, "first", message_id="fixed-id-" + key) is False
    host = federation.client("host")
    assert host.recv("guest", key, timeout=10) == "first"
    with pytest.raises(RecvTimeout):
        host.recv("guest", key, timeout=0.5)


def test_messages_under_one_key_arrive_in_order(federation):
    key = _key("seq")
    client = federation.peer_client("guest", "host")
    for i in range(5):
        client.push(key, i)
    host = federation.client("host")
    assert [host.recv("guest", key, timeout=10) for _ in range(5)] == list(range(5))


def test_peer_that_is_down_raises_peer_unavailable_after_deadline(federation):
    client = PeerClient("guest", "host", "127.0.0.1:1", federation.tls("guest"))
    with pytest.raises(PeerUnavailable, match="did not answer within 1 s"):
        client.push(_key("down"), b"x", deadline=1.0)


def test_node_transport_sends_from_inside_the_node_api(federation):
    key = _key("fromnode")
    assert federation.client("host").send("guest", key, [1, 2, 3])
    assert federation.client("guest").recv("host", key, timeout=10) == [1, 2, 3]
