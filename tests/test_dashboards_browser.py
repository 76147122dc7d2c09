"""The dashboards in a real browser: `fedbench dashboards` (Voila) for each party of a sandbox, driven by chromium.

Debian's chromium runs through the `playwright` Python package (`executable_path=/usr/bin/chromium`; never
`playwright install`), and every request to anything but loopback is aborted. Each test acts as a user
would (upload a file, tick datasets, click buttons), then checks the page AND the nodes' own stores. The
final state of each page is saved as a full-page screenshot under tests/artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import fedbench
from fedbench import sandbox

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
LOAD_BUDGET_S = 5.0
"""A dashboard must show its app, with data read after it was opened, within this many seconds."""
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _dashboards(home: Path, party: str, log: Path) -> Iterator[str]:
    """`fedbench dashboards` for `party` on a free loopback port; yields its base URL."""
    port = _free_port()
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fedbench",
                "dashboards",
                "--port",
                str(port),
                "--home",
                str(home),
                "--party",
                party,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/"
    try:
        give_up = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"fedbench dashboards exited:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(base, timeout=2):
                break
            assert time.monotonic() < give_up, f"Voila did not answer within 90 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("dashboards")
    sandbox.up(root, demo_data=True)
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def guest_url(fed: Path) -> Iterator[str]:
    with _dashboards(fed, "guest", fed / "voila-guest.log") as url:
        yield url


@pytest.fixture(scope="module")
def host_url(fed: Path) -> Iterator[str]:
    with _dashboards(fed, "host", fed / "voila-host.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
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


@pytest.fixture
def context(browser):
    """A browser context whose requests go to loopback only (the lab template asks a CDN for fonts)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)

    def route(request_route) -> None:
        host = request_route.request.url.split("/")[2].split(":")[0]
        if host in ("127.0.0.1", "localhost"):
            request_route.continue_()
        else:
            request_route.abort()

    ctx.route("**/*", route)
    yield ctx
    ctx.close()


def _open(context, base: str, name: str):
    """Open a dashboard; returns the page once its app shows, after checking it did so within budget."""
    page = context.new_page()
    started = time.monotonic()
    page.goto(f"{base}voila/render/{name}.ipynb")
    page.wait_for_selector(f".fb-app-{name}.fb-opened", state="visible", timeout=60_000)
    elapsed = time.monotonic() - started
    assert elapsed < LOAD_BUDGET_S, (
        f"the {name} dashboard took {elapsed:.1f} s to load (budget {LOAD_BUDGET_S} s)"
    )
    assert page.locator(".jp-InputArea:visible").count() == 0, "no code is shown"
    assert "Traceback" not in page.content()
    return page


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _upload(page, path: Path) -> None:
    """Choose a file in the upload widget (its file input exists only once the button is clicked)."""
    with page.expect_file_chooser() as chooser:
        page.click(".fb-data-upload")
    chooser.value.set_files(str(path))


def _until(check, what: str, timeout: float = 20.0) -> None:
    give_up = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < give_up, f"timed out waiting until {what}"
        time.sleep(0.2)


def test_data_dashboard_registers_an_uploaded_csv(fed: Path, guest_url: str, context, tmp_path: Path) -> None:
    csv = tmp_path / "branch customers.csv"
    rows = ["customer_ref,age,balance,churned"] + [
        f"c{i:04d},{20 + i % 50},{1000 + 37 * i},{i % 3 == 0:d}" for i in range(240)
    ]
    csv.write_text("\n".join(rows) + "\n")
    page = _open(context, guest_url, "data")
    assert "you are guest" in page.inner_text(".fb-party")
    assert "party guest" in page.inner_text(".fb-page-header")

    _upload(page, csv)
    page.wait_for_selector(".fb-data-schema >> text=customer_ref")
    assert "240 rows" in page.inner_text(".fb-data-register-card")
    page.select_option(".fb-data-id-column select", "customer_ref")
    page.select_option(".fb-data-label-column select", "churned")
    page.fill(".fb-data-name input", "branch_customers")
    page.click(".fb-data-register")
    page.wait_for_selector(".fb-notice .fb-ok >> text=Registered branch_customers")

    page.wait_for_selector(".fb-data-list >> text=branch_customers")
    page.wait_for_selector(".fb-data-view >> text=branch_customers: first rows")
    stored = {d.name: d for d in fedbench.connect(home=fed / "guest").datasets.list()}
    assert "branch_customers" in stored, "the node's store has the dataset"
    info = stored["branch_customers"]
    assert (info.n_rows, info.id_column, info.label_column) == (240, "customer_ref", "churned")
    assert info.features == ["age", "balance"]
    _screenshot(page, "data-dashboard.png")


def test_data_dashboard_says_what_is_wrong_with_a_file(guest_url: str, context, tmp_path: Path) -> None:
    bad = tmp_path / "duplicates.csv"
    bad.write_text("id,x\na,1\na,2\nb,3\n")
    page = _open(context, guest_url, "data")
    _upload(page, bad)
    page.wait_for_selector(".fb-data-schema >> text=repeated values")
    page.click(".fb-data-register")
    message = page.wait_for_selector(".fb-notice .fb-message")
    assert (
        "cannot be registered yet: the ID column id repeats values (for example 'a')" in message.inner_text()
    )
    assert "Traceback" not in page.content()
    _screenshot(page, "data-dashboard-refusal.png")


