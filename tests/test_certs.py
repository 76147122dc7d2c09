"""Tests of the federation CA and party certificates: modes, signing, revocation, CLI and a real mTLS call."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import stat
import sys
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedbench.cli import certs as certs_cli
from fedbench.errors import CertificateError, FedbenchError
from fedbench.net import certs

__all__: list[str] = []


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    ca = tmp_path / "ca"
    certs.init_ca(ca)
    return ca


def test_modes_keys_private_from_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open
    opened: list[tuple[str, int, int]] = []

    def spy(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        fd = real_open(path, flags, mode, **kwargs)
        if str(path).endswith(".key"):
            opened.append((str(path), flags, stat.S_IMODE(os.fstat(fd).st_mode)))
        return fd

    monkeypatch.setattr(os, "open", spy)
    old_umask = os.umask(0)
    try:
        ca = tmp_path / "ca"
        certs.init_ca(ca)
        creds = certs.issue_party(ca, tmp_path / "bank-a", "bank-a")
    finally:
        os.umask(old_umask)
    assert {Path(p).name for p, _, _ in opened} == {"ca.key", "party.key"}
    for _, flags, mode in opened:
        assert flags & os.O_EXCL and flags & os.O_CREAT
        assert mode == 0o600
    assert _mode(ca / "ca.key") == 0o600
    assert _mode(creds.key_path) == 0o600
    for public in (ca / "ca.pem", ca / "crl.pem", ca / "index.json", creds.cert_path, creds.ca_path):
        assert _mode(public) == 0o644
    for directory in (ca, ca / "issued", tmp_path / "bank-a"):
        assert _mode(directory) == 0o700


def test_ca_refuses_reinit(ca_dir: Path) -> None:
    before = (ca_dir / "ca.key").read_bytes()
    with pytest.raises(CertificateError, match="already exists.*certs sign --ca"):
        certs.init_ca(ca_dir)
    assert (ca_dir / "ca.key").read_bytes() == before


def test_sign_chain_sans_and_usages(ca_dir: Path, tmp_path: Path) -> None:
    csr = certs.create_party_key(tmp_path / "p", "bank-a")
    issued = certs.sign_request(ca_dir, csr, hosts=("localhost", "127.0.0.1", "Node1.Example.org", "::1"))
    assert issued.parent == ca_dir / "issued"
    cert, ca = _cert(issued), _cert(ca_dir / "ca.pem")
    cert.verify_directly_issued_by(ca)
    assert issued.name == f"bank-a-{cert.serial_number:x}.pem"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bank-a"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bank-a", "localhost", "node1.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc <= ca.not_valid_after_utc

    certs.install_certificate(tmp_path / "p", issued, ca_dir / "ca.pem")
    creds = certs.PartyCredentials.from_dir(tmp_path / "p")
    assert creds.party == "bank-a"
    key_pem, cert_pem, ca_pem = creds.load()
    assert b"PRIVATE KEY" in key_pem
    assert certs.peer_identity(cert_pem) == "bank-a"
    assert certs.certificate_serial(cert_pem) == cert.serial_number
    assert certs.fingerprint(cert_pem) == cert.fingerprint(hashes.SHA256()).hex()
    assert ca_pem == (ca_dir / "ca.pem").read_bytes()
    [info] = certs.list_certificates(ca_dir)
    assert (info.party, info.serial, info.revoked) == ("bank-a", cert.serial_number, False)
    assert info.serial_hex == f"{cert.serial_number:x}"
    assert info.fingerprint_sha256 == certs.fingerprint(cert_pem)


def test_create_party_key_refuses_overwrite_and_bad_names(tmp_path: Path) -> None:
    certs.create_party_key(tmp_path / "p", "bank-a")
    with pytest.raises(CertificateError, match="already exists"):
        certs.create_party_key(tmp_path / "p", "bank-a")
    with pytest.raises(CertificateError, match="not valid"):
        certs.create_party_key(tmp_path / "q", "Bank_A")
    assert not (tmp_path / "q").exists()


def test_csr_with_invalid_party_name_refused(ca_dir: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil.example.com")]))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "bad.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CertificateError, match="not valid"):
        certs.sign_request(ca_dir, path)
    assert certs.list_certificates(ca_dir) == []


def test_tampered_csr_refused(ca_dir: Path, tmp_path: Path) -> None:
    csr_path = certs.create_party_key(tmp_path / "p", "bank-a")
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    bad = tmp_path / "tampered.csr"
    bad.write_bytes(x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CertificateError, match="signature is invalid"):
        certs.sign_request(ca_dir, bad)


def test_install_refuses_mismatched_or_foreign_cert(ca_dir: Path, tmp_path: Path) -> None:
    other = certs.issue_party(ca_dir, tmp_path / "b", "bank-b")
    certs.create_party_key(tmp_path / "a", "bank-a")
    with pytest.raises(CertificateError, match="does not certify the key"):
        certs.install_certificate(tmp_path / "a", other.cert_path, ca_dir / "ca.pem")
    assert not (tmp_path / "a" / "party.pem").exists()

    foreign_ca = tmp_path / "ca2"
    certs.init_ca(foreign_ca)
    issued = certs.sign_request(foreign_ca, tmp_path / "a" / "party.csr")
    with pytest.raises(CertificateError, match="not issued by the CA"):
        certs.install_certificate(tmp_path / "a", issued, ca_dir / "ca.pem")


def test_from_dir_names_missing_file_and_command(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="party.key.*certs request"):
        certs.PartyCredentials.from_dir(tmp_path / "empty")
    certs.create_party_key(tmp_path / "p", "bank-a")
    with pytest.raises(CertificateError, match="party.pem.*certs install"):
        certs.PartyCredentials.from_dir(tmp_path / "p")


def test_revoke_by_party_and_reissue(ca_dir: Path, tmp_path: Path) -> None:
    first = certs.issue_party(ca_dir, tmp_path / "a", "bank-a")
    old_serial = certs.certificate_serial(first.cert_path.read_bytes())
    certs.issue_party(ca_dir, tmp_path / "b", "bank-b")
    crl = certs.RevocationList(ca_dir / "crl.pem", ca_dir / "ca.pem")
    assert not crl.is_revoked(old_serial)

    assert certs.revoke(ca_dir, party="bank-a") == [old_serial]
    assert certs.revoke(ca_dir, party="bank-a") == []
    assert crl.refresh() is True
    assert crl.is_revoked(old_serial)
    assert crl.refresh() is False

    new_cert = certs.sign_request(ca_dir, tmp_path / "a" / "party.csr")
    new_serial = certs.certificate_serial(new_cert.read_bytes())
    assert new_serial != old_serial
    certs.install_certificate(tmp_path / "a", new_cert, ca_dir / "ca.pem")
    assert not crl.is_revoked(new_serial)
    states = {(i.party, i.serial): i.revoked for i in certs.list_certificates(ca_dir)}
    assert states[("bank-a", old_serial)] is True
    assert states[("bank-a", new_serial)] is False
    assert list(states.values()).count(False) == 2

    with pytest.raises(CertificateError, match="no certificate to party 'bank-z'"):
        certs.revoke(ca_dir, party="bank-z")


def test_revoke_by_serial_and_crl_content(ca_dir: Path, tmp_path: Path) -> None:
    a1 = certs.sign_request(ca_dir, certs.create_party_key(tmp_path / "a", "bank-a"))
    a2 = certs.sign_request(ca_dir, tmp_path / "a" / "party.csr")
    s1, s2 = (certs.certificate_serial(p.read_bytes()) for p in (a1, a2))
    assert certs.revoke(ca_dir, serial=s1) == [s1]
    crl = x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(s1) is not None
    assert crl.get_revoked_certificate_by_serial_number(s2) is None
    assert not list(ca_dir.glob(".crl.pem.*"))
    with pytest.raises(CertificateError, match="no certificate with serial"):
        certs.revoke(ca_dir, serial=s1 + s2)
    with pytest.raises(CertificateError, match="exactly one"):
        certs.revoke(ca_dir)


def test_crl_from_another_ca_refused(ca_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    certs.init_ca(other, name="fedbench federation CA")
    with pytest.raises(CertificateError, match="not signed by the federation CA"):
        certs.RevocationList(other / "crl.pem", ca_dir / "ca.pem")

    crl = certs.RevocationList(ca_dir / "crl.pem", (ca_dir / "ca.pem").read_bytes())
    os.replace(other / "crl.pem", ca_dir / "crl.pem")
    with pytest.raises(CertificateError, match="not signed"):
        crl.refresh()


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="fedbench")
    certs_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
    except FedbenchError as exc:
        print(f"fedbench: {exc}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca, party = str(tmp_path / "ca"), str(tmp_path / "bank-a")
    assert _run_cli(["certs", "init-ca", "--ca", ca], capsys)[:2] == (0, f"{ca}/ca.pem\n")
    code, _, err = _run_cli(["certs", "init-ca", "--ca", ca], capsys)
    assert code == 2 and "already exists" in err

    code, out, _ = _run_cli(["certs", "request", "--party", "bank-a", "--dir", party], capsys)
    assert (code, out.strip()) == (0, f"{party}/party.csr")
    code, out, _ = _run_cli(["certs", "sign", "--ca", ca, f"{party}/party.csr", "--host", "10.0.0.5"], capsys)
    cert = out.strip()
    assert code == 0 and Path(cert).is_file()
    san = _cert(Path(cert)).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    args = ["certs", "install", "--dir", party, "--cert", cert, "--ca-cert", f"{ca}/ca.pem"]
    assert _run_cli(args, capsys)[0] == 0
    assert (
        _run_cli(["certs", "issue", "--ca", ca, "--party", "bank-b", "--dir", str(tmp_path / "b")], capsys)[0]
        == 0
    )

    code, out, _ = _run_cli(["certs", "list", "--ca", ca, "--json"], capsys)
    rows = json.loads(out)
    assert code == 0 and [r["party"] for r in rows] == ["bank-a", "bank-b"]
    serial_a = rows[0]["serial"]

    code, out, _ = _run_cli(["certs", "revoke", "--ca", ca, "--serial", serial_a.upper()], capsys)
    assert (code, out.strip()) == (0, f"revoked {serial_a}")
    code, out, _ = _run_cli(["certs", "revoke", "--ca", ca, "--party", "bank-b"], capsys)
    assert code == 0 and out.startswith("revoked ")

    code, out, _ = _run_cli(["certs", "list", "--ca", ca], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["PARTY", "SERIAL", "EXPIRES", "REVOKED"]
    assert lines[1].split()[:2] == ["bank-a", serial_a]
    assert "no" not in lines[1].split()[3:]

    code, _, err = _run_cli(["certs", "revoke", "--ca", ca, "--serial", "xyz"], capsys)
    assert code == 2 and "hexadecimal" in err
    code, _, err = _run_cli(["certs", "list", "--ca", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "init-ca" in err


def test_grpc_mutual_tls_handshake(ca_dir: Path, tmp_path: Path) -> None:
    server_creds = certs.issue_party(ca_dir, tmp_path / "server", "bank-a")
    client_creds = certs.issue_party(ca_dir, tmp_path / "client", "bank-b")
    foreign_ca = tmp_path / "foreign"
    certs.init_ca(foreign_ca)
    intruder = certs.issue_party(foreign_ca, tmp_path / "intruder", "bank-b")
    revocations = certs.RevocationList(ca_dir / "crl.pem", ca_dir / "ca.pem")

    def whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
        pem = context.auth_context()["x509_pem_cert"][0]
        revocations.refresh()
        if revocations.is_revoked(certs.certificate_serial(pem)):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "revoked")
        return certs.peer_identity(pem).encode() + b":" + request

    key, cert, ca = server_creds.load()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(whoami)}
            ),
        )
    )
    port = server.add_secure_port(
        "127.0.0.1:0",
        grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True),
    )
    server.start()
    try:

        def call(creds: certs.PartyCredentials, trusted_ca: bytes) -> bytes:
            client_key, client_cert, _ = creds.load()
            channel_creds = grpc.ssl_channel_credentials(trusted_ca, client_key, client_cert)
            options = [("grpc.ssl_target_name_override", "bank-a")]
            with grpc.secure_channel(f"127.0.0.1:{port}", channel_creds, options=options) as channel:
                return bytes(channel.unary_unary("/test.Echo/Who")(b"hi", timeout=10))

        assert call(client_creds, ca) == b"bank-b:hi"
        with pytest.raises(grpc.RpcError) as refused:
            call(intruder, ca)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        certs.revoke(ca_dir, party="bank-b")
        with pytest.raises(grpc.RpcError) as revoked:
            call(client_creds, ca)
        assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(None)
