"""Mutual-TLS credentials for the federation channel, built from a party's key, certificate and CA.

Both directions are authenticated: the server demands a client certificate from the federation CA, and the
client checks that the server's certificate names the party it meant to reach (the party name is a DNS SAN).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

__all__ = ["TlsMaterial", "channel_options", "client_credentials", "server_credentials"]


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes of one party's private key, certificate and the federation CA certificate."""

    key: bytes
    cert: bytes
    ca: bytes


def server_credentials(tls: TlsMaterial) -> grpc.ServerCredentials:
    """Server side: present our certificate and require a client certificate signed by the CA."""
    return grpc.ssl_server_credentials(
        [(tls.key, tls.cert)], root_certificates=tls.ca, require_client_auth=True
    )


def client_credentials(tls: TlsMaterial) -> grpc.ChannelCredentials:
    """Client side: trust only the federation CA and present our own certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )


def channel_options(peer: str) -> list[tuple[str, object]]:
    """Channel options that make TLS verify the server's certificate names `peer`."""
    return [
        ("grpc.ssl_target_name_override", peer),
        ("grpc.default_authority", peer),
        ("grpc.enable_retries", 0),
        ("grpc.keepalive_time_ms", 30_000),
    ]
