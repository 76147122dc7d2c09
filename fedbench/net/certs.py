"""Certificates of a federation: a CA signs each party's key for mutual TLS, and revokes it through a CRL.

Each party creates its own private key and sends only a certificate signing request (CSR) to the federation
CA, so no private key ever leaves the machine it was made on. The CA keeps an index of what it issued and a
signed revocation list that nodes re-read cheaply on every incoming connection. Keys are ECDSA P-256, which
gRPC's TLS stack (BoringSSL) accepts for both server and client authentication.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedbench.errors import CertificateError, ConfigError
from fedbench.names import check_party_name

__all__ = [
    "CertificateInfo",
    "PartyCredentials",
    "RevocationList",
    "certificate_serial",
    "create_party_key",
    "fingerprint",
    "init_ca",
    "install_certificate",
    "issue_party",
    "list_certificates",
    "peer_identity",
    "revoke",
    "sign_request",
]

CA_KEY = "ca.key"
CA_CERT = "ca.pem"
CA_INDEX = "index.json"
CA_CRL = "crl.pem"
CA_ISSUED = "issued"
CA_LOCK = ".lock"
PARTY_KEY = "party.key"
PARTY_CSR = "party.csr"
PARTY_CERT = "party.pem"
PARTY_CA = "ca.pem"

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1")

_INDEX_VERSION = 1
_CLOCK_SKEW = timedelta(minutes=5)
_HASH = hashes.SHA256()
_DNS_HOST = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class CertificateInfo:
    """One certificate the CA issued, as recorded in its index."""

    party: str
    serial: int
    serial_hex: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    revoked: bool
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class PartyCredentials:
    """Where a party's TLS key, certificate and federation CA certificate are on disk."""

    party: str
    key_path: Path
    cert_path: Path
    ca_path: Path

    def load(self) -> tuple[bytes, bytes, bytes]:
        """Read (key PEM, certificate PEM, CA certificate PEM), as gRPC's credential functions take them."""
        return (
            _read(self.key_path, "party key"),
            _read(self.cert_path, "party certificate"),
            _read(self.ca_path, "CA certificate"),
        )

    @classmethod
    def from_dir(cls, party_dir: Path) -> PartyCredentials:
        """The credentials installed in `party_dir`; checks that all three files exist and the key matches."""
        party_dir = Path(party_dir)
        key_path, cert_path, ca_path = party_dir / PARTY_KEY, party_dir / PARTY_CERT, party_dir / PARTY_CA
        if not key_path.is_file():
            raise CertificateError(
                f"no party key {key_path}: create it with "
                f"`fedbench certs request --party NAME --dir {party_dir}` (then have the CA sign it), "
                f"or `fedbench certs issue --ca CA_DIR --party NAME --dir {party_dir}` if you hold the CA"
            )
        for path, what in ((cert_path, "party certificate"), (ca_path, "CA certificate")):
            if not path.is_file():
                raise CertificateError(
                    f"no {what} {path}: install the signed certificate with `fedbench certs install "
                    f"--dir {party_dir} --cert CERT --ca-cert CA_PEM`"
                )
        cert = _load_cert(cert_path)
        _check_key_matches(_load_private_key(key_path), cert, key_path, cert_path)
        return cls(party=_party_of(cert), key_path=key_path, cert_path=cert_path, ca_path=ca_path)


