"""A party node's configuration and the layout of its home directory.

One file, `<home>/node.json`, holds everything a node needs (party name, ports, peers, database URL, limits);
it is validated by one pydantic model, so there is no second configuration system. Secrets never go in it:
TLS material lives under `<home>/tls/`, the control-API token in `<home>/api_token`, project tokens, the audit
MAC key and the audit heads handed to partners under `<home>/secrets/` (all 0600).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from fedbench.compute.config import ComputeConfig
from fedbench.errors import ConfigError
from fedbench.names import check_party_name

__all__ = ["NodeConfig", "NodeHome"]


class NodeConfig(BaseModel):
    """Settings of one party node; unknown keys are refused so a typo never passes silently."""

    model_config = {"extra": "forbid"}

    party: str
    federation_host: str = "127.0.0.1"
    federation_port: int = Field(ge=0, le=65535)
    advertised_address: str | None = Field(
        default=None, description="host:port peers use to reach us (default federation_host:port)"
    )
    control_host: str = "127.0.0.1"
    control_port: int = Field(ge=0, le=65535)
    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="plain-HTTP GET /healthz for orchestrators, on federation_host",
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in the home")
    peers: dict[str, str] = Field(default_factory=dict, description="party name -> host:port")
    crl_path: str | None = Field(default=None, description="revocation list checked on every peer call")
    max_message_mb: int = Field(default=4096, ge=1, description="largest message a peer may send us")
    max_pending_mb: int = Field(
        default=8192, ge=1, description="bound on messages from peers arriving or waiting to be read"
    )
    send_deadline: float = Field(
        default=120.0,
        gt=0,
        description="seconds a step keeps retrying a message to a peer that does not answer",
    )
    recv_timeout: float = Field(
        default=600.0, gt=0, description="seconds a step waits for a peer's message before it fails"
    )
    workers: int = Field(default=16, ge=2, le=256, description="gRPC server threads")
    component_modules: list[str] = Field(
        default_factory=list, description="Python modules with extra components, imported at start"
    )
    warm_workers: int = Field(
        default=2,
        ge=0,
        le=32,
        description="worker processes kept started, imports done, for the next steps (0: start each cold)",
    )
    compute: ComputeConfig | None = Field(
        default=None,
        description='where heavy work runs: {"scheduler": "tls://host:8786"} for the party\'s Dask cluster',
    )

    @field_validator("party")
    @classmethod
    def _party_name(cls, value: str) -> str:
        return check_party_name(value)

    @field_validator("peers")
    @classmethod
    def _peer_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, address in value.items():
            check_party_name(name)
            if ":" not in address:
                raise ValueError(f"peer {name!r} address {address!r} must be host:port")
        return value

    @property
    def federation_address(self) -> str:
        """The address peers dial to reach this node."""
        return self.advertised_address or f"{self.federation_host}:{self.federation_port}"

    @property
    def control_address(self) -> str:
        """The loopback address local kernels dial."""
        return f"{self.control_host}:{self.control_port}"


class NodeHome:
    """The files of one node's home directory, by name."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    config_file = property(lambda self: self.root / "node.json")
    tls_dir = property(lambda self: self.root / "tls")
    token_file = property(lambda self: self.root / "api_token")
    pid_file = property(lambda self: self.root / "node.pid")
    log_file = property(lambda self: self.root / "node.log")
    artifacts_dir = property(lambda self: self.root / "artifacts")
    secrets_dir = property(lambda self: self.root / "secrets")
    audit_key_file = property(lambda self: self.root / "secrets" / "audit.key")
    audit_heads_file = property(lambda self: self.root / "secrets" / "audit-heads.jsonl")
    party_key_file = property(lambda self: self.root / "secrets" / "party.key")

    def database_url(self, config: NodeConfig) -> str:
        """The configured database URL, or SQLite under the home."""
        return config.database_url or f"sqlite:///{self.root / 'fedbench.db'}"

    def load_config(self) -> NodeConfig:
        """Read and validate `node.json`, with a message that says what is wrong and where."""
        if not self.config_file.exists():
            raise ConfigError(
                f"no node configuration at {self.config_file}; create one with `fedbench node init` "
                "or start a local federation with `fedbench sandbox up`"
            )
        try:
            return NodeConfig.model_validate(json.loads(self.config_file.read_text()))
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"{self.config_file} is not a valid node configuration: {exc}") from None

    def save_config(self, config: NodeConfig) -> None:
        """Write `node.json` atomically."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.config_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(config.model_dump(exclude_none=True), indent=2) + "\n")
        os.replace(tmp, self.config_file)

    def party_key(self, project: str) -> bytes:
        """A key only this node holds, one per project: keys the party's private draws (`ctx.private_rng`).

        Derived from the node's own secret (`secrets/party.key`, 0600, made on first use), never sent."""
        if not self.party_key_file.exists():
            self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):
                fd = os.open(self.party_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
        secret = bytes.fromhex(self.party_key_file.read_text().strip())
        return hmac.new(secret, f"fedbench/party-key/{project}".encode(), hashlib.sha256).digest()

    def api_token(self, *, create: bool = False) -> str:
        """The local control-API token, created with mode 0600 on first use when `create` is set."""
        if not self.token_file.exists():
            if not create:
                raise ConfigError(
                    f"no control-API token at {self.token_file}; is {self.root} a node home? "
                    "(start the node once with `fedbench node start --home ...`)"
                )
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return self.token_file.read_text().strip()
