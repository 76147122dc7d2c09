"""The federation context: typed receives, error records raised as their class, broadcast and gather, sliced
waits that see cancellation, and protocol code that reaches peers only through it.

In one process over the in-memory transport (payloads pass the real codec): what is tested here is the
context's own logic, which a real channel would not change.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import fedbench
from fedbench.errors import Refused
from fedbench.federation import (
    Cancelled,
    ErrorRecord,
    PeerFailed,
    TaskIO,
    UnexpectedMessage,
)
from fedbench.federation import Context as FederationContext
from fedbench.net.transport import InMemoryFederation
from fedbench.psi import PsiPeerError, PsiRefused

PARTIES = {"guest": ["g"], "host": ["h1", "h2"]}


def _contexts(cancelled: threading.Event | None = None) -> dict[str, FederationContext]:
    federation = InMemoryFederation(["g", "h1", "h2"])
    flag = cancelled or threading.Event()
    out = {}
    for role, parties in PARTIES.items():
        for party in parties:
            out[party] = FederationContext(
                party=party,
                role=role,
                roles=PARTIES,
                job_id="job-1",
                step="step",
                params=None,
                transport=federation.transport(party),
                io=TaskIO(
                    read_input=lambda name: None,
                    write_output=lambda name, value: None,
                    emit=lambda event: None,
                    is_cancelled=flag.is_set,
                ),
                recv_timeout=30,
            )
    return out


def test_typed_recv_returns_the_value_and_refuses_another_type() -> None:
    ctx = _contexts()
    ctx["h1"].peer("guest").send("rows", 12)
    assert ctx["g"].peers("host")[0].recv("rows", int) == 12
    ctx["h1"].peer("guest").send("rows", "twelve")
    with pytest.raises(
        UnexpectedMessage, match="'h1' sent a str where its 'rows' message should be of type int"
    ):
        ctx["g"].peers("host")[0].recv("rows", int)


def test_a_peers_error_record_is_raised_as_the_class_of_its_code() -> None:
    ctx = _contexts()
    host = ctx["h1"].peer("guest")
    host.send("x", ErrorRecord("psi_refused", "declared 9 rows, more than 5").to_wire())
    with pytest.raises(PsiRefused, match="'h1' refused: declared 9 rows"):
        ctx["g"].peers("host")[0].recv("x")
    host.send("x", ErrorRecord("refused", "not in this project").to_wire())
    with pytest.raises(Refused, match="'h1' refused: not in this project"):
        ctx["g"].peers("host")[0].recv("x")
    host.send("x", ErrorRecord("psi_peer", "out of memory").to_wire())
    with pytest.raises(PsiPeerError, match="'h1' failed: out of memory"):
        ctx["g"].peers("host")[0].recv("x")
    host.send("x", ErrorRecord("made_up_code", "something new").to_wire())
    with pytest.raises(PeerFailed, match="'h1' failed: something new"):
        ctx["g"].peers("host")[0].recv("x")


def test_error_records_keep_the_psi_wire_format_and_are_values_when_asked() -> None:
    record = ErrorRecord("psi_refused", "no")
    assert record.to_wire() == {"error": "psi_refused", "reason": "no"}
    assert ErrorRecord.from_wire({"error": "psi_refused", "reason": "no"}) == record
    assert ErrorRecord.from_wire({"error": "x", "count": 3}) is None, "a message with more keys is content"
    ctx = _contexts()
    ctx["h2"].peer("guest").send("x", record.to_wire())
    message = ctx["g"].peers("host")[1].recv_message("x")
    assert message.error == record and message.content is None


def test_broadcast_and_gather_reach_every_party_of_a_role() -> None:
    ctx = _contexts()
    ctx["g"].broadcast("host", "plan", [1, 2, 3])
    for party in ("h1", "h2"):
        assert ctx[party].peer("guest").recv("plan", list) == [1, 2, 3]
        ctx[party].peer("guest").send("rows", len(party))
    assert ctx["g"].gather("host", "rows", int) == {"h1": 2, "h2": 2}


def test_a_long_wait_sees_cancellation_within_its_slices() -> None:
    cancelled = threading.Event()
    ctx = _contexts(cancelled)
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            ctx["g"].peers("host")[0].recv("never", timeout=3600)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=wait)
    thread.start()
    cancelled.set()
    thread.join(60)
    assert not thread.is_alive(), "an hour's wait did not see the cancel"
    assert isinstance(outcome["error"], Cancelled) and "step 'step' was cancelled" in str(outcome["error"])


def test_a_cancelled_side_sends_no_error_record() -> None:
    """Its node tells the others of a cancel: a record would race with that and turn their cancel into a fail."""
    ctx = _contexts()
    ctx["g"].peers("host")[0].channel("psi").fail(Cancelled("step 'psi' was cancelled"))
    ctx["g"].peers("host")[0].channel("psi").fail(ValueError("boom"))
    message = ctx["h1"].peer("guest").recv_message("psi")
    assert message.error == ErrorRecord(
        "internal", "'g' stopped on an internal error (ValueError); see its log"
    )


def test_protocol_code_reaches_peers_only_through_the_federation_layer() -> None:
    package = Path(fedbench.__file__).parent
    offenders = []
    for layer in ("psi", "ml", "components/builtin", "federation"):
        for path in (package / layer).rglob("*.py"):
            text = path.read_text()
            if layer != "federation" and ("transport.send(" in text or "transport.recv(" in text):
                offenders.append(f"{path.relative_to(package)} calls the transport")
            if "ctx.transport" in text:
                offenders.append(f"{path.relative_to(package)} goes around the context to the transport")
            if layer != "components/builtin" and "fedbench.components" in text:
                offenders.append(f"{path.relative_to(package)} imports from components/ (upward)")
    assert offenders == []
