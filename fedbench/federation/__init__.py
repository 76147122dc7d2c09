"""The federation layer: how protocol code talks to peers, below `components/`, `psi/` and `ml/`.

`Context` is what a role function gets as `ctx`; `Channel` is one message stream with one peer (what a
many-message protocol such as the PSI runs on); `ErrorRecord` is a failure travelling to a peer as a value.
Nothing here imports from `components/`, so `psi/` and `ml/` can build on it without importing upward.
"""

from fedbench.federation.channel import SLICE, Channel, Message
from fedbench.federation.context import Context, Metrics, PeerHandle, PsiRelease, TaskIO
from fedbench.federation.errors import Cancelled, ErrorRecord, PeerFailed, UnexpectedMessage

__all__ = [
    "SLICE",
    "Cancelled",
    "Channel",
    "Context",
    "ErrorRecord",
    "Message",
    "Metrics",
    "PeerFailed",
    "PeerHandle",
    "PsiRelease",
    "TaskIO",
    "UnexpectedMessage",
]