def test_projects_dashboards_propose_accept_revoke(fed: Path, guest_url: str, host_url: str, context) -> None:
    guest = _open(context, guest_url, "projects")
    assert "you are guest" in guest.inner_text(".fb-party")
    guest.fill(".fb-propose-name input", "branch-churn")
    guest.select_option(".fb-propose-partner select", "host")
    guest.locator(".fb-propose-datasets").get_by_label("credit", exact=True).check()
    guest.fill(".fb-propose-purpose textarea", "Predict churn of branch customers from both sides' data")
    guest.fill(".fb-propose-ask input", "your transaction features for the same customers")
    guest.fill(".fb-term-jobs_per_day input", "25")
    guest.press(".fb-term-jobs_per_day input", "Tab")
    guest.select_option(".fb-term-release select", label="Both parties")
    guest.click(".fb-propose-button")
    guest.wait_for_selector(".fb-propose-card .fb-ok >> text=sent to host")
    assert "proposed" in guest.inner_text(".fb-projects-list")

    host = _open(context, host_url, "projects")
    card = host.locator(".fb-pending-branch-churn")
    assert "your transaction features" in card.inner_text()
    assert "Up to 25 jobs a day" in card.inner_text()
    _screenshot(host, "projects-dashboard-host-proposal.png")
    card.locator(".fb-pending-datasets").get_by_label("credit", exact=True).check()
    card.locator(".fb-pending-accept").click()
    host.wait_for_selector(".fb-projects-card .fb-ok >> text=You accepted branch-churn")

    guest_node = fedbench.connect(home=fed / "guest")
    host_node = fedbench.connect(home=fed / "host")
    assert host_node.project("branch-churn").state == "active"
    _until(lambda: guest_node.project("branch-churn").state == "active", "the guest's node shows it active")
    assert guest_node.project("branch-churn").quotas["release"] == "both"
    assert guest_node.project("branch-churn").quotas["jobs_per_day"] == 25
    guest.click(".fb-refresh")
    guest.wait_for_selector(".fb-project-details >> text=active")

    host.click(".fb-project-revoke")
    host.fill(".fb-project-revoke-reason input", "pilot finished")
    host.click(".fb-project-revoke-confirm")
    host.wait_for_selector(".fb-projects-card .fb-ok >> text=branch-churn is revoked")
    assert host_node.project("branch-churn").state == "revoked"
    _until(lambda: guest_node.project("branch-churn").state == "revoked", "the guest's node shows it revoked")
    assert "pilot finished" in host.inner_text(".fb-project-audit")
    guest.click(".fb-refresh")
    guest.wait_for_selector(".fb-project-details >> text=revoked")
    _screenshot(guest, "projects-dashboard-guest.png")
    _screenshot(host, "projects-dashboard-host.png")


def test_psi_dashboard_runs_a_psi_shows_and_downloads_the_intersection(
    fed: Path, guest_url: str, host_url: str, context
) -> None:
    guest = _open(context, guest_url, "psi")
    assert "you are guest" in guest.inner_text(".fb-party")
    guest.select_option(".fb-psi-project select", "demo")
    guest.select_option(".fb-psi-dataset select", "credit")
    assert guest.input_value(".fb-psi-partner-dataset select") == "credit"
    guest.click(".fb-psi-run")
    started = guest.wait_for_selector(".fb-psi-run-card .fb-notice .fb-ok >> text=started").inner_text()
    short = started.split()[1]
    guest.wait_for_selector(".fb-psi-monitor .fb-step-bar")
    guest.wait_for_selector(f".fb-psi-result >> text=Run {short}", timeout=120_000)
    shown = int(guest.inner_text(".fb-psi-result .fb-psi-intersection .fb-figure-value").replace(",", ""))

    project = fedbench.connect(home=fed / "guest").project("demo")
    job_id = next(j for j in project.runs()["job_id"] if j.startswith(short))
    run = project.run_by_id(job_id)
    assert run.status == "succeeded"
    metrics = run.output("metrics").value()
    matched = run.output("data").to_pandas()
    assert shown == metrics["intersection_size"] == len(matched) > 0
    assert f"{metrics['size_self']:,}" in guest.inner_text(".fb-psi-ours")
    assert f"{metrics['match_rate_self']:.1%}" in guest.inner_text(".fb-psi-rate")
    assert "You and host each received" in guest.inner_text(".fb-psi-release")
    assert short in guest.inner_text(".fb-psi-runs")

    with guest.expect_download() as download:
        guest.click(".fb-psi-download")
    assert download.value.suggested_filename == f"psi-demo-guest-{short}.csv"
    saved = pd.read_csv(download.value.path(), dtype={"id": str})
    assert len(saved) == len(matched)
    assert saved["id"].tolist() == matched["id"].tolist()
    assert list(saved.columns) == list(matched.columns)
    assert "Traceback" not in guest.content()
    _screenshot(guest, "psi-dashboard-guest.png")

    host = _open(context, host_url, "psi")
    assert "you are host" in host.inner_text(".fb-party")
    assert short in host.inner_text(".fb-psi-runs")
    assert "started by guest" in host.inner_text(".fb-psi-result")
    host_metrics = (
        fedbench.connect(home=fed / "host").project("demo").run_by_id(job_id).output("metrics").value()
    )
    assert (
        host.inner_text(".fb-psi-intersection .fb-figure-value") == f"{host_metrics['intersection_size']:,}"
    )
    assert "You and guest each received" in host.inner_text(".fb-psi-release")
    host.wait_for_selector(
        ".fb-psi-download", timeout=10_000
    )  # the release policy gives the host its rows too
    assert not host.locator(".fb-psi-run").is_disabled(), "the host may run a PSI in this project too"
    _screenshot(host, "psi-dashboard-host.png")
