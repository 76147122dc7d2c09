"""Exception classes of fedbench: every error a user can meet, each saying what went wrong and how to fix it."""

from __future__ import annotations

ERRORS_BY_CODE: dict[str, type[FedbenchError]] = {}
"""Every error class by its code (filled as classes are defined), to rebuild errors that crossed the wire."""


class FedbenchError(Exception):
    """Base class of every fedbench error; `code` is a short stable name that also crosses the wire."""

    code = "error"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        ERRORS_BY_CODE.setdefault(cls.code, cls)


class ConfigError(FedbenchError):
    """A node home, configuration file or command-line option is missing or wrong."""

    code = "config"


class CodecError(FedbenchError):
    """A payload cannot be encoded, or bytes received from a peer are malformed or over a limit."""

    code = "codec"


class CertificateError(FedbenchError):
    """A certificate, key, request or revocation list is missing, invalid or does not match."""

    code = "certificate"


class DatasetError(FedbenchError):
    """A table given for registration is unusable (bad column, duplicate ids, empty, name taken...)."""

    code = "dataset"


class NotFound(FedbenchError):
    """A named object (dataset, artifact, party) does not exist."""

    code = "not_found"


class StoreError(FedbenchError):
    """The metadata database or artifact directory cannot be read or written."""

    code = "store"


class PeerUnavailable(FedbenchError):
    """A partner's node did not answer before the deadline, after retries with backoff.

    The message says which partner and what to do; `detail` keeps the transport's own words for the logs.
    """

    code = "peer_unavailable"

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class NodeUnavailable(FedbenchError):
    """Our own node (the one this kernel or command talks to) is stopped or does not answer.

    `command` is the command that starts it, when known; `detail` keeps the transport's words for the logs.
    """

    code = "node_unavailable"

    def __init__(self, message: str, *, command: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.detail = detail


class Refused(FedbenchError):
    """A request was refused by the node that received it (identity, token, permission or limit)."""

    code = "refused"


class Unauthenticated(Refused):
    """The control-API token, or the peer's certificate identity, is missing or wrong."""

    code = "unauthenticated"


class ModelFileError(Refused):
    """A model cannot be exported, or a model file imported: not a model, another project or party, altered."""

    code = "model_file"


class RecvTimeout(FedbenchError):
    """No message arrived under the awaited key before the timeout."""

    code = "recv_timeout"


class NodeError(FedbenchError):
    """The node failed to do what was asked; the message carries the node's reason."""

    code = "node"


class NotRunError(FedbenchError):
    """A result was asked for before the step that makes it has run."""

    code = "not_run"


ERRORS_BY_CODE.setdefault(FedbenchError.code, FedbenchError)


def error_from_code(code: str, reason: str) -> FedbenchError:
    """Rebuild an error that crossed the wire as a (code, reason) value."""
    return ERRORS_BY_CODE.get(code, NodeError)(reason)