class RevocationList:
    """A CA-signed revocation list loaded from a file, reloaded by `refresh()` only when the file changed."""

    def __init__(self, crl_path: Path, ca_cert: Path | bytes) -> None:
        self.path = Path(crl_path)
        ca_pem = ca_cert if isinstance(ca_cert, bytes) else _read(Path(ca_cert), "CA certificate")
        self._ca = _parse_cert(ca_pem, "CA certificate")
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._revoked: frozenset[int] = frozenset()
        self.refresh()

    def is_revoked(self, serial: int) -> bool:
        """Whether the certificate with this serial number is revoked (as of the last load)."""
        return serial in self._revoked

    def refresh(self) -> bool:
        """Reload the list if its file changed (size, mtime or inode); return whether it was reloaded."""
        stamp = _stamp(self._stat())
        if stamp == self._stamp:
            return False
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    stamp = _stamp(os.fstat(f.fileno()))
                    if stamp == self._stamp:
                        return False
                    data = f.read()
            except OSError as exc:
                raise CertificateError(f"cannot read revocation list {self.path}: {exc}") from exc
            crl = _parse_crl(data, self.path)
            _check_crl_signed_by(crl, self._ca, self.path)
            self._revoked = frozenset(entry.serial_number for entry in crl)
            self._stamp = stamp
            return True

    def _stat(self) -> os.stat_result:
        try:
            return os.stat(self.path)
        except OSError as exc:
            raise CertificateError(f"cannot read revocation list {self.path}: {exc}") from exc


def init_ca(ca_dir: Path, *, name: str = "fedbench federation CA", days: int = 3650) -> Path:
    """Create a federation CA in `ca_dir` (key, certificate, empty index and CRL); return the CA cert path."""
    ca_dir = Path(ca_dir)
    _check_days(days)
    if not name.strip():
        raise CertificateError("the CA name must not be empty")
    _make_dir(ca_dir)
    with _ca_lock(ca_dir):
        existing = [n for n in (CA_KEY, CA_CERT, CA_INDEX, CA_CRL) if (ca_dir / n).exists()]
        if existing:
            raise CertificateError(
                f"a CA already exists in {ca_dir} ({', '.join(existing)}); use it, e.g. "
                f"`fedbench certs sign --ca {ca_dir} CSR` or `fedbench certs list --ca {ca_dir}`, "
                "or choose an empty directory for a new CA"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        _write_private_key(ca_dir / CA_KEY, key)
        now = _now()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, _HASH)
        )
        _write_public(ca_dir / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
        index = {"version": _INDEX_VERSION, "crl_number": 0, "certificates": []}
        _write_crl(ca_dir, key, cert, index)
        _write_index(ca_dir, index)
    return ca_dir / CA_CERT


def create_party_key(party_dir: Path, party: str) -> Path:
    """On the party's side: create `party.key` (mode 0600) and its CSR `party.csr`; return the CSR path."""
    party_dir = Path(party_dir)
    party = _check_party(party)
    key_path = party_dir / PARTY_KEY
    if key_path.exists():
        raise CertificateError(
            f"{key_path} already exists and is not overwritten; to get a new certificate for this key, "
            f"have the CA sign {party_dir / PARTY_CSR} again, or use an empty directory for a new key"
        )
    _make_dir(party_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private_key(key_path, key)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
        .sign(key, _HASH)
    )
    csr_path = party_dir / PARTY_CSR
    _write_public(csr_path, csr.public_bytes(serialization.Encoding.PEM))
    return csr_path


def sign_request(
    ca_dir: Path, csr_path: Path, *, days: int = 825, hosts: Sequence[str] = DEFAULT_HOSTS
) -> Path:
    """Check a party's CSR and issue its certificate (server and client auth); return the issued cert path."""
    ca_dir, csr_path = Path(ca_dir), Path(csr_path)
    _check_days(days)
    if isinstance(hosts, str):
        hosts = (hosts,)
    csr = _load_csr(csr_path)
    party = _csr_party(csr, csr_path)
    public_key = csr.public_key()
    _check_public_key(public_key, csr_path)
    sans = _subject_alt_names(party, hosts)
    _require_ca(ca_dir)
    with _ca_lock(ca_dir):
        ca_key, ca_cert = _load_ca(ca_dir)
        index = _read_index(ca_dir)
        now = _now()
        if ca_cert.not_valid_after_utc <= now:
            raise CertificateError(f"the CA certificate in {ca_dir} expired on {ca_cert.not_valid_after_utc}")
        not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
        serial = x509.random_serial_number()
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
            .sign(ca_key, _HASH)
        )
        pem = cert.public_bytes(serialization.Encoding.PEM)
        rel = f"{CA_ISSUED}/{party}-{serial:x}.pem"
        index["certificates"].append(
            {
                "serial": f"{serial:x}",
                "party": party,
                "not_before": cert.not_valid_before_utc.isoformat(),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "fingerprint": fingerprint(pem),
                "revoked_at": None,
                "path": rel,
            }
        )
        _write_index(ca_dir, index)
        _make_dir(ca_dir / CA_ISSUED)
        _write_public(ca_dir / rel, pem)
    return ca_dir / rel


