"""The transport between two real nodes over mutual-TLS gRPC: sizes, exactness, exactly-once, retries.

Messages travel inside a running job (the `channel` fixture), with its project's token, as every message must.
The mailbox's own bounds (arriving bytes, ended jobs) are checked directly at the end.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fedbench.errors import PeerUnavailable, RecvTimeout, Refused
from fedbench.net.mailbox import Mailbox
from fedbench.net.peer import PeerClient


@pytest.mark.parametrize("size", [1, 10 * 2**20, 300 * 2**20], ids=["1B", "10MB", "300MB"])
def test_payload_of_any_size_arrives_intact(channel, size):
    payload = np.random.default_rng(size).integers(0, 256, size=size, dtype=np.uint8).tobytes()
    key = channel.key("blob")
    channel.transport("guest").send("host", key, payload)
    received = channel.transport("host").recv("guest", key, timeout=30)
    assert len(received) == size
    assert received == payload


def test_bigints_and_arrays_round_trip_exactly(channel):
    rng = np.random.default_rng(7)
    ciphertexts = [int.from_bytes(rng.bytes(512), "big") * (-1) ** i for i in range(200)]
    payload = {
        "ciphertexts": ciphertexts,
        "weights": rng.normal(size=(50, 3)),
        "mask": rng.integers(0, 2, size=17).astype(bool),
        "ids": np.arange(10, dtype=np.int64),
        "note": "epoch 3",
    }
    key = channel.key("mixed")
    assert channel.federation.client("guest").send("host", key, payload)
    received = channel.federation.client("host").recv("guest", key, timeout=30)
    assert received["ciphertexts"] == ciphertexts
    np.testing.assert_array_equal(received["weights"], payload["weights"])
    assert received["weights"].dtype == np.float64
    np.testing.assert_array_equal(received["mask"], payload["mask"])
    assert received["mask"].dtype == np.bool_
    np.testing.assert_array_equal(received["ids"], payload["ids"])
    assert received["note"] == "epoch 3"


def test_retried_message_is_delivered_once(channel):
    client = channel.federation.peer_client("guest", "host")
    key = channel.key("once")
    assert client.push(key, "first", message_id="fixed-id-" + key, project=channel.project) is True
    assert client.push(key, "first", message_id="fixed-id-" + key, project=channel.project) is False
    host = channel.federation.client("host")
    assert host.recv("guest", key, timeout=10) == "first"
    with pytest.raises(RecvTimeout):
        host.recv("guest", key, timeout=0.5)


def test_messages_under_one_key_arrive_in_order(channel):
    key = channel.key("seq")
    client = channel.federation.peer_client("guest", "host")
    for i in range(5):
        client.push(key, i, project=channel.project)
    host = channel.federation.client("host")
    assert [host.recv("guest", key, timeout=10) for _ in range(5)] == list(range(5))


def test_peer_that_is_down_raises_peer_unavailable_after_deadline(channel):
    client = PeerClient("guest", "host", "127.0.0.1:1", channel.federation.tls("guest"))
    with pytest.raises(PeerUnavailable, match="did not answer within 1 s"):
        client.push(channel.key("down"), b"x", deadline=1.0, project=channel.project)


def test_a_channel_closed_right_after_its_requests_raises_nothing_in_the_background(channel):
    """Each request first waits for the channel to be ready, which starts gRPC's connectivity-polling thread;
    closing the channel while that thread still polls made it raise "Channel closed!" (grpc/grpc#18995)."""
    errors: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        for _ in range(4):
            client = channel.federation.peer_client("guest", "host")
            for _ in range(4):
                with pytest.raises(Refused):
                    client.request("no.such.action", {})
            client.close()
        time.sleep(2.0)  # the deferred closes, and the polls they would have raced
    finally:
        threading.excepthook = previous
    assert errors == []


def test_node_transport_sends_from_inside_the_node_api(channel):
    key = channel.key("fromnode")
    assert channel.federation.client("host").send("guest", key, [1, 2, 3])
    assert channel.federation.client("guest").recv("host", key, timeout=10) == [1, 2, 3]


def test_mailbox_bounds_arriving_and_waiting_bytes_together():
    mailbox = Mailbox(max_pending_bytes=100)
    with mailbox.hold(60):
        with pytest.raises(Refused, match="mailbox is full"):
            mailbox.hold(50)
        mailbox.put("guest", "j1/t/a", "m1", b"x", 60)
    with pytest.raises(Refused, match="mailbox is full"):
        mailbox.hold(50)
    assert mailbox.get("guest", "j1/t/a", timeout=1) == b"x"
    with mailbox.hold(100):
        assert mailbox.usage()["arriving_bytes"] == 100
    assert mailbox.usage()["arriving_bytes"] == 0


def test_closing_a_job_drops_its_messages_refuses_more_and_wakes_its_readers():
    mailbox = Mailbox(max_pending_bytes=100)
    mailbox.put("guest", "ended/t/a", "m1", b"x", 40)
    mailbox.put("guest", "other/t/a", "m2", b"y", 40)
    errors: list[Exception] = []

    def wait() -> None:
        try:
            mailbox.get("guest", "ended/t/b", timeout=30)
        except Refused as exc:
            errors.append(exc)

    reader = threading.Thread(target=wait)
    reader.start()
    mailbox.close("ended")
    reader.join(5)
    assert not reader.is_alive() and errors
    assert mailbox.usage()["pending_bytes"] == 40 and mailbox.usage()["messages"] == {"other": 1}
    with pytest.raises(Refused, match="ended"):
        mailbox.put("guest", "ended/t/a", "m3", b"z", 1)
    with pytest.raises(Refused, match="ended"):
        mailbox.get("guest", "ended/t/a", timeout=1)
    assert mailbox.get("guest", "other/t/a", timeout=1) == b"y"


def test_a_full_mailbox_reclaims_the_messages_of_ended_jobs_first():
    mailbox = Mailbox(max_pending_bytes=100, reclaim=lambda jobs: {j for j in jobs if j == "stale"})
    mailbox.put("guest", "stale/t/a", "m1", b"x", 80)
    with mailbox.hold(50):
        assert mailbox.usage()["messages"] == {}
