"""Client-level differential privacy for horizontal rounds: each client clips and noises its own change.

A chosen client bounds its change's L2 norm by `clip` and adds Gaussian noise of standard deviation
`noise * clip / sqrt(m)` (m: the clients chosen that round), so the sum of m changes carries noise of standard
deviation `noise * clip`, the Gaussian mechanism for one client's change, without any party adding all of it.
The noise comes from the operating system's randomness, never from a seed a peer knows. The privacy spent is
counted by Opacus' RDP accountant (a vetted implementation; an optional dependency with PyTorch).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import numpy as np

from fedbench.errors import FedbenchError

__all__ = ["NoAccountant", "epsilon", "private_change"]


class NoAccountant(FedbenchError):
    """Opacus, which counts the privacy spent, is not installed."""

    code = "no_accountant"


def private_change(change: np.ndarray, chosen: int, noise: float, clip: float) -> np.ndarray:
    """`change` with its L2 norm clipped to `clip`, plus this client's share of the round's Gaussian noise."""
    norm = float(np.linalg.norm(change))
    clipped = change * min(1.0, clip / norm) if norm > 0 else change
    rng = np.random.default_rng(secrets.randbits(128))
    return clipped + rng.normal(0.0, noise * clip / math.sqrt(max(chosen, 1)), size=change.shape)


def epsilon(steps: Sequence[tuple[float, float]], delta: float) -> float:
    """The epsilon of (epsilon, delta)-DP after rounds of (noise multiplier, share of clients sampled).

    Opacus' RDP accountant, which treats the sampling as Poisson with that rate (the usual approximation for a
    fixed number of clients drawn per round). A round whose noise is 0 spends everything: infinity.
    """
    if not steps:
        return 0.0
    if any(noise <= 0 for noise, _ in steps):
        return math.inf
    try:
        from opacus.accountants import RDPAccountant
    except ImportError:
        raise NoAccountant(
            "differential privacy needs Opacus to count the privacy spent: pip install 'fedbench[torch]'"
        ) from None
    accountant = RDPAccountant()
    for noise, rate in steps:
        accountant.step(noise_multiplier=noise, sample_rate=min(1.0, rate))
    return float(accountant.get_epsilon(delta))
