"""Rogue PSI deviations, chosen by the `psi` setting of the rogue node (see tests/rogue.py):

* ``"tag"``: the counting side masks each of its IDs with its own fresh scalar, then tests every ID against
  the peer's singly-masked values and the doubly-masked values it gets back, writing the IDs it found in the
  intersection to the file `leak_file` when its run ends (with how many values of each kind it received);
  with `claimed_count` it reports that count instead of its own.
* ``"record"``: the party runs the protocol as it is but writes what it received to `leak_file` (under the
  arbiter gate: whether any value computed from its own IDs came back).
* ``"no_arbiter"``: the party ignores its record of the project's arbiter and runs the two-party protocol.
* ``"oversize"``: `extra_ids` made-up IDs are added to the party's set, so it declares more than its cap.
* ``"overflow"``: the party declares its true size but sends `extra_values` more values in its first chunk.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from fb_rogue import rogue_setting

import fedbench.components.builtin.psi as psi_component
from fedbench.psi import group, protocol

_MODE = rogue_setting("psi")
_Session: Any = protocol._Session


def _recording_recv_chunk(original: Any) -> Any:
    def recv_chunk(self: Any, kind: str, remaining: int) -> np.ndarray:
        data = original(self, kind, remaining)
        self.__dict__.setdefault("_seen", {}).setdefault(kind, []).append(data.copy())
        return data

    return recv_chunk


def _tagged_send_own(self: Any, pool: Any, order: np.ndarray, inflight: int) -> None:
    """Each ID masked with a scalar of its own (an honest party uses one secret for all)."""
    self._tags = []
    values = []
    for position in order.tolist():
        secret = group.new_secret()
        values.append(group.Masker(secret, self.domain_key).hash_mask([self.ids[position]]))
        self._tags.append((self.ids[position], secret))
    data = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(-1, group.ELEMENT_BYTES)
    for start in range(0, len(data), self.chunk):
        self.channel.send({"t": "x1", "data": data[start : start + self.chunk]})
    self.advance(self.n, "sent tagged IDs")


def _write_leak(self: Any) -> None:
    """The IDs the tags identify among what came back (none when nothing came back), and what was received."""
    seen = self.__dict__.get("_seen", {})
    peer = b"".join(chunk.tobytes() for chunk in seen.get("x1", []))
    returned = {bytes(row) for chunk in seen.get("x2", []) for row in chunk}
    found = []
    for text, secret in self.__dict__.get("_tags", []):
        doubled = group.Masker(secret, self.domain_key).mask(peer) if peer and returned else b""
        if any(doubled[i : i + group.ELEMENT_BYTES] in returned for i in range(0, len(doubled), 32)):
            found.append(text)
    received = {kind: sum(len(chunk) for chunk in chunks) for kind, chunks in seen.items()}
    with open(str(rogue_setting("leak_file")), "w") as handle:
        json.dump({"matched": found, "received": received}, handle)


def _leaking_run(original: Any) -> Any:
    def run(self: Any) -> Any:
        try:
            return original(self)
        finally:
            _write_leak(self)

    return run


def _tagged_recv_and_match(original: Any) -> Any:
    def recv_and_match(self: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
        match, values = original(self, reference)
        claimed = rogue_setting("claimed_count")
        if claimed is not None:
            match = np.zeros(self.n, dtype=bool)
            match[: int(claimed)] = True
        return match, values

    return recv_and_match


def _overflowing_send_own(self: Any, pool: Any, order: np.ndarray, inflight: int) -> None:
    """The declared number of honest values plus `extra_values` random ones, in one chunk."""
    ids = [self.ids[j] for j in order.tolist()]
    honest = pool.hash_mask(ids).result() if ids else b""
    extra = os.urandom(group.ELEMENT_BYTES * int(rogue_setting("extra_values", 1)))
    data = np.frombuffer(honest + extra, dtype=np.uint8).reshape(-1, group.ELEMENT_BYTES)
    self.channel.send({"t": "x1", "data": data})
    self.advance(self.n, "sent more values than declared")


def _oversized_run_psi(original: Any) -> Any:
    def run_psi(*args: Any, ids: Any, **kwargs: Any) -> Any:
        made_up = [f"made-up-{i}" for i in range(int(rogue_setting("extra_ids", 1)))]
        return original(*args, ids=[*ids, *made_up], **kwargs)

    return run_psi


if _MODE in ("tag", "record"):
    _Session.recv_chunk = _recording_recv_chunk(_Session.recv_chunk)
    _Session.run = _leaking_run(_Session.run)
if _MODE == "tag":
    _Session.send_own = _tagged_send_own
    _Session.recv_and_match = _tagged_recv_and_match(_Session.recv_and_match)
elif _MODE == "no_arbiter":
    psi_component._counting_arbiter = lambda ctx, release, min_intersection: None
elif _MODE == "overflow":
    _Session.send_own = _overflowing_send_own
elif _MODE == "oversize":
    psi_component.run_psi_on = _oversized_run_psi(psi_component.run_psi_on)
