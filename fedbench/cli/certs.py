"""`fedbench certs`: run the federation CA and obtain a party's TLS certificate from the command line.

The usual flow keeps each private key where it was made: a party runs `request`, sends the CSR to the CA,
which runs `sign` and sends back the certificate and CA certificate for the party to `install`. `issue`
does all three at once when one person holds both sides (a demo or a sandbox).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fedbench.errors import CertificateError
from fedbench.net import certs

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `fedbench certs` and its sub-commands on the top-level sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "certs",
        help="federation CA and party certificates",
        description="Run the federation CA and obtain a party's TLS certificate.",
    )
    sub = parser.add_subparsers(dest="certs_command", required=True)

    p = sub.add_parser("init-ca", help="create a federation CA in an empty directory")
    p.add_argument("--ca", required=True, type=Path, metavar="DIR", help="directory of the new CA")
    p.add_argument("--name", default="fedbench federation CA", help="common name of the CA certificate")
    p.add_argument("--days", type=int, default=3650, help="validity of the CA certificate (default 3650)")
    p.set_defaults(func=_init_ca)

    p = sub.add_parser("request", help="create a party's private key and certificate request (CSR)")
    p.add_argument("--party", required=True, help="party name, e.g. bank-a")
    p.add_argument("--dir", required=True, type=Path, metavar="DIR", help="the party's credentials directory")
    p.set_defaults(func=_request)

    p = sub.add_parser("sign", help="sign a party's CSR with the CA; prints the certificate path")
    p.add_argument("--ca", required=True, type=Path, metavar="DIR", help="directory of the CA")
    p.add_argument("csr", type=Path, metavar="CSR", help="the party's party.csr")
    _add_validity(p)
    p.set_defaults(func=_sign)

    p = sub.add_parser("install", help="install a signed certificate next to the party's key")
    p.add_argument("--dir", required=True, type=Path, metavar="DIR", help="the party's credentials directory")
    p.add_argument("--cert", required=True, type=Path, metavar="CERT", help="certificate signed by the CA")
    p.add_argument("--ca-cert", required=True, type=Path, metavar="CA_PEM", help="the CA's certificate")
    p.set_defaults(func=_install)

    p = sub.add_parser("issue", help="request, sign and install in one step (when you hold the CA)")
    p.add_argument("--ca", required=True, type=Path, metavar="DIR", help="directory of the CA")
    p.add_argument("--party", required=True, help="party name, e.g. bank-a")
    p.add_argument("--dir", required=True, type=Path, metavar="DIR", help="the party's credentials directory")
    _add_validity(p)
    p.set_defaults(func=_issue)

    p = sub.add_parser("list", help="list the certificates the CA issued")
    p.add_argument("--ca", required=True, type=Path, metavar="DIR", help="directory of the CA")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_list)

    p = sub.add_parser("revoke", help="revoke certificates and re-sign the CA's revocation list")
    p.add_argument("--ca", required=True, type=Path, metavar="DIR", help="directory of the CA")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--party", help="revoke every unrevoked certificate of this party")
    which.add_argument("--serial", metavar="HEX", help="revoke the certificate with this serial (hex)")
    p.set_defaults(func=_revoke)
    return parser


def _add_validity(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="H",
        help="DNS name or IP address the party's node is reached at; repeat for several "
        f"(default: {', '.join(certs.DEFAULT_HOSTS)}); the party name is always included",
    )
    p.add_argument("--days", type=int, default=825, help="validity of the certificate (default 825)")


def _hosts(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(args.hosts) if args.hosts else certs.DEFAULT_HOSTS


def _init_ca(args: argparse.Namespace) -> int:
    path = certs.init_ca(args.ca, name=args.name, days=args.days)
    print(path)
    return 0


def _request(args: argparse.Namespace) -> int:
    print(certs.create_party_key(args.dir, args.party))
    return 0


def _sign(args: argparse.Namespace) -> int:
    print(certs.sign_request(args.ca, args.csr, days=args.days, hosts=_hosts(args)))
    return 0


def _install(args: argparse.Namespace) -> int:
    certs.install_certificate(args.dir, args.cert, args.ca_cert)
    creds = certs.PartyCredentials.from_dir(args.dir)
    print(f"installed the certificate of party {creds.party} in {args.dir}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    creds = certs.issue_party(args.ca, args.dir, args.party, _hosts(args), days=args.days)
    print(creds.cert_path)
    return 0


def _list(args: argparse.Namespace) -> int:
    infos = certs.list_certificates(args.ca)
    if args.json:
        rows = [
            {
                "party": i.party,
                "serial": i.serial_hex,
                "not_before": i.not_before.isoformat(),
                "not_after": i.not_after.isoformat(),
                "fingerprint_sha256": i.fingerprint_sha256,
                "revoked": i.revoked,
                "revoked_at": i.revoked_at.isoformat() if i.revoked_at else None,
            }
            for i in infos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = [("PARTY", "SERIAL", "EXPIRES", "REVOKED")] + [
        (
            i.party,
            i.serial_hex,
            i.not_after.strftime("%Y-%m-%d"),
            i.revoked_at.strftime("%Y-%m-%d %H:%M") if i.revoked_at else "no",
        )
        for i in infos
    ]
    widths = [max(len(row[c]) for row in table) for c in range(3)]
    for row in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    serial = None
    if args.serial is not None:
        text = args.serial.strip().lower().replace(":", "").removeprefix("0x")
        try:
            serial = int(text, 16)
        except ValueError:
            raise CertificateError(f"serial {args.serial!r} is not a hexadecimal number") from None
    revoked = certs.revoke(args.ca, party=args.party, serial=serial)
    if not revoked:
        print("nothing to revoke: already revoked")
    for number in revoked:
        print(f"revoked {number:x}")
    return 0
