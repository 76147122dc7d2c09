"""Shared fixtures: real sandbox federations (node processes over mutual TLS on loopback), never mocks."""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import fedbench
from fedbench import sandbox, sandbox_zygote_server
from fedbench.client.control import NodeClient
from fedbench.net.certs import PartyCredentials
from fedbench.net.peer import PeerClient
from fedbench.net.tls import TlsMaterial
from fedbench.net.transport import GrpcTransport
from fedbench.node.config import NodeHome
from fedbench.node.fork_server import child_pids, is_fork_server

os.environ.setdefault(sandbox.WARM_WORKERS_ENV, "0")
"""The suite's sandboxes keep no idle warm workers: most tests run a few steps or none, and each idle worker
costs a fork server and its imports (a module that tests the pool asks `sandbox.up(warm_workers=...)`). Set
in the environment, so sandboxes started by notebooks' kernels, the dashboards and the CLI get it too."""

_MODULE_SECONDS: collections.Counter[str] = collections.Counter()
"""Seconds spent in each test module (setup, call and teardown), for the summary at the end of a run."""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _MODULE_SECONDS[report.nodeid.split("::")[0]] += report.duration


SLOWEST_FIRST = (
    "test_binder.py",
    "test_business_flow_browser.py",
    "test_dashboards_browser.py",
    "test_dashboards_kernels.py",
    "test_rogue_psi.py",
    "test_notebooks.py",
    "test_hetero_lr_pipeline.py",
    "test_psi_component.py",
    "test_deploy_compose.py",
    "test_psi_protocol.py",
    "test_modeling_dashboard.py",
    "test_hetero_lr_protocols.py",
    "test_jupyter_extension.py",
    "test_sidebar_browser.py",
    "test_rogue_score.py",
    "test_rogue_dashboards.py",
    "test_ui_forms.py",
    "test_rogue_transport.py",
    "test_scoring_dashboard.py",
    "test_psi_dashboard.py",
    "test_rogue_paillier_keys.py",
)
"""The slowest modules (wall seconds of the summary below on a loaded 2-core machine, and CPU seconds of
benchmarks/suite_cpu.py), run first; the binder test, the longest single test, waits most of its time on pip,
JupyterLab and its kernels, so it starts at once beside the busiest modules. With scripts/test.sh's
`-n 3 --dist loadgroup --no-loadscope-reorder`, pytest-xdist hands out work in collection order, so the long
modules start at once and the short ones fill in around them instead of one long module running alone last."""

SPREAD = frozenset({"test_notebooks.py"})
"""Modules whose tests share no module-scoped fixture (each notebook starts its own sandbox): pytest-xdist may
run their tests on different workers. Every other module runs whole on one worker (its own `xdist_group`), so
a module-scoped sandbox is started once."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slowest modules first (SLOWEST_FIRST, every other order as collected), and one xdist group per module.

    First among the hooks: pytest-xdist reads the groups in its own hook of the same name.
    """
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    for item in items:
        if item.path.name not in SPREAD and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The 20 slowest test modules, so the suite's time can be followed module by module."""
    if not _MODULE_SECONDS:
        return
    terminalreporter.write_sep("=", "slowest 20 test modules")
    for module, seconds in _MODULE_SECONDS.most_common(20):
        terminalreporter.write_line(f"{seconds:8.1f}s {module}")
    terminalreporter.write_line(
        f"{sum(_MODULE_SECONDS.values()):8.1f}s in all {len(_MODULE_SECONDS)} modules"
    )


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost",
]

DATABASE_URL = os.environ.get("FEDBENCH_TEST_DATABASE_URL")
"""When set (e.g. postgresql://localhost/fb_{sandbox}_{party}), every test sandbox stores metadata there."""

TEST_DEMO_ROWS = 6_000
"""Rows of the demo credit table in test sandboxes (a fifth of the demo's: the same flows, about 4,800 matched
rows, registered and trained five times faster). Set in the environment for every sandbox of the suite,
those that notebooks' kernels, the dashboards and the CLI start included; a test that shows the demo's own
figures unsets it."""
os.environ.setdefault(sandbox.DEMO_ROWS_ENV, str(TEST_DEMO_ROWS))


PLUGINS = str(Path(__file__).parent / "plugins")
"""Test-only components (e.g. `slow`), loaded by nodes started with `up_with_test_components`."""


