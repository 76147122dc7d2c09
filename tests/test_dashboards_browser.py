"""The dashboards in a real browser: `fedbench dashboards` (Voila) for each party of a sandbox, driven by chromium.

Debian's chromium runs through the `playwright` Python package (`executable_path=/usr/bin/chromium`; never
`playwright install`), and every request to anything but loopback is aborted. Each test acts as a user
would (upload a file, tick datasets, click buttons), then checks the page AND the nodes' own stores. The
final state of each page is saved as a full-page screenshot under tests/artifacts/.
"""

from __future__ import annotations

import contextlib
import html
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import dashboards_url, loopback_context

import fedbench
from fedbench import sandbox
from fedbench.cli.dashboards import DASHBOARDS
from fedbench.net.ports import free_port
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards.modeling_uplift import UPLIFT_NAME

ARTIFACTS = Path(__file__).parent / "artifacts"


def _kernels_cpu(root: int) -> dict[int, int]:
    """The CPU time (clock ticks) of each Jupyter kernel process descending from process `root` (Linux /proc)."""
    parents: dict[int, int] = {}
    stats: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stats[int(entry.name)] = (command, int(fields[11]) + int(fields[12]))

    def descends(pid: int) -> bool:
        for _ in range(16):
            pid = parents.get(pid, 0)
            if pid == root:
                return True
            if pid <= 1:
                return False
        return False

    return {pid: cpu for pid, (command, cpu) in stats.items() if "ipykernel" in command and descends(pid)}


def _wait_preheated(server: int, dashboards: int, timeout: float = 90.0) -> None:
    """Wait until Voila's pre-heated kernels (one per dashboard) have built their pages and gone quiet.

    Voila answers before its kernels are ready; a page opened while they all start competes with them for
    the CPU, which is server start-up, not what a user opening a page waits for.
    """
    give_up = time.monotonic() + timeout
    previous: dict[int, int] = {}
    while time.monotonic() < give_up:
        current = _kernels_cpu(server)
        if len(current) >= dashboards and current == previous:
            return
        previous = current
        time.sleep(1.0)


@contextlib.contextmanager
def _dashboards(home: Path, party: str, log: Path, preheat: tuple[str, ...] = DASHBOARDS) -> Iterator[str]:
    """`fedbench dashboards` for `party` on a free loopback port, pre-heating the kernels of the dashboards in
    `preheat` (those the tests open); yields the URL it printed (with its token)."""
    port = free_port()
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
                "--preheat",
                ",".join(preheat) or "none",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        give_up = time.monotonic() + 90
        while not (url := dashboards_url(log.read_text(), party)):
            assert server.poll() is None, f"fedbench dashboards exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < give_up, f"Voila did not answer within 90 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        assert url.startswith(f"http://127.0.0.1:{port}/?token="), url
        _wait_preheated(server.pid, len(preheat))
        yield url
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


DEMO_ROWS = 4_000
"""Rows of this module's demo credit table: two thirds of the suite's (`TEST_DEMO_ROWS`), and no fewer: "What
does the partner add?" compares on the validation rows and refuses fewer than 500 (about 640 here)."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("dashboards")
    sandbox.up(root, demo_data=True, demo_rows=DEMO_ROWS)
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def guest_url(fed: Path) -> Iterator[str]:
    with _dashboards(fed, "guest", fed / "voila-guest.log") as url:
        yield url


@pytest.fixture(scope="module")
def host_url(fed: Path) -> Iterator[str]:
    opened = tuple(name for name in DASHBOARDS if name != "data")
    with _dashboards(fed, "host", fed / "voila-host.log", preheat=opened) as url:
        yield url


@pytest.fixture
def context(browser):
    """A browser context whose requests go to loopback only (the lab template asks a CDN for fonts)."""
    ctx = loopback_context(browser, viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


def _page_url(printed: str, name: str) -> str:
    """Where dashboard `name` opens, from the URL `fedbench dashboards` printed (its token kept)."""
    parts = urllib.parse.urlsplit(printed)
    return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path}voila/render/{name}.ipynb"))


def _open(context, printed: str, name: str):
    """Open a dashboard with the printed URL's token; returns the page once its app shows (how fast it does
    is measured by `benchmarks/dashboards.py`, never here)."""
    page = context.new_page()
    page.goto(_page_url(printed, name))
    page.wait_for_selector(f".fb-app-{name}.fb-opened", state="visible", timeout=180_000)
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


TEMPLATES = Path(__file__).parent.parent / "templates" / "pipelines"
QUICK_TRAINING = {"key_bits": 1024, "epochs": 2, "approximation": "taylor"}
"""What a user picks in the modeling form for a quick try (the template keeps 2048-bit keys): two epochs of
FATE's Taylor loss (the default approximation's refine epochs cost three times as much)."""
TAYLOR = "Taylor, as FATE does (cheaper epochs, less accurate)"
"""The approximation's option as the modeling form labels it."""


