"""Attacks on the federation channel and the control API's send/recv, against an unmodified victim node.

The victim is guest (the demo project's initiator, its mailbox bounded to 256 MiB here). The attackers are
raw pushes from the test process holding a party's certificate: `mallory` (a configured peer in no project)
and `host` (a member of `demo`, with the project's token). A push must name a job its receiver runs, carry
that job's project token, and hold no more memory than the bytes that arrived; messages of an ended job go;
a local user reaches a job's messages only in a project it belongs to. After each attack the victim still
runs an honest job.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import DATABASE_URL, PLUGINS, Federation, job_states
from rogue import restart_rogue

import fedbench
from fedbench import sandbox
from fedbench.client.control import NodeClient
from fedbench.errors import FedbenchError, Refused
from fedbench.net.federation import FEDERATION_SERVICE, PushHeader
from fedbench.net.rpc import error_from_rpc
from fedbench.net.tls import channel_options, client_credentials

MIB = 1 << 20
VICTIM = "guest"
MAILBOX_MB = 256


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """guest, host and mallory with the demo project of guest and host; guest's mailbox bound is 256 MiB."""
    root = tmp_path_factory.mktemp("transport") / "sb"
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = PLUGINS + (os.pathsep + old if old else "")
    try:
        sandbox.up(
            root,
            parties=("guest", "host", "mallory"),
            component_modules=["fb_test_components"],
            database_url=DATABASE_URL,
        )
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    home = Federation(root).home(VICTIM)
    config = home.load_config()
    config.max_pending_mb = MAILBOX_MB
    home.save_config(config)
    restart_rogue(root, {}, rogue=VICTIM)  # restarts only the victim's node, unpatched, with its new bound
    yield Federation(root)
    sandbox.down(root)


@pytest.fixture(scope="module")
def job(fed: Federation) -> Iterator[fedbench.client.runs.Run]:
    """A long job of `demo` running on guest and host: the one the member's pushes go into."""
    run = _start_slow(fed)
    yield run
    run.cancel()


def _start_slow(fed: Federation, seconds: float = 900) -> fedbench.client.runs.Run:
    run = (
        fedbench.connect(home=fed.home(VICTIM).root)
        .project("demo")
        .run("slow", data="credit", seconds=seconds)
    )
    deadline = time.monotonic() + 60
    while any(
        job_states(fed.root, party, run.job_id, settle=False)[0] != "running" for party in ("guest", "host")
    ):
        assert time.monotonic() < deadline, "the slow job did not start on both parties"
        time.sleep(0.2)
    return run


def _project(fed: Federation) -> tuple[str, str]:
    """The demo project's id and token (the member's credentials)."""
    project_id = fedbench.connect(home=fed.home(VICTIM).root).project("demo").info["id"]
    token = (fed.home("host").secrets_dir / f"project-{project_id}.token").read_text().strip()
    return project_id, token


def _victim_rss(fed: Federation) -> int:
    (node,) = [n for n in sandbox.status(fed.root) if n.party == VICTIM]
    for line in Path(f"/proc/{node.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _raw_push(fed: Federation, header: PushHeader, chunks: Iterator[bytes]) -> FedbenchError | None:
    """One streamed Push to the victim with `header.sender`'s certificate; the refusal, or None."""
    tls = fed.tls(header.sender)
    address = fed.home(VICTIM).load_config().federation_address
    with grpc.secure_channel(address, client_credentials(tls), options=channel_options(VICTIM)) as channel:
        push = channel.stream_unary(f"/{FEDERATION_SERVICE}/Push")
        try:
            push(chunks, metadata=header.metadata(), timeout=60)
        except grpc.RpcError as exc:
            return error_from_rpc(exc, what=VICTIM)
    return None


class HeldPush:
    """A push that sends its first bytes, then keeps its stream open (as a slow or hostile sender does)."""

    def __init__(self, fed: Federation, header: PushHeader, first: bytes) -> None:
        self.release = threading.Event()
        self.error: FedbenchError | None = None
        self.done = threading.Event()

        def chunks() -> Iterator[bytes]:
            yield first
            self.release.wait(45)

        def run() -> None:
            self.error = _raw_push(fed, header, chunks())
            self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.release.set()
        self.thread.join(60)


def _header(sender: str, key: str, size: int, project: tuple[str, str] | None = None) -> PushHeader:
    project_id, token = project or ("", "")
    return PushHeader(sender, key, uuid.uuid4().hex, size, project_id, token)


def _peak_rss_while(fed: Federation, pushes: list[HeldPush], seconds: float = 4.0) -> int:
    peak, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, _victim_rss(fed))
        time.sleep(0.1)
    return peak


def _refusals(fed: Federation, action: str, reason: str) -> int:
    audit = fedbench.connect(home=fed.home(VICTIM).root).audit()
    refused = audit[(audit["action"] == action) & ~audit["allowed"]]
    return int(refused["reason"].str.contains(reason, regex=False).sum())


def assert_serves_an_honest_job(fed: Federation) -> None:
    project = fedbench.connect(home=fed.home(VICTIM).root).project("demo")
    run = project.run("row_count", data="credit", force=True).wait(timeout=180, show_progress=False)
    assert run.output("metrics").value()["rows"]["host"] > 0


def test_huge_declared_push_from_a_non_member_allocates_nothing(fed):
    before = _victim_rss(fed)
    refusals = _refusals(fed, "job.message", "project")
    push = HeldPush(fed, _header("mallory", f"{uuid.uuid4().hex}/psi/x", 512 * MIB), b"abcd")
    try:
        peak = _peak_rss_while(fed, [push])
    finally:
        push.finish()
    assert peak - before < 64 * MIB, f"the victim's memory grew by {(peak - before) // MIB} MiB"
    assert isinstance(push.error, Refused)
    assert _refusals(fed, "job.message", "project") > refusals
    assert_serves_an_honest_job(fed)