def up_with_test_components(
    root: Path,
    *,
    demo_data: bool = False,
    arbiter: bool = False,
    modules: tuple[str, ...] = ("fb_test_components",),
) -> None:
    """Start a sandbox whose nodes (not this kernel) also import the test-only component `modules` of tests/plugins."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = PLUGINS + (os.pathsep + old if old else "")
    try:
        sandbox.up(
            root,
            demo_data=demo_data,
            component_modules=list(modules),
            database_url=DATABASE_URL,
            arbiter=arbiter,
        )
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old


def small_two_party_project(root: Path, name: str) -> None:
    """On a started sandbox at `root`: a project `name` between guest and host over one 20-row table `t` each."""
    import pandas as pd

    guest = fedbench.connect(home=root / "guest")
    host = fedbench.connect(home=root / "host")
    ids = [f"u{i}" for i in range(20)]
    guest.datasets.upload(
        pd.DataFrame({"id": ids, "y": [i % 2 for i in range(20)]}), name="t", id_column="id"
    )
    host.datasets.upload(
        pd.DataFrame({"id": ids, "x": [float(i) for i in range(20)]}), name="t", id_column="id"
    )
    guest.projects.propose(name, partners="host", datasets=["t"], jobs_per_day=10_000)
    host.projects.accept(name, datasets=["t"])


def job_states(root: Path, party: str, job_id: str, *, settle: bool = True) -> tuple[str, dict[str, str]]:
    """A job's state and its steps' states in `party`'s own tables (by default once that party has finished)."""
    import sqlite3
    import time

    deadline = time.monotonic() + 30
    while True:
        con = sqlite3.connect(root / party / "fedbench.db")
        try:
            (state,) = con.execute("select state from job where id = ?", (job_id,)).fetchone()
            steps = dict(con.execute("select step, state from task where job_id = ?", (job_id,)).fetchall())
        finally:
            con.close()
        if not settle or state in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return state, steps
        time.sleep(0.1)


def node_fork_servers(root: Path, party: str) -> list[int]:
    """The fork servers of `party`'s sandbox node (its step workers are forked from them). Linux /proc."""
    (node,) = [n for n in sandbox.status(root) if n.party == party and n.pid is not None]
    return [pid for pid in child_pids(node.pid) if is_fork_server(pid)]


@contextlib.contextmanager
def steps_held(root: Path, party: str, timeout: float = 30.0) -> Iterator[None]:
    """No step of `party` can start meanwhile: its node's fork servers are frozen (SIGSTOP) until the block ends.

    The node itself keeps answering, so its records and pages can be read, and its partners' steps wait for its
    side: a run started in the block is still in progress at its end, however slow the machine.
    """
    servers = node_fork_servers(root, party)
    assert servers, f"the {party} node's fork server is found"
    try:
        for pid in servers:
            os.kill(pid, signal.SIGSTOP)
        give_up = time.monotonic() + timeout
        while not all(_stopped(pid) for pid in servers):
            assert time.monotonic() < give_up, f"the {party} node's fork servers did not stop"
            time.sleep(0.02)
        yield
    finally:
        for pid in servers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


class Federation:
    """A running sandbox in a temporary home, with helpers to reach its nodes as a test needs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def home(self, party: str) -> NodeHome:
        return NodeHome(self.root / party)

    def client(self, party: str) -> NodeClient:
        return NodeClient.for_home(self.home(party))

    def tls(self, party: str) -> TlsMaterial:
        key, cert, ca = PartyCredentials.from_dir(self.home(party).tls_dir).load()
        return TlsMaterial(key=key, cert=cert, ca=ca)

    def peer_client(self, sender: str, receiver: str, tls: TlsMaterial | None = None) -> PeerClient:
        """A channel from the test process, acting as `sender`, to `receiver`'s node."""
        address = self.home(receiver).load_config().federation_address
        return PeerClient(sender, receiver, address, tls or self.tls(sender))

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"


