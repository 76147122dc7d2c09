"""The PSI dashboard's app in-process (no browser), against a real sandbox: each party's view of a PSI.

`tests/test_dashboards_browser.py` drives the same app through Voila and chromium; here its methods are
called as its buttons call them, and what it shows is compared with what the client API says of the run.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import DATABASE_URL, steps_held

import fedbench
from fedbench import sandbox
from fedbench.ui.dashboards import psi
from fedbench.ui.errors import FormError


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("psi-dashboard")
    sandbox.up(root, demo_data=True, database_url=DATABASE_URL)
    yield root
    sandbox.down(root)


def test_psi_app_runs_a_psi_shows_it_to_both_parties_and_offers_our_matched_rows(fed: Path) -> None:
    guest = psi.app(fedbench.connect(home=fed / "guest"))
    assert guest.project.options == ("demo",) and guest.project.value == "demo"
    assert set(guest.dataset.options) == {"credit", "breast_cancer"}
    assert "No PSI has run in this project yet" in guest.runs.value and guest.outcome is None
    with pytest.raises(FormError):
        guest.choose_dataset("customers")
    assert "'customers' is not one of your datasets authorised in this project" in guest.message.text
    guest.choose_dataset("credit")
    assert guest.partner_dataset.value == "credit", "the partner's dataset of the same name is proposed"

    run = guest.run(wait=True)
    metrics = run.output("metrics").value()
    matched = run.output("data").to_pandas()
    outcome = guest.outcome
    assert outcome is not None and outcome.job_id == run.job_id == guest.shown
    assert outcome.intersection == metrics["intersection_size"] == len(matched) > 0
    assert (outcome.our_rows, outcome.partner_rows) == (metrics["size_self"], metrics["size_peer"])
    assert outcome.rate_ours == pytest.approx(metrics["match_rate_self"])
    assert outcome.we_received and outcome.partner_received
    assert (
        f"{len(matched):,}" in guest.result.value
        and f"{metrics['match_rate_self']:.1%}" in guest.result.value
    )
    assert "You and host each received your own matched rows" in guest.result.value
    assert run.job_id[:8] in guest.runs.value and guest.pick_run.value == run.job_id
    assert guest.monitor is not None and guest.monitor.state == "succeeded"
    assert guest.monitor.results.value == "", "the result card, not the monitor, shows a succeeded PSI"

    link = guest.download.value
    assert f'download="psi-demo-guest-{run.job_id[:8]}.csv"' in link and 'href="data:text/csv;base64,' in link
    saved = pd.read_csv(io.BytesIO(guest.prepare_download()), dtype={"id": str})
    assert saved["id"].tolist() == matched["id"].tolist() and list(saved.columns) == list(matched.columns)

    host = psi.app(fedbench.connect(home=fed / "host"))
    assert host.shown == run.job_id, "the partner sees the run it took part in"
    assert host.outcome is not None and host.outcome.we_received
    assert host.outcome.intersection == outcome.intersection
    assert "started by guest" in host.result.value
    assert host.download.value == "" and host.prepare_button.layout.display is None, (
        "no file in the first page"
    )
    host.page_opened()
    assert host.opened and "fb-psi-download" in host.download.value, "the file follows once the page is open"
    assert host.cannot_run() is None and not host.run_button.disabled


def test_psi_app_shows_the_newest_psi_that_ran_and_leaves_out_runs_that_reused_one(fed: Path) -> None:
    guest = psi.app(fedbench.connect(home=fed / "guest"))
    guest.choose_dataset("credit")
    guest.settings.set(strip=False)
    ran = guest.run(wait=True)
    reused = guest.run(wait=True)
    steps = {s["step"]: s["state"] for s in reused.steps().to_dict("records")}
    assert steps == {"psi": "reused"}, "same data and settings: the PSI step is reused"

    host = psi.app(fedbench.connect(home=fed / "host"))
    listed = [job for _, job in host.pick_run.options]
    assert reused.job_id not in listed, "a run that reused a PSI is not a PSI"
    assert host.shown == listed[0] == ran.job_id

    guest.settings.set(strip=False, lower=True)
    newer = guest.run(wait=True)
    host.refresh()
    assert [job for _, job in host.pick_run.options][:2] == [newer.job_id, ran.job_id]
    assert host.shown == newer.job_id and newer.job_id[:8] in host.result.value, (
        "the card follows the list: the newest PSI"
    )
    host.pick_run.value = ran.job_id
    host.refresh()
    assert host.shown == ran.job_id, "a run the user picked stays shown on refresh"


def test_a_psi_page_opened_while_a_psi_runs_follows_it(fed: Path) -> None:
    """Pages opened while the PSI runs. The host's step is held back meanwhile, so the PSI (short on these
    rows) cannot end before both pages are read, however slow the machine."""
    guest = psi.app(fedbench.connect(home=fed / "guest"))
    guest.choose_dataset("credit")
    guest.settings.set(strip=False, lower=True, duplicates="first")
    with steps_held(fed, "host"):
        run = guest.run()
        reloaded = psi.app(fedbench.connect(home=fed / "guest"))
        partner = psi.app(fedbench.connect(home=fed / "host"))
        for page in (reloaded, partner):
            assert page.monitor is not None and page.monitor.run.job_id == run.job_id, (
                "the PSI in progress shows"
            )
            assert page.run_button.disabled and run.job_id[:8] in page.message.text

    def ended() -> bool:
        outcome = reloaded.outcome
        return outcome is not None and outcome.job_id == run.job_id and bool(outcome.intersection)

    _until(ended, "the reloaded page shows the PSI's result when it ends", 120.0)
    assert reloaded.monitor.state == "succeeded" and reloaded.shown == run.job_id


def _until(check, what: str, timeout: float = 20.0) -> None:
    give_up = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < give_up, f"timed out waiting until {what}"
        time.sleep(0.2)


def test_psi_app_says_in_words_what_was_released_and_why_a_run_failed(fed: Path) -> None:
    guest_wb = fedbench.connect(home=fed / "guest")
    guest_wb.projects.propose(
        "counts",
        partners=["host"],
        datasets=["credit"],
        release="count_only",
        min_intersection=10,
        psi_runs=5,
    )
    fedbench.connect(home=fed / "host").projects.accept("counts", datasets=["credit"])
    _until(lambda: guest_wb.project("counts").state == "active", "the guest's node shows the project active")

    guest = psi.app(guest_wb)
    guest.choose_project("counts")
    assert "Nobody: only the number of matches" in guest.terms.value
    guest.run(wait=True)
    assert guest.outcome is not None and guest.outcome.intersection and guest.outcome.intersection > 0
    assert not guest.outcome.we_received and not guest.outcome.partner_received
    assert "Only the number of matches was shared: nobody received rows." in guest.result.value
    assert guest.download.value == ""
    with pytest.raises(FormError):
        guest.intersection()

    guest.settings.set(release="both")
    failed = guest.run(wait=True)
    assert guest.outcome is not None and (guest.outcome.job_id, guest.outcome.state) == (
        failed.job_id,
        "failed",
    )
    assert "This PSI failed" in guest.result.value and "more than the project allows" in guest.result.value
    assert guest.monitor is not None and "more than the project allows" in guest.monitor.results.value
    assert "Traceback" not in guest.result.value + guest.monitor.results.value

    guest.choose_project("demo")
    guest.settings.set(release="project", normalise="phone")
    guest.run(wait=True)
    credit_rows = guest_wb.datasets.get("credit").info.n_rows
    assert (
        guest.outcome is not None
        and guest.outcome.our_unusable == credit_rows
        and guest.outcome.intersection == 0
    )
    assert f"{credit_rows:,} of your rows were left out" in guest.result.value
    assert "No rows were released to anyone: the project releases matched rows only from 10 matches on" in (
        guest.result.value
    )


def test_psi_app_lets_a_viewer_look_but_not_run(fed: Path) -> None:
    admin = fedbench.connect(home=fed / "guest")
    token = admin.add_user("psi-viewer", "viewer")
    admin.project("demo").add_member("psi-viewer")
    viewer = psi.app(fedbench.connect(home=fed / "guest", token=token))
    assert viewer.project.value == "demo" and viewer.outcome is not None, "earlier runs and results show"
    assert viewer.run_button.disabled and "needs the analyst role" in viewer.permission.value
    with pytest.raises(FormError):
        viewer.run()
    assert "needs the analyst role" in viewer.message.text


def test_psi_app_says_in_words_when_the_node_cannot_be_reached(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FEDBENCH_HOME", str(tmp_path / "nowhere"))
    page = psi.app()
    assert "fb-app-unavailable" in page._dom_classes and "cannot reach your organisation's node" in page.value
    assert "Traceback" not in page.value