def test_an_admitted_push_holds_only_the_bytes_that_arrived(fed, job):
    before = _victim_rss(fed)
    push = HeldPush(fed, _header("host", f"{job.job_id}/slow/big", 200 * MIB, _project(fed)), b"abcd")
    try:
        peak = _peak_rss_while(fed, [push])
        assert not push.done.is_set(), f"an admitted push was refused: {push.error}"
    finally:
        push.finish()
    assert peak - before < 64 * MIB, f"the victim's memory grew by {(peak - before) // MIB} MiB"
    assert_serves_an_honest_job(fed)


@pytest.mark.parametrize("path", ["deliver", "push"])
def test_a_push_without_token_or_for_an_unknown_job_is_refused_and_audited(fed, job, path):
    project = _project(fed)
    unknown = f"{uuid.uuid4().hex}/psi/x"
    attempts = [
        ("no token, unknown job", unknown, None),
        ("token, unknown job", unknown, project),
        ("no token, running job", f"{job.job_id}/slow/x", None),
    ]
    client = fed.peer_client("host", VICTIM)
    before = _refusals(fed, "job.message", "")
    for label, key, credentials in attempts:
        if path == "deliver":
            with pytest.raises(Refused):
                client.push(key, b"abcd", project=credentials)
        else:
            error = _raw_push(fed, _header("host", key, 4, credentials), iter([b"abcd"]))
            assert isinstance(error, Refused), f"{label}: {error!r}"
    assert _refusals(fed, "job.message", "") >= before + len(attempts)
    assert _refusals(fed, "job.message", "no job") >= 1
    assert _refusals(fed, "job.message", "names no project") >= 2
    assert_serves_an_honest_job(fed)


def test_in_flight_bytes_are_bounded(fed, job):
    project = _project(fed)
    before = _victim_rss(fed)
    pushes = [
        HeldPush(fed, _header("host", f"{job.job_id}/slow/big{i}", 100 * MIB, project), b"x" * MIB)
        for i in range(3)
    ]
    try:
        deadline = time.monotonic() + 15
        while not any(p.done.is_set() for p in pushes) and time.monotonic() < deadline:
            time.sleep(0.1)
        peak = _peak_rss_while(fed, pushes, seconds=1.0)
        refused = [p for p in pushes if p.done.is_set()]
        assert len(refused) == 1, "three pushes of 100 MiB were all admitted into a 256 MiB mailbox"
        assert isinstance(refused[0].error, Refused) and "mailbox is full" in str(refused[0].error)
    finally:
        for push in pushes:
            push.finish()
    assert peak - before < 64 * MIB
    assert _refusals(fed, "federation.call", "mailbox is full") >= 1
    # The holds of the two streams that ended short are released: a full 100 MiB message fits again.
    key = f"{job.job_id}/slow/after"
    assert fed.peer_client("host", VICTIM).push(key, b"y" * (100 * MIB), project=project)
    assert len(fed.client(VICTIM).recv("host", key, timeout=30)) == 100 * MIB
    assert_serves_an_honest_job(fed)


def test_messages_of_an_ended_job_are_dropped_and_further_pushes_refused(fed):
    run = _start_slow(fed)
    project = _project(fed)
    key = f"{run.job_id}/slow/left"
    client = fed.peer_client("host", VICTIM)
    for _ in range(2):
        assert client.push(key, b"z" * MIB, project=project)
    run.cancel()
    assert job_states(fed.root, VICTIM, run.job_id)[0] == "cancelled"
    admin = fed.client(VICTIM)
    with pytest.raises(Refused, match="cancelled|ended"):
        admin.recv("host", key, timeout=2)
    deadline = time.monotonic() + 60
    while run.job_id in admin.call("mailbox.status")["messages"]:
        assert time.monotonic() < deadline, "the ended job's messages are still in the mailbox"
        time.sleep(0.1)
    before = _refusals(fed, "job.message", run.job_id)
    with pytest.raises(Refused, match="cancelled"):
        client.push(key, b"late", project=project)
    assert _refusals(fed, "job.message", run.job_id) > before
    assert_serves_an_honest_job(fed)


def test_a_user_outside_the_project_cannot_send_or_recv_its_job_messages(fed, job):
    admin = fed.client(VICTIM)
    address = fed.home(VICTIM).load_config().control_address
    suffix = uuid.uuid4().hex[:6]
    eve = NodeClient(address, admin.call("users.add", name=f"eve{suffix}", role="analyst")["token"])
    alice_name = f"alice{suffix}"
    alice = NodeClient(address, admin.call("users.add", name=alice_name, role="analyst")["token"])
    fedbench.connect(home=fed.home(VICTIM).root).project("demo").add_member(alice_name)
    key = f"{job.job_id}/slow/secret"
    assert fed.peer_client("host", VICTIM).push(key, {"secret": 42}, project=_project(fed))

    with pytest.raises(Refused, match="not a member"):
        eve.recv("host", key, timeout=2)
    with pytest.raises(Refused, match="not a member"):
        eve.send("host", f"{job.job_id}/slow/injected", {"forged": True})
    with pytest.raises(Refused, match="no job"):
        alice.recv("host", f"{uuid.uuid4().hex}/slow/secret", timeout=2)
    with pytest.raises(Refused, match="job/task/tag"):
        alice.recv("host", "not-a-job-key", timeout=2)
    assert _refusals(fed, "recv", "not a member") >= 1
    assert _refusals(fed, "send", "not a member") >= 1

    assert alice.recv("host", key, timeout=10) == {"secret": 42}
    assert_serves_an_honest_job(fed)
