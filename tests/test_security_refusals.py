"""Attacks on a node's two doors (federation channel, control API): each is refused and the node keeps serving."""

from __future__ import annotations

import uuid

import grpc
import pytest

from fedbench.client.control import NodeClient
from fedbench.errors import CodecError, FedbenchError, PeerUnavailable, Refused, Unauthenticated
from fedbench.net import codec
from fedbench.net.certs import init_ca, issue_party, revoke
from fedbench.net.federation import FEDERATION_SERVICE, PushHeader
from fedbench.net.rpc import error_from_rpc
from fedbench.net.tls import TlsMaterial, channel_options, client_credentials


def assert_host_still_serves(federation):
    assert federation.peer_client("guest", "host").ping()["party"] == "host"


def test_plaintext_client_is_refused(federation):
    address = federation.home("host").load_config().federation_address
    with grpc.insecure_channel(address) as channel:
        ping = channel.unary_unary(f"/{FEDERATION_SERVICE}/Ping")
        with pytest.raises(grpc.RpcError) as info:
            ping(b"", timeout=5, metadata=[("fb-party", "guest")])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert_host_still_serves(federation)


def test_certificate_from_another_ca_is_refused(federation, tmp_path):
    init_ca(tmp_path / "rogue-ca", name="rogue CA")
    rogue = issue_party(tmp_path / "rogue-ca", tmp_path / "rogue-guest", "guest")
    key, cert, _ = rogue.load()
    tls = TlsMaterial(key=key, cert=cert, ca=federation.tls("guest").ca)
    with pytest.raises(PeerUnavailable):
        federation.peer_client("guest", "host", tls).ping(timeout=3)
    assert_host_still_serves(federation)


def test_revoked_certificate_is_refused(federation, tmp_path):
    second = issue_party(federation.ca_dir, tmp_path / "guest-2", "guest")
    key, cert, ca = second.load()
    client = federation.peer_client("guest", "host", TlsMaterial(key=key, cert=cert, ca=ca))
    assert client.ping()["party"] == "host"
    from fedbench.net.certs import certificate_serial

    revoke(federation.ca_dir, serial=certificate_serial(cert))
    with pytest.raises(Unauthenticated, match="revoked"):
        client.ping()
    with pytest.raises(Unauthenticated, match="revoked"):
        client.push("job/task/revoked", b"secret")
    assert_host_still_serves(federation)


def test_certificate_of_one_party_claiming_another_is_refused(federation):
    impostor = federation.peer_client("host", "host", federation.tls("guest"))
    with pytest.raises(Unauthenticated, match="certificate names 'guest'"):
        impostor.push("job/task/impostor", b"x")
    with pytest.raises(Unauthenticated):
        impostor.ping()
    assert_host_still_serves(federation)


def test_server_with_wrong_party_certificate_is_not_trusted(federation):
    """Dialling 'host' but reaching a node that presents guest's certificate fails TLS name checks."""
    guest_address = federation.home("guest").load_config().federation_address
    from fedbench.net.peer import PeerClient

    wrong = PeerClient("host", "host", guest_address, federation.tls("host"))
    with pytest.raises(PeerUnavailable):
        wrong.ping(timeout=3)


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["missing", "wrong"])
def test_control_api_requires_the_token(federation, token):
    address = federation.home("host").load_config().control_address
    intruder = NodeClient(address, token)
    assert intruder.health()["party"] == "host"
    with pytest.raises(Unauthenticated, match="token"):
        intruder.call("datasets.list")
    with pytest.raises(Unauthenticated):
        intruder.recv("guest", "job/task/x", timeout=1)
    with pytest.raises(Unauthenticated):
        intruder.send("guest", "job/task/x", b"x")
    assert isinstance(federation.client("host").call("datasets.list"), list)


def _raw_push(channel, header: PushHeader, chunks: list[bytes]) -> FedbenchError | None:
    federation = channel.federation
    tls = federation.tls("guest")
    address = federation.home("host").load_config().federation_address
    with grpc.secure_channel(
        address, client_credentials(tls), options=channel_options("host")
    ) as grpc_channel:
        push = grpc_channel.stream_unary(f"/{FEDERATION_SERVICE}/Push")
        try:
            push(iter(chunks), metadata=header.metadata(), timeout=30)
        except grpc.RpcError as exc:
            return error_from_rpc(exc, what="host")
    return None


def _header(channel, tag: str, size: int) -> PushHeader:
    """A header admitted by the host (a running job's key, its project's token): the payload is what's wrong."""
    return PushHeader("guest", channel.key(tag), f"m-{tag}-{uuid.uuid4().hex}", size, *channel.project)


def test_malformed_frame_is_refused_and_node_stays_up(channel):
    garbage = b"FBC1\xff\xff\xff\x7fnot a header at all"
    error = _raw_push(channel, _header(channel, "bad", len(garbage)), [garbage])
    assert isinstance(error, CodecError)
    assert_host_still_serves(channel.federation)


def test_frame_longer_or_shorter_than_declared_is_refused(channel):
    body = codec.encode(b"0123456789")
    longer = _raw_push(channel, _header(channel, "long", 5), [body])
    shorter = _raw_push(channel, _header(channel, "short", len(body) + 9), [body])
    assert isinstance(longer, CodecError) and "declared size" in str(longer)
    assert isinstance(shorter, CodecError) and "declared" in str(shorter)
    assert_host_still_serves(channel.federation)


def test_oversized_message_is_refused_before_it_is_read(channel):
    declared = 1 << 40
    error = _raw_push(channel, _header(channel, "huge", declared), [b"x"])
    assert isinstance(error, Refused) and "over this node's limit" in str(error)
    assert_host_still_serves(channel.federation)


def test_missing_push_header_is_refused(federation):
    tls = federation.tls("guest")
    address = federation.home("host").load_config().federation_address
    with grpc.secure_channel(address, client_credentials(tls), options=channel_options("host")) as channel:
        push = channel.stream_unary(f"/{FEDERATION_SERVICE}/Push")
        with pytest.raises(grpc.RpcError) as info:
            push(iter([b"abc"]), metadata=[("fb-party", "guest")], timeout=10)
    assert isinstance(error_from_rpc(info.value, what="host"), CodecError)
    assert_host_still_serves(federation)
