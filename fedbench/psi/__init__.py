"""Private set intersection: the ECDH-PSI protocol core and the preparation of ID columns into keys.

`prepare_ids` turns table columns into normalised, distinct keys; `run_psi` runs one party's side of ECDH-PSI
over a `Transport` and returns a `PsiResult`. The protocol is described in docs/protocols/psi.md.
"""

from fedbench.psi.errors import DuplicateIdError, IdPreparationError, PsiError, PsiPeerError, PsiRefused
from fedbench.psi.ids import Normalise, PreparedIds, prepare_ids
from fedbench.psi.protocol import RELEASES, ROLES, PsiResult, run_psi

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
