"""Run `hetero_lr` / `score` role functions in threads over an in-memory federation, recording every message.

The protocol tests use it to compare the federated results with a plaintext computation and to inspect what
each party receives, without starting nodes.
"""

from __future__ import annotations

import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fedbench import components
from fedbench.components.context import Context, PsiRelease, TaskIO
from fedbench.errors import ConfigError
from fedbench.net.transport import InMemoryFederation

PROJECT = {"id": "p-1", "name": "demo"}


@dataclass
class Result:
    outputs: dict[str, dict[str, Any]]
    metrics: list[tuple[str, str, float, int | None]]
    errors: dict[str, BaseException]
    received: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)

    def losses(self, party: str = "guest", name: str = "loss") -> list[float]:
        return [value for p, n, value, _ in self.metrics if p == party and n == name]


def run_component(
    name: str,
    params: dict[str, Any],
    inputs: dict[str, dict[str, Any]],
    project: dict[str, Any] | None = None,
) -> Result:
    """Run every role of component `name` (parties named after their roles) with `inputs` per party."""
    component = components.get(name)
    validated = component.validate_params(params)
    parties = list(inputs)
    federation = InMemoryFederation(parties)
    received: dict[str, list[tuple[str, Any]]] = {p: [] for p in parties}
    deliver = federation._deliver

    def recording(sender: str, receiver: str, key: str, payload: Any) -> None:
        received[receiver].append((re.sub(r"^(i\d+\.)*", "", key.rsplit("/", 1)[-1]), payload))
        deliver(sender, receiver, key, payload)

    federation._deliver = recording  # type: ignore[method-assign]
    outputs: dict[str, dict[str, Any]] = {p: {} for p in parties}
    metrics: list[tuple[str, str, float, int | None]] = []
    errors: dict[str, BaseException] = {}
    roles = {p: [p] for p in parties}

    def context(party: str) -> Context:
        def read(port: str) -> Any:
            if port not in inputs[party]:
                raise ConfigError(f"no input {port!r}")
            return inputs[party][port]

        def emit(event: dict[str, Any]) -> None:
            if event["type"] == "metric":
                metrics.append((party, event["name"], event["value"], event["step"]))

        # As if a PSI of the project had released each party's table inputs to every party (the host checks it
        # before it sends per-row partial scores, in score and hetero_lr).
        tables = [inputs[party][n] for n in ("data", "train", "validation") if n in inputs[party]]
        released = [PsiRelease("psi", "psi", tuple(parties), tuple(parties), lambda: pd.concat(tables))]
        io = TaskIO(
            read_input=read,
            write_output=outputs[party].__setitem__,
            emit=emit,
            is_cancelled=lambda: bool(errors),
            psi_releases=lambda: released if tables else [],
        )
        return Context(
            party=party,
            role=party,
            roles=roles,
            job_id="job",
            step=name,
            params=validated,
            transport=federation.transport(party),
            io=io,
            recv_timeout=120,
            project=project or PROJECT,
            psi_key=b"project-key",
        )

    def play(party: str) -> None:
        try:
            component.functions[party](context(party), validated)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors[party] = exc

    threads = [threading.Thread(target=play, args=(p,)) for p in parties]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    return Result(outputs, metrics, errors, received)


def aligned(guest: pd.DataFrame, host: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two parties' rows of the IDs both hold, in the guest's order (what PSI would give)."""
    common = guest[guest["id"].isin(set(host["id"]))].reset_index(drop=True)
    return common, host.set_index("id").loc[common["id"]].reset_index()
