"""Fixed-point encoding of clipped updates into Z_2^k, with room for the sum of every client of a round.

Each coordinate is clipped to [-c, c] and encoded as q = round(x / c * Q) with Q = floor((2^(k-1) - 1) / N)
(at most 2^52, where float64 still holds every integer), taken modulo 2^k; decoding reads the sum as a signed
k-bit integer and divides by Q / c. Since each |q| <= Q, a sum of up to N clients stays within
[-(2^(k-1) - 1), 2^(k-1) - 1] and never wraps. The error of a decoded sum of n clients, per coordinate, is at
most n * c / Q (half a step of rounding and under half a step of float64 error per client) plus
n * c * 2^-52 (float64 decoding), against the sum of the clipped values: `Quantizer.error_bound`.

Out-of-range values can only be caught here, at the client, before masking: once masked, every vector is
uniform in Z_2^k and the server cannot tell an encoded 10^9 from an encoded 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fedbench.secagg.errors import OutOfRange, SecAggError
from fedbench.secagg.masks import dtype_of

_FLOAT_EXACT = 1 << 52


@dataclass(frozen=True)
class Quantizer:
    """The encoding of one round: clip range `clip`, ring bits, and the most clients a sum may hold.

    `on_out_of_range`: "clip" clips values beyond [-clip, clip] (the default: clipping is the defence against
    a client's outsized update); "refuse" raises OutOfRange instead. Non-finite values are always refused.
    """

    clip: float
    clients: int
    bits: int = 32
    on_out_of_range: Literal["clip", "refuse"] = "clip"

    def __post_init__(self) -> None:
        dtype_of(self.bits)
        if not (np.isfinite(self.clip) and self.clip > 0):
            raise SecAggError(f"the clip range must be a positive number, not {self.clip}")
        if self.clients < 1 or self.levels < 1:
            raise SecAggError(
                f"{self.clients} clients do not fit a {self.bits}-bit ring; use bits=64 or fewer clients"
            )
        if self.on_out_of_range not in ("clip", "refuse"):
            raise SecAggError(f"on_out_of_range is 'clip' or 'refuse', not {self.on_out_of_range!r}")

    @property
    def levels(self) -> int:
        """Q: the integer that encodes the value `clip`."""
        return min(((1 << (self.bits - 1)) - 1) // max(self.clients, 1), _FLOAT_EXACT)

    @property
    def step(self) -> float:
        """The value of one unit of the encoding, c / Q."""
        return self.clip / self.levels

    def error_bound(self, clients: int) -> float:
        """Most a decoded sum of `clients` encodings may differ, per coordinate, from the clipped sum."""
        return clients * self.step + clients * self.clip * 2.0**-52

    def encode(self, update: np.ndarray) -> np.ndarray:
        """The update as elements of Z_2^bits; OutOfRange names the first bad coordinate."""
        values = np.asarray(update, dtype=np.float64).ravel()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise OutOfRange(f"coordinate {bad[0]} of the update is {values[bad[0]]}, not a finite number")
        if self.on_out_of_range == "refuse":
            beyond = np.flatnonzero(np.abs(values) > self.clip)
            if beyond.size:
                raise OutOfRange(
                    f"coordinate {beyond[0]} of the update is {values[beyond[0]]}, outside the clip range "
                    f"[-{self.clip}, {self.clip}]; scale the update or raise clip"
                )
        scaled = np.rint(np.clip(values, -self.clip, self.clip) * (self.levels / self.clip))
        return np.clip(scaled, -self.levels, self.levels).astype(np.int64).astype(dtype_of(self.bits))

    def decode(self, total: np.ndarray) -> np.ndarray:
        """A sum in Z_2^bits back to floats (read as a signed bits-bit integer)."""
        signed = np.asarray(total, dtype=dtype_of(self.bits)).view(np.int32 if self.bits == 32 else np.int64)
        return signed.astype(np.float64) * self.step
