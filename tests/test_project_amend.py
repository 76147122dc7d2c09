"""Amending an active project to add a dataset, on a real sandbox: the partner accepts again, as at creation.

The guest proposes adding a newly uploaded table; until the host accepts, the project runs on its old datasets and
a job on the new one is refused; the host sees the amendment waiting in its projects dashboard and accepts it
there; then both nodes hold the new dataset pinned (fingerprint and row count from the guest's own registry) and
a job can read it. A declined amendment changes nothing; every step is in both parties' audit trails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATABASE_URL, Federation

import fedbench
from fedbench import sandbox
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError, Refused
from fedbench.ui.dashboards import projects as projects_dashboard

PROJECT = "amend-me"
ROOT: dict[str, Path] = {}
"""The sandbox of this module (for the raw requests of a partner running modified code)."""


def table(first: int, n: int, features: tuple[str, ...], label: bool = False) -> pd.DataFrame:
    """A small table of customers `first`..`first + n - 1` with random features (and a 0/1 label)."""
    rng = np.random.default_rng(first + n)
    frame = pd.DataFrame({"customer_no": [f"C{i:05d}" for i in range(first, first + n)]})
    for name in features:
        frame[name] = rng.normal(size=n).round(3)
    if label:
        frame["churned"] = rng.integers(0, 2, n)
    return frame


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workbench, Workbench]]:
    root = ROOT["root"] = tmp_path_factory.mktemp("project-amend")
    sandbox.up(root, demo_data=False, database_url=DATABASE_URL)
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    guest.datasets.upload(
        table(0, 150, ("income",), label=True),
        name="customers",
        id_column="customer_no",
        label_column="churned",
    )
    host.datasets.upload(table(0, 150, ("balance",)), name="customers", id_column="customer_no")
    guest.projects.propose(PROJECT, partners=["host"], datasets=["customers"], release="both")
    host.projects.accept(PROJECT, datasets=["customers"])
    yield guest, host
    sandbox.down(root)


def head_on(workbench: Workbench, guest_dataset: str) -> fedbench.client.runs.Run:
    """A cheap job that reads `guest_dataset` on the guest and `customers` on the host."""
    return workbench.project(PROJECT).run("head", data={"guest": guest_dataset, "host": "customers"}, n=5)


def test_an_added_dataset_is_used_only_once_the_partner_accepted_it(fed: tuple[Workbench, Workbench]) -> None:
    guest, host = fed
    newer = table(0, 300, ("income", "savings"), label=True)
    guest.datasets.upload(newer, name="customers_2024", id_column="customer_no", label_column="churned")
    registered = guest.datasets.get("customers_2024").info

    with pytest.raises(Refused, match="not authorised"):
        head_on(guest, "customers_2024")

    project = guest.project(PROJECT).amend(add_datasets=["customers_2024"])
    amendment = project.amendment
    assert amendment is not None and amendment["state"] == "pending" and amendment["waiting_for"] == ["host"]
    assert amendment["datasets"] == [
        {"name": "customers_2024", "fingerprint": registered.fingerprint, "n_rows": 300}
    ], "pinned from the guest's own registry, as at creation"
    assert amendment["max_psi_rows"] == 300, "the guest's PSI cap grows to its largest dataset, for review"
    assert [d["name"] for d in project.info["datasets"]["guest"]] == ["customers"], "old terms until accepted"
    with pytest.raises(FedbenchError, match="waiting for host"):
        guest.project(PROJECT).amend(add_datasets=["customers"])

    with pytest.raises(Refused, match="not authorised"):
        head_on(guest, "customers_2024")
    assert head_on(guest, "customers").wait().status == "succeeded", "the project keeps running meanwhile"

    page = projects_dashboard.app(host)
    assert PROJECT in page.amendments, "the host sees the amendment waiting for its answer"
    card = page.amendments[PROJECT].box.children[0].value
    assert "customers_2024 (300 rows)" in card and "guest asks to add datasets" in card
    assert "Waiting for you to accept" in card
    with pytest.raises(FedbenchError, match="not for you"):
        guest.project(PROJECT).accept_amendment()
    accepted = page.accept_amendment(PROJECT)
    assert accepted.amendment["state"] == "accepted" and PROJECT not in page.amendments
    assert "jobs can use them now" in page.project_message.text

    for workbench in (guest, host):
        info = workbench.project(PROJECT).info
        assert {"name": "customers_2024", "fingerprint": registered.fingerprint, "n_rows": 300} in info[
            "datasets"
        ]["guest"]
        assert info["terms"]["max_psi_rows"]["guest"] == 300
        assert info["amendment"]["state"] == "accepted" and info["amendment"]["waiting_for"] == []
    assert head_on(guest, "customers_2024").wait().status == "succeeded", "a job can use the added dataset"

    guest_actions = list(guest.project(PROJECT).audit()["action"])
    host_actions = list(host.project(PROJECT).audit()["action"])
    assert "project.amend" in guest_actions and "project.amend_accepted" in guest_actions
    assert "project.amend_received" in host_actions and "project.amend_accept" in host_actions


def test_a_declined_amendment_changes_nothing(fed: tuple[Workbench, Workbench]) -> None:
    guest, host = fed
    host.datasets.upload(table(0, 120, ("products",)), name="accounts", id_column="customer_no")
    host_page = projects_dashboard.app(host)
    host_page.select(PROJECT)
    assert (
        "accounts" in host_page.amend_datasets.choices and "customers" not in host_page.amend_datasets.choices
    )
    host_page.amend(PROJECT, ["accounts"])
    assert "Waiting for guest to accept" in host_page.amendment.value
    assert host_page.withdraw_button.layout.display is None and host_page.amend_box.layout.display == "none"
    page = projects_dashboard.app(guest)
    assert "fb-amendment-pending" in page.amendments[PROJECT].box._dom_classes
    declined = page.reject_amendment(PROJECT, "not needed")
    assert declined.amendment["state"] == "rejected" and declined.amendment["reason"] == "not needed"
    for workbench in (guest, host):
        info = workbench.project(PROJECT).info
        assert [d["name"] for d in info["datasets"]["host"]] == ["customers"]
        assert info["amendment"]["state"] == "rejected"
    host_actions = list(host.project(PROJECT).audit()["action"])
    assert "project.amend_rejected" in host_actions
    assert "project.amend_reject" in list(guest.project(PROJECT).audit()["action"])
    with pytest.raises(FedbenchError, match="no amendment waiting"):
        guest.project(PROJECT).accept_amendment()
    with pytest.raises(Refused, match="not authorised"):
        host.project(PROJECT).run("head", data={"guest": "customers", "host": "accounts"}, n=5)


def test_the_proposer_may_withdraw_its_amendment(fed: tuple[Workbench, Workbench]) -> None:
    guest, host = fed
    host.project(PROJECT).amend(add_datasets=["accounts"])
    assert guest.project(PROJECT).amendment["state"] == "pending"
    withdrawn = host.project(PROJECT).reject_amendment("changed my mind")
    assert withdrawn.amendment["state"] == "withdrawn"
    seen = guest.project(PROJECT).amendment
    assert seen["state"] == "withdrawn" and seen["reason"] == "changed my mind"
    assert "project.amend_withdrawn" in list(guest.project(PROJECT).audit()["action"])


def test_a_partner_cannot_force_or_inflate_an_amendment(fed: tuple[Workbench, Workbench]) -> None:
    """Raw requests of a host running modified code: refused by the guest's node, audited there."""
    guest, host = fed
    federation = Federation(ROOT["root"])
    info = guest.project(PROJECT).info
    token = (federation.home("host").secrets_dir / f"project-{info['id']}.token").read_text()
    client = federation.peer_client("host", "guest")

    def send(action: str, body: dict) -> None:
        client.request(action, body, project=info["id"], token=token)

    pinned = {"name": "big", "fingerprint": "f" * 64, "n_rows": 5000}
    with pytest.raises(Refused, match="PSI cap"):
        send("project.amend", {"id": "a" * 32, "datasets": [pinned], "max_psi_rows": 10})
    with pytest.raises(Refused, match="not pinned"):
        send(
            "project.amend",
            {"id": "b" * 32, "datasets": [{**pinned, "name": "customers"}], "max_psi_rows": 5000},
        )
    host.project(PROJECT).amend(add_datasets=["accounts"])
    pending = guest.project(PROJECT).amendment
    with pytest.raises(Refused, match="guest has not accepted it"):
        send("project.amend_state", {"id": pending["id"], "state": "accepted"})
    with pytest.raises(Refused, match="no pending amendment"):
        send("project.amend_accept", {"id": pending["id"]})
    assert [d["name"] for d in guest.project(PROJECT).info["datasets"]["host"]] == ["customers"]
    refused = guest.project(PROJECT).audit()
    refused = refused[~refused["allowed"]]
    assert {"project.amend", "project.amend_state", "project.amend_accept"} <= set(refused["action"])
    host.project(PROJECT).reject_amendment("test over")
