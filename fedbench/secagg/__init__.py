"""Secure aggregation for horizontal learning, SecAgg+ style: the server learns only the survivors' sum.

Per round each client makes two X25519 key pairs and a self-mask seed, shares the seed and its mask private
key with O(log N) neighbours by Shamir's scheme (encrypted with AES-GCM), and sends its clipped, quantized
update plus AES-256-CTR masks; the server rebuilds the masks of survivors' seeds and of dropped clients' keys
from the surviving shares and keeps only the sum. See docs/protocols/secure_aggregation.md.
"""

from __future__ import annotations

from fedbench.secagg.client import SecAggClient
from fedbench.secagg.config import RoundConfig
from fedbench.secagg.errors import MaskKeyError, OutOfRange, RoundAborted, SecAggError, ShareRefused
from fedbench.secagg.quantize import Quantizer
from fedbench.secagg.server import AggregateResult, SecAggServer
from fedbench.secagg.simulate import ServerView, SimulatedRound, simulate_round

__all__ = [
    "AggregateResult",
    "MaskKeyError",
    "OutOfRange",
    "Quantizer",
    "RoundAborted",
    "RoundConfig",
    "SecAggClient",
    "SecAggError",
    "SecAggServer",
    "ServerView",
    "ShareRefused",
    "SimulatedRound",
    "simulate_round",
]
