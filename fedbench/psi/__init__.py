"""Private set intersection: the ECDH-PSI protocol core and the preparation of ID columns into keys.

`prepare_ids` turns table columns into normalised, distinct keys; `run_psi` runs one party's side of ECDH-PSI
over a `Transport` and returns a `PsiResult`. The protocol is described in docs/protocols/psi.md.
The public names load on first use (PEP 562): a masking process, whose fork server imports only
`fedbench.psi.group`, then pulls in neither pandas (`ids`) nor numpy and the federation layer (`protocol`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedbench.psi.errors import DuplicateIdError, IdPreparationError, PsiError, PsiPeerError, PsiRefused
    from fedbench.psi.ids import Normalise, PreparedIds, prepare_ids
    from fedbench.psi.protocol import RELEASES, ROLES, PsiResult, run_psi

_LAZY = {
    "DuplicateIdError": "fedbench.psi.errors",
    "IdPreparationError": "fedbench.psi.errors",
    "PsiError": "fedbench.psi.errors",
    "PsiPeerError": "fedbench.psi.errors",
    "PsiRefused": "fedbench.psi.errors",
    "Normalise": "fedbench.psi.ids",
    "PreparedIds": "fedbench.psi.ids",
    "prepare_ids": "fedbench.psi.ids",
    "RELEASES": "fedbench.psi.protocol",
    "ROLES": "fedbench.psi.protocol",
    "PsiResult": "fedbench.psi.protocol",
    "run_psi": "fedbench.psi.protocol",
}
"""Public names defined in the submodules, by the module that holds each; imported when first asked for."""

__all__ = [
    "RELEASES",
    "ROLES",
    "DuplicateIdError",
    "IdPreparationError",
    "Normalise",
    "PreparedIds",
    "PsiError",
    "PsiPeerError",
    "PsiRefused",
    "PsiResult",
    "prepare_ids",
    "run_psi",
]


def __getattr__(name: str) -> Any:
    """A public name imported from its submodule when first asked for, then kept as a module attribute."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fedbench.psi' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The loaded attributes and every public name, loaded or not (for tab completion)."""
    return sorted(set(globals()) | set(__all__))