def install_certificate(party_dir: Path, cert_path: Path, ca_cert_path: Path) -> None:
    """Install a signed certificate and the CA certificate next to `party.key`, checking both fit."""
    party_dir = Path(party_dir)
    key_path = party_dir / PARTY_KEY
    if not key_path.is_file():
        raise CertificateError(
            f"no party key {key_path}: a certificate is installed in the directory whose key it certifies "
            f"(created by `fedbench certs request --party NAME --dir DIR`)"
        )
    cert = _load_cert(Path(cert_path))
    ca_cert = _load_cert(Path(ca_cert_path))
    _check_key_matches(_load_private_key(key_path), cert, key_path, Path(cert_path))
    _check_issued_by(cert, ca_cert, Path(cert_path), Path(ca_cert_path))
    _party_of(cert)
    if cert.not_valid_after_utc <= _now():
        raise CertificateError(f"{cert_path} expired on {cert.not_valid_after_utc}; ask the CA for a new one")
    _write_public(party_dir / PARTY_CA, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_public(party_dir / PARTY_CERT, cert.public_bytes(serialization.Encoding.PEM))


def issue_party(
    ca_dir: Path,
    party_dir: Path,
    party: str,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    *,
    days: int = 825,
) -> PartyCredentials:
    """Create a party's key, sign it with the CA in `ca_dir` and install it: the three steps at once."""
    csr_path = create_party_key(party_dir, party)
    cert_path = sign_request(ca_dir, csr_path, days=days, hosts=hosts)
    install_certificate(party_dir, cert_path, Path(ca_dir) / CA_CERT)
    return PartyCredentials.from_dir(party_dir)


def list_certificates(ca_dir: Path) -> list[CertificateInfo]:
    """Every certificate the CA in `ca_dir` issued, in issue order, with its revocation state."""
    ca_dir = Path(ca_dir)
    _require_ca(ca_dir)
    return [_info(record) for record in _read_index(ca_dir)["certificates"]]


def revoke(ca_dir: Path, *, party: str | None = None, serial: int | None = None) -> list[int]:
    """Revoke a serial, or every unrevoked certificate of `party`, and re-sign the CRL; return the serials."""
    ca_dir = Path(ca_dir)
    if (party is None) == (serial is None):
        raise CertificateError("revoke takes exactly one of a party name or a serial number")
    if party is not None:
        party = _check_party(party)
    _require_ca(ca_dir)
    with _ca_lock(ca_dir):
        ca_key, ca_cert = _load_ca(ca_dir)
        index = _read_index(ca_dir)
        records = index["certificates"]
        if party is not None:
            chosen = [r for r in records if r["party"] == party]
            if not chosen:
                raise CertificateError(f"the CA in {ca_dir} issued no certificate to party {party!r}")
        else:
            chosen = [r for r in records if int(r["serial"], 16) == serial]
            if not chosen:
                raise CertificateError(f"the CA in {ca_dir} issued no certificate with serial {serial:x}")
        now = _now().isoformat()
        revoked: list[int] = []
        for record in chosen:
            if record["revoked_at"] is None:
                record["revoked_at"] = now
                revoked.append(int(record["serial"], 16))
        _write_index(ca_dir, index)
        _write_crl(ca_dir, ca_key, ca_cert, index)
    return revoked


def peer_identity(cert_pem: bytes) -> str:
    """The party name (subject common name) of a PEM certificate, e.g. a gRPC peer's `x509_pem_cert`."""
    return _party_of(_parse_cert(cert_pem, "peer certificate"))


def certificate_serial(cert_pem: bytes) -> int:
    """The serial number of a PEM certificate."""
    return _parse_cert(cert_pem, "certificate").serial_number


def fingerprint(cert_pem: bytes) -> str:
    """The SHA-256 fingerprint (lower-case hex of the DER encoding) of a PEM certificate."""
    return _parse_cert(cert_pem, "certificate").fingerprint(hashes.SHA256()).hex()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _check_days(days: int) -> None:
    if not isinstance(days, int) or days < 1:
        raise CertificateError(f"validity must be a positive number of days, not {days!r}")


def _check_party(name: str) -> str:
    try:
        return check_party_name(name)
    except ConfigError as exc:
        raise CertificateError(str(exc)) from exc


def _subject_alt_names(party: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(party)]
    for host in hosts:
        host = host.strip()
        general: x509.GeneralName
        try:
            general = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            host = host.lower()
            if not _DNS_HOST.match(host):
                raise CertificateError(
                    f"host {host!r} is neither an IP address nor a DNS name (e.g. 'node1.example.org')"
                ) from None
            general = x509.DNSName(host)
        if general not in names:
            names.append(general)
    return names


def _check_public_key(public_key: object, where: Path) -> None:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name in ("secp256r1", "secp384r1"):
            return
        raise CertificateError(f"{where}: EC curve {public_key.curve.name} is not accepted; use P-256")
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size >= 2048:
            return
        raise CertificateError(f"{where}: RSA key of {public_key.key_size} bits is too short; use 3072")
    raise CertificateError(f"{where}: key type {type(public_key).__name__} is not accepted; use ECDSA P-256")


def _csr_party(csr: x509.CertificateSigningRequest, where: Path) -> str:
    if not csr.is_signature_valid:
        raise CertificateError(f"{where}: the request's signature is invalid (corrupted or tampered with)")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise CertificateError(f"{where}: the request must name exactly one party as its common name (CN)")
    value = names[0].value
    return _check_party(value if isinstance(value, str) else value.decode("utf-8", "replace"))


def _party_of(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise CertificateError("the certificate does not name exactly one party as its common name (CN)")
    value = names[0].value
    return _check_party(value if isinstance(value, str) else value.decode("utf-8", "replace"))


def _check_key_matches(
    key: CertificateIssuerPrivateKeyTypes, cert: x509.Certificate, key_path: Path, cert_path: Path
) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise CertificateError(
            f"{cert_path} does not certify the key {key_path}: it was signed for another party or another "
            "request; sign this directory's party.csr and install the result"
        )


def _check_issued_by(cert: x509.Certificate, ca: x509.Certificate, cert_path: Path, ca_path: Path) -> None:
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateError(f"{ca_path} is not a CA certificate")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateError(f"{cert_path} was not issued by the CA {ca_path}") from exc


def _check_crl_signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate, where: Path) -> None:
    public_key = ca.public_key()
    if not isinstance(public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise CertificateError(f"the CA certificate has an unsupported key type {type(public_key).__name__}")
    if crl.issuer != ca.subject or not crl.is_signature_valid(public_key):
        raise CertificateError(f"revocation list {where} is not signed by the federation CA; refusing it")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc}") from exc


def _parse_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"the {what} is not a valid PEM certificate: {exc}") from exc


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path, "certificate"))
    except ValueError as exc:
        raise CertificateError(f"{path} is not a valid PEM certificate: {exc}") from exc


