"""Users of one node and their roles: who may do what through the control API.

Roles: `admin` manages peers, certificates and users and sees everything; `analyst` uploads data, proposes
and runs projects it is a member of; `viewer` reads results of its projects. Tokens are shown once and stored
only as hashes. The token in `<home>/api_token` belongs to the built-in `admin` user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlmodel import select

from fedbench.errors import ConfigError, Refused, Unauthenticated
from fedbench.store import Database, User

__all__ = ["ROLES", "Caller", "Users", "token_hash"]

ROLES = ("admin", "analyst", "viewer")
_RANK = {"viewer": 0, "analyst": 1, "admin": 2}
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def token_hash(token: str) -> str:
    """The stored form of a user token."""
    return hashlib.sha256(b"fedbench-user-token\x00" + token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """The authenticated user of one control-API call."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        """Whether the caller may see and manage everything on the node."""
        return self.role == "admin"

    def require(self, role: str, action: str) -> None:
        """Refuse unless the caller's role is at least `role`."""
        if _RANK[self.role] < _RANK[role]:
            raise Refused(f"user {self.name!r} ({self.role}) may not {action}: it needs the {role} role")


class Users:
    """The users table of a node."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def ensure_admin(self, token: str) -> None:
        """Make the node's api_token the built-in admin's token (on every start, so a new file takes over)."""
        with self._db.session() as session:
            admin = session.get(User, "admin")
            digest = token_hash(token)
            if admin is None:
                session.add(User(name="admin", role="admin", token_hash=digest))
            elif admin.token_hash != digest:
                admin.token_hash = digest
                session.add(admin)

    def add(self, name: str, role: str) -> str:
        """Create a user and return its token (shown once)."""
        if not _NAME.match(name):
            raise ConfigError(
                f"user name {name!r} is not valid: use lower-case letters, digits, '_', '.', '-'"
            )
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
        token = secrets.token_urlsafe(32)
        with self._db.session() as session:
            if session.get(User, name) is not None:
                raise ConfigError(f"user {name!r} exists already; remove it first or pick another name")
            session.add(User(name=name, role=role, token_hash=token_hash(token)))
        return token

    def remove(self, name: str) -> None:
        """Delete a user (its token stops working at once)."""
        if name == "admin":
            raise ConfigError("the built-in admin cannot be removed; replace <home>/api_token instead")
        with self._db.session() as session:
            user = session.get(User, name)
            if user is not None:
                session.delete(user)

    def list(self) -> list[dict[str, str]]:
        """Every user with its role."""
        with self._db.session() as session:
            return [{"name": u.name, "role": u.role} for u in session.exec(select(User)).all()]

    def authenticate(self, token: str) -> Caller:
        """The user a token belongs to; Unauthenticated if none."""
        digest = token_hash(token)
        with self._db.session() as session:
            user = session.exec(select(User).where(User.token_hash == digest)).first()
        if user is None or not hmac.compare_digest(user.token_hash, digest):
            raise Unauthenticated(
                "missing or wrong control-API token; use fedbench.connect(home=...) on the node's machine "
                "(it reads <home>/api_token) or pass token= a user token from `fedbench users add`"
            )
        return Caller(user.name, user.role)