@pytest.fixture(scope="session", autouse=True)
def zygote_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One sandbox zygote server per pytest process (each xdist worker has its own): every sandbox the suite
    starts (here, and from the CLI, notebooks' kernels and the dashboards, through the environment) forks its
    nodes from it instead of importing the node's modules again, about 0.75 CPU-s each. The Binder test
    clears the variable, so the zygote a sandbox starts on its own is tested too."""
    server, path = sandbox_zygote_server.start(tmp_path_factory.mktemp("zygote"))
    os.environ[sandbox_zygote_server.ENV] = str(path)
    yield path
    os.environ.pop(sandbox_zygote_server.ENV, None)
    server.terminate()
    server.wait(30)


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Two nodes (guest, host) shared by the tests that only send, receive and get refused."""
    root = tmp_path_factory.mktemp("federation")
    sandbox.up(root, demo_data=False, database_url=DATABASE_URL)
    yield Federation(root)
    sandbox.down(root)


@pytest.fixture(scope="session")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Two nodes (guest, host) with the demo data and the demo project, started once per pytest process (each
    xdist worker has its own) for every module that needs only a running two-party federation.

    Starting a sandbox costs about 3 CPU-seconds (two node processes importing the package) and each node's
    first step about 1.5 more (its fork server's imports); here they are paid once per worker, not per module.
    A module using it names its datasets and projects after itself (a name taken on a node is refused, so a
    clash fails loudly), stops no node, edits no node.json and asserts nothing about records it did not make.
    Its metadata is in SQLite (the modules using it read `fedbench.db`, e.g. through `job_states`).
    """
    root = tmp_path_factory.mktemp("shared")
    sandbox.up(root, demo_data=True)
    yield Federation(root)
    sandbox.down(root)


@pytest.fixture
def fresh_federation(tmp_path: Path) -> Iterator[Federation]:
    """Two nodes of this test alone (for tests that kill nodes or fill the store)."""
    sandbox.up(tmp_path / "sb", demo_data=False, database_url=DATABASE_URL)
    yield Federation(tmp_path / "sb")
    sandbox.down(tmp_path / "sb")


@pytest.fixture(scope="session")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Three nodes (guest, host, mallory): mallory holds a valid federation certificate but joins no project."""
    root = tmp_path_factory.mktemp("trio")
    sandbox.up(root, parties=("guest", "host", "mallory"), demo_data=False, database_url=DATABASE_URL)
    yield Federation(root)
    sandbox.down(root)


class JobChannel:
    """A long `slow` job of the demo project, running on guest and host: what carries a test's messages.

    A node takes a message only into a job it runs, with that job's project token, so tests of the channel
    itself send under this job's keys with its project's credentials.
    """

    def __init__(self, federation: Federation, job_id: str, project_id: str) -> None:
        self.federation = federation
        self.job_id = job_id
        self.project_id = project_id
        token_file = federation.home("guest").secrets_dir / f"project-{project_id}.token"
        self.project = (project_id, token_file.read_text().strip())

    def key(self, tag: str, task: str = "task") -> str:
        """A fresh message key of the job (a unique tag, so tests never share a queue)."""
        return f"{self.job_id}/{task}/{tag}-{uuid.uuid4().hex[:8]}"

    def transport(self, party: str) -> GrpcTransport:
        """`party`'s transport as its worker would have it: pushes carry the token, receipts go via its node."""
        clients = functools.cache(lambda peer: self.federation.peer_client(party, peer))
        return GrpcTransport(party, clients, self.federation.client(party).recv, project=self.project)


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobChannel]:
    """Two nodes with the demo project and one job running on both for the whole session."""
    import fedbench

    root = tmp_path_factory.mktemp("channel")
    up_with_test_components(root, demo_data=True)
    project = fedbench.connect(home=root / "guest").project("demo")
    run = project.run("slow", data="credit", seconds=3600)
    deadline = time.monotonic() + 60
    while any(job_states(root, p, run.job_id, settle=False)[0] != "running" for p in ("guest", "host")):
        assert time.monotonic() < deadline, "the channel's job did not start on both parties"
        time.sleep(0.2)
    yield JobChannel(Federation(root), run.job_id, project.info["id"])
    run.cancel()
    sandbox.down(root)


def dashboards_url(log_text: str, party: str) -> str | None:
    """The URL (with its token) `fedbench dashboards` printed for `party` in its log, or None before it did.

    The token is matched by its own characters, so a line Voila writes into the same log cannot lengthen it."""
    found = re.search(rf"fedbench dashboards of party {party}: (http://\S+?\?token=[\w-]+)", log_text)
    return found.group(1) if found else None


def loopback_context(browser, *, timeout_ms: int = 30_000, **options):
    """A browser context (playwright's `new_context(**options)`) whose requests go to loopback only: the pages
    ask CDNs for fonts, and nothing else is reachable from here."""
    context = browser.new_context(**options)
    context.set_default_timeout(timeout_ms)

    def route(request_route) -> None:
        host = request_route.request.url.split("/")[2].split(":")[0]
        if host in ("127.0.0.1", "localhost"):
            request_route.continue_()
        else:
            request_route.abort()

    context.route("**/*", route)
    return context


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through playwright (never `playwright install`), for the dashboards' browser tests."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"no browser at {CHROMIUM}: the dashboard tests need Debian's chromium; install it with "
            "`bash scripts/ci/install-browser.sh` (as root). Do not run `playwright install`."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