def _load_csr(path: Path) -> x509.CertificateSigningRequest:
    try:
        return x509.load_pem_x509_csr(_read(path, "certificate request"))
    except ValueError as exc:
        raise CertificateError(f"{path} is not a valid PEM certificate request: {exc}") from exc


def _parse_crl(data: bytes, where: Path) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError as exc:
        raise CertificateError(f"{where} is not a valid PEM revocation list: {exc}") from exc


def _load_private_key(path: Path) -> CertificateIssuerPrivateKeyTypes:
    try:
        key = serialization.load_pem_private_key(_read(path, "private key"), password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{path} is not a readable unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise CertificateError(f"{path}: key type {type(key).__name__} is not supported; use ECDSA P-256")
    return key


def _require_ca(ca_dir: Path) -> None:
    missing = [n for n in (CA_KEY, CA_CERT, CA_INDEX) if not (ca_dir / n).is_file()]
    if missing:
        raise CertificateError(
            f"no CA in {ca_dir} (missing {', '.join(missing)}): create one with "
            f"`fedbench certs init-ca --ca {ca_dir}`"
        )


def _load_ca(ca_dir: Path) -> tuple[CertificateIssuerPrivateKeyTypes, x509.Certificate]:
    _require_ca(ca_dir)
    key, cert = _load_private_key(ca_dir / CA_KEY), _load_cert(ca_dir / CA_CERT)
    _check_key_matches(key, cert, ca_dir / CA_KEY, ca_dir / CA_CERT)
    return key, cert


def _read_index(ca_dir: Path) -> dict[str, Any]:
    path = ca_dir / CA_INDEX
    try:
        index = json.loads(_read(path, "CA index"))
        if not isinstance(index, dict) or not isinstance(index.get("certificates"), list):
            raise ValueError("no 'certificates' list")
        for record in index["certificates"]:
            int(record["serial"], 16)
            missing = {"party", "not_before", "not_after", "fingerprint", "revoked_at"} - record.keys()
            if missing:
                raise ValueError(f"a record lacks {', '.join(sorted(missing))}")
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"the CA index {path} is corrupt: {exc}") from exc
    return index


