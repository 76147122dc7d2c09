"""Vertical SecureBoost: the plaintext boosted trees of `ml.trees` with the host's features behind Paillier.

`layout` (one row's (g, h, 1) packed into one plaintext, slot widths from the row count), `host` (encrypted
cumulative histograms of the host's features, rerandomized with its own randomness; answers at its own splits)
and `guest` (the booster's rounds over the protocol). docs/protocols/secureboost.md gives every message.
"""

from fedbench.ml.secureboost.errors import SecureBoostError
from fedbench.ml.secureboost.guest import GuestResult, GuestTrainer
from fedbench.ml.secureboost.host import HostTrainer

__all__ = ["GuestResult", "GuestTrainer", "HostTrainer", "SecureBoostError"]