def _plain(text: str) -> str:
    """An option's text as written (ipywidgets draws the spaces of a dropdown's labels as no-break spaces)."""
    return text.replace("\xa0", " ")


def _notice_after(page, card: str, before: str) -> str:
    """The action notice of `card` once it says a new run started (it said `before` until the click)."""
    selector = f"{card} .fb-notice"
    seen: list[str] = []

    def started() -> bool:
        # keep the text that said so: the notice may change again (e.g. when the monitor takes over) before a
        # second read
        text = page.inner_text(selector)
        seen.append(text)
        return "started" in text and text != before

    _until(started, "the page says the run started")
    return seen[-1]


@pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")
def test_modeling_dashboard_trains_retrains_and_says_what_was_reused(
    fed: Path, guest_url: str, host_url: str, context
) -> None:
    page = _open(context, guest_url, "modeling")
    assert "you are guest" in page.inner_text(".fb-party")
    page.select_option(".fb-modeling-project select", "demo")
    page.select_option(".fb-modeling-template select", "credit_scoring")
    assert page.input_value(".fb-modeling-param-learning_rate input") == "0.5", "the template's settings"
    page.select_option(".fb-modeling-param-key_bits select", label="1024 bits (a quick try only)")
    page.fill(".fb-modeling-param-epochs input", str(QUICK_TRAINING["epochs"]))
    page.press(".fb-modeling-param-epochs input", "Tab")
    page.get_by_text("More settings").click()
    page.select_option(".fb-modeling-param-approximation select", TAYLOR)
    page.click(".fb-modeling-train")
    short = _notice_after(page, ".fb-modeling-train-card", "").split()[1]
    page.wait_for_selector(".fb-modeling-monitor .fb-step-bar")
    page.wait_for_selector(".fb-modeling-monitor .fb-monitor-chart img", timeout=180_000)  # the live loss
    page.wait_for_selector(f".fb-modeling-result >> text=Run {short}", timeout=240_000)

    project = fedbench.connect(home=fed / "guest").project("demo")
    job_id = next(j for j in project.runs()["job_id"] if j.startswith(short))
    run = project.run_by_id(job_id)
    assert run.status == "succeeded"
    evaluation = run.output("metrics", step="evaluate").value()
    assert page.inner_text(".fb-modeling-auc .fb-figure-value") == f"{evaluation['validation']['auc']:.3f}"
    assert page.inner_text(".fb-modeling-ks .fb-figure-value") == f"{evaluation['validation']['ks']:.3f}"
    assert run.output("model", step="train").value()["card"]["params"]["key_bits"] == 1024
    assert page.locator(".fb-modeling-plots img").count() == 6
    ran = page.inner_text(".fb-modeling-reuse").split(";")[-1]  # the PSI may be the PSI test's, reused
    assert "train, evaluate and score" in ran and "reused" not in ran

    before = page.inner_text(".fb-modeling-train-card .fb-notice")
    page.fill(".fb-modeling-param-learning_rate input", "0.3")
    page.press(".fb-modeling-param-learning_rate input", "Tab")
    page.click(".fb-modeling-train")
    again = _notice_after(page, ".fb-modeling-train-card", before).split()[1]
    page.wait_for_selector(f".fb-modeling-result >> text=Run {again}", timeout=240_000)
    reuse = page.inner_text(".fb-modeling-reuse")
    assert "PSI and split were reused" in reuse and "train, evaluate and score ran again" in reuse
    second = project.run_by_id(next(j for j in project.runs()["job_id"] if j.startswith(again)))
    states = dict(zip(second.steps()["step"], second.steps()["state"], strict=True))
    assert states["psi"] == states["split"] == "reused" and states["train"] == "succeeded"
    second_auc = second.output("metrics", step="evaluate").value()["validation"]["auc"]
    assert page.inner_text(".fb-modeling-auc .fb-figure-value") == f"{second_auc:.3f}"
    page.click(".fb-modeling-compare")
    page.wait_for_selector(".fb-modeling-comparison .fb-chart-compare")
    assert "Learning rate" in page.inner_text(".fb-modeling-comparison")

    # What does the partner add? One click for the verdict, one for the report.
    page.click(".fb-modeling-uplift")
    page.wait_for_selector(".fb-modeling-uplift-verdict", timeout=180_000)
    runs = project.runs()
    compared = next(j for j, n in zip(runs["job_id"], runs["name"], strict=True) if n.startswith(UPLIFT_NAME))
    report = project.run_by_id(compared).output("report", step="compare").value()
    verdict = report["verdict"]["text"]
    assert verdict in page.inner_text(".fb-modeling-uplift-verdict")
    assert page.locator(".fb-modeling-uplift-result img").count() == 4, (
        "ROC, KS, lift and gain of both models"
    )
    with page.expect_download() as download:
        page.click(".fb-modeling-report-html")
    assert download.value.suggested_filename == f"model-report-{again}.html"
    saved = Path(download.value.path()).read_text()
    assert verdict in html.unescape(saved) and saved.count("data:image/png;base64,") == 4
    pdf = page.get_attribute(".fb-modeling-report-pdf", "href") or ""
    assert pdf.startswith("data:application/pdf;base64,JVBERi"), "a PDF file (%PDF)"
    assert "Traceback" not in page.content()
    _screenshot(page, "modeling-dashboard.png")

    host = _open(context, host_url, "modeling")
    assert "you are host" in host.inner_text(".fb-party")
    assert again in host.inner_text(".fb-modeling-runs")
    host.wait_for_selector(f".fb-modeling-result >> text=Run {again}")
    host_model = (
        fedbench.connect(home=fed / "host")
        .project("demo")
        .run_by_id(second.job_id)
        .output("model", step="train")
    ).value()
    part = host.inner_text(".fb-modeling-model-part")
    assert all(name in part for name in host_model["design"]["features"])
    assert host.inner_text(".fb-modeling-rows .fb-figure-value") == f"{host_model['card']['rows']:,}"
    shown = host.inner_text(".fb-modeling-result") + host.inner_text(".fb-modeling-runs")
    assert f"{second_auc:.3f}" not in shown and "AUC" not in host.inner_text(".fb-modeling-runs"), (
        "the guest's metrics stay with the guest"
    )
    assert host.locator(".fb-modeling-train").is_hidden()
    _screenshot(host, "modeling-dashboard-host.png")