def _info(record: dict[str, Any]) -> CertificateInfo:
    serial = int(record["serial"], 16)
    revoked_at = record["revoked_at"]
    return CertificateInfo(
        party=record["party"],
        serial=serial,
        serial_hex=f"{serial:x}",
        not_before=datetime.fromisoformat(record["not_before"]),
        not_after=datetime.fromisoformat(record["not_after"]),
        fingerprint_sha256=record["fingerprint"],
        revoked=revoked_at is not None,
        revoked_at=datetime.fromisoformat(revoked_at) if revoked_at is not None else None,
    )


def _write_index(ca_dir: Path, index: dict[str, Any]) -> None:
    _write_public(ca_dir / CA_INDEX, (json.dumps(index, indent=2) + "\n").encode())


def _write_crl(
    ca_dir: Path, ca_key: CertificateIssuerPrivateKeyTypes, ca_cert: x509.Certificate, index: dict[str, Any]
) -> None:
    index["crl_number"] = int(index.get("crl_number", 0)) + 1
    now = _now()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(max(ca_cert.not_valid_after_utc, now + timedelta(days=1)))
        .add_extension(x509.CRLNumber(index["crl_number"]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    for record in index["certificates"]:
        if record["revoked_at"] is not None:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(record["serial"], 16))
                .revocation_date(datetime.fromisoformat(record["revoked_at"]))
                .build()
            )
    crl = builder.sign(ca_key, _HASH)
    _write_public(ca_dir / CA_CRL, crl.public_bytes(serialization.Encoding.PEM))


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _make_dir(path: Path) -> None:
    if path.is_dir():
        return
    try:
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)
    except FileExistsError:
        if not path.is_dir():
            raise CertificateError(f"{path} exists and is not a directory") from None
    except OSError as exc:
        raise CertificateError(f"cannot create directory {path}: {exc}") from exc


@contextlib.contextmanager
def _ca_lock(ca_dir: Path) -> Iterator[None]:
    """Serialise changes to one CA directory between processes (the index is read, changed and rewritten)."""
    try:
        fd = os.open(ca_dir / CA_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CertificateError(f"cannot lock the CA directory {ca_dir}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_private_key(path: Path, key: CertificateIssuerPrivateKeyTypes) -> None:
    """Write an unencrypted PEM key into a new file that is mode 0600 from its creation on."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CertificateError(f"{path} already exists; a private key is never overwritten") from None
    except OSError as exc:
        raise CertificateError(f"cannot create {path}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(exc, OSError):
            raise CertificateError(f"cannot write {path}: {exc}") from exc
        raise


def _write_public(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, mode 0644 (certificates, requests, CRL, index)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CertificateError(f"cannot write {path}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise CertificateError(f"cannot write {path}: {exc}") from exc
        raise