@pytest.fixture(scope="module")
def credit_model(fed: Path) -> str:
    """The job id of a succeeded credit-scoring run of the demo project (the modeling test's, else one run
    here with the same quick settings), so the scoring test reuses a trained model."""
    project = fedbench.connect(home=fed / "guest").project("demo")
    runs = project.runs()
    for job_id, name, state in zip(
        runs.get("job_id", []), runs.get("name", []), runs.get("state", []), strict=True
    ):
        if name == "credit_scoring" and state == "succeeded":
            return str(job_id)
    data = Pipeline.from_yaml(TEMPLATES / "credit_scoring.yaml").to_dict()
    for step in data["steps"]:
        if step["name"] == "train":
            step["params"].update(QUICK_TRAINING)
    return project.run_pipeline(Pipeline.from_dict(data)).wait(show_progress=False).job_id


def test_scoring_dashboard_scores_the_test_rows_and_downloads_the_scores(
    fed: Path, guest_url: str, host_url: str, context, credit_model: str
) -> None:
    short = credit_model[:8]
    page = _open(context, guest_url, "scoring")
    assert "you are guest" in page.inner_text(".fb-party")
    page.select_option(".fb-scoring-project select", "demo")
    models = page.locator(".fb-scoring-model select option").all_inner_texts()
    page.select_option(
        ".fb-scoring-model select", label=next(m for m in models if _plain(m).startswith(f"run {short}"))
    )
    rows = page.locator(".fb-scoring-data select option").all_inner_texts()
    page.select_option(
        ".fb-scoring-data select",
        label=next(r for r in rows if _plain(r).startswith(f"test rows of run {short}")),
    )
    page.locator(".fb-scoring-option-scorecard input[type=checkbox]").check()
    page.fill(".fb-scoring-option-base_score input", "650")
    page.press(".fb-scoring-option-base_score input", "Tab")
    before = page.inner_text(".fb-scoring-run-card .fb-notice")
    page.click(".fb-scoring-run")
    scoring = _notice_after(page, ".fb-scoring-run-card", before).split()[1]
    page.wait_for_selector(".fb-scoring-monitor .fb-step-bar")
    page.wait_for_selector(f".fb-scoring-result >> text=Run {scoring}", timeout=120_000)

    project = fedbench.connect(home=fed / "guest").project("demo")
    run = project.run_by_id(next(j for j in project.runs()["job_id"] if j.startswith(scoring)))
    assert run.status == "succeeded"
    metrics = run.output("metrics").value()
    scores = run.output("scores").to_pandas()
    test = project.run_by_id(credit_model).output("test", step="split").to_pandas()
    assert page.inner_text(".fb-scoring-rows .fb-figure-value") == f"{metrics['rows']:,}"
    assert metrics["rows"] == len(scores) == len(test)
    assert "points" in scores.columns
    _until(lambda: page.locator(".fb-scoring-plot img").count() == 2, "both score plots are drawn")
    assert f"run {short}" in page.inner_text(".fb-scoring-result")

    with page.expect_download() as download:
        page.click(".fb-scoring-download-csv")
    assert download.value.suggested_filename == f"scores-demo-{scoring}.csv"
    saved = pd.read_csv(download.value.path(), dtype={"id": str})
    assert len(saved) == metrics["rows"] and saved["id"].tolist() == scores["id"].tolist()
    assert list(saved.columns) == ["id", "y", "score", "pred", "points"]
    with page.expect_download() as download:
        page.click(".fb-scoring-download-parquet")
    assert len(pd.read_parquet(download.value.path())) == metrics["rows"]
    assert "Traceback" not in page.content()
    _screenshot(page, "scoring-dashboard.png")

    host = _open(context, host_url, "scoring")
    assert "you are host" in host.inner_text(".fb-party")
    host.wait_for_selector(f".fb-scoring-runs >> text={scoring}")
    host_rows = (
        fedbench.connect(home=fed / "host").project("demo").run_by_id(run.job_id).output("metrics").value()
    )
    assert host.inner_text(".fb-scoring-rows .fb-figure-value") == f"{host_rows['rows']:,}"
    assert f"run {short}" in host.inner_text(".fb-scoring-runs"), "which model part each scoring used"
    assert host.locator(".fb-scoring-run").is_hidden()
    _screenshot(host, "scoring-dashboard-host.png")
