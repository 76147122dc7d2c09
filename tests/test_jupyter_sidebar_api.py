"""The sidebar's REST API (`fedbench/jupyter/handlers.py`) in a real `jupyter server` acting as the host of a
real sandbox: it refuses unauthenticated requests and cookie-authenticated changes without the XSRF token, and
answers what the nodes hold (a proposal with its terms in words, accepted from here; runs with their steps;
a cancel that reaches the partner). A viewer's role may not answer proposals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import small_two_party_project, up_with_test_components

import fedbench
from fedbench import sandbox
from fedbench.errors import Refused
from fedbench.jupyter import panel
from fedbench.net.ports import free_port

TOKEN = "sidebar-api-token"
ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "extensions" / "jupyter-config" / "jupyter_server_config.d" / "fedbench.json"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """guest and host (with the test-only `slow` step), an active project and a proposal the host has not answered."""
    root = tmp_path_factory.mktemp("sidebar-api")
    up_with_test_components(root)
    small_two_party_project(root, "api-active")
    fedbench.connect(home=root / "guest").projects.propose(
        "api-pending", partners="host", datasets=["t"], purpose="churn model", release="count_only"
    )
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def server(fed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`jupyter server` with the shipped extension config, on the host's node home; yields its URL."""
    tmp = tmp_path_factory.mktemp("sidebar-api-server")
    config = tmp / "config" / "jupyter_server_config.d"
    config.mkdir(parents=True)
    (config / "fedbench.json").write_text(SHIPPED_CONFIG.read_text())
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FEDBENCH_SANDBOX")},
        "FEDBENCH_HOME": str(fed / "host"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
    }
    log = tmp / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
                "--ServerApp.port_retries=0", f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={tmp}",
            ],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < give_up, log.read_text()
            try:
                if requests.get(f"{url}/fedbench/status", headers=_auth(), timeout=10).json()["node"]["ok"]:
                    break
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _auth() -> dict[str, str]:
    return {"Authorization": f"token {TOKEN}"}


def _cookie_session(url: str) -> requests.Session:
    """A browser-like session: logged in by cookie (the token given once in a URL), holding the `_xsrf` cookie."""
    session = requests.Session()
    assert session.get(f"{url}/login", params={"token": TOKEN}, timeout=30).status_code == 200
    session.get(f"{url}/api/status", timeout=30)
    assert "_xsrf" in session.cookies, session.cookies
    return session


def _project(url: str, name: str) -> dict:
    answer = requests.get(f"{url}/fedbench/projects", headers=_auth(), timeout=30)
    assert answer.status_code == 200, answer.text
    return next(p for p in answer.json()["projects"] if p["name"] == name)


def test_refuses_requests_without_authentication_or_xsrf(server: str, fed: Path) -> None:
    for path in ("status", "projects", "projects/api-active/runs"):
        assert requests.get(f"{server}/fedbench/{path}", timeout=30).status_code == 403, path
        wrong = {"Authorization": "token wrong"}
        assert requests.get(f"{server}/fedbench/{path}", headers=wrong, timeout=30).status_code == 403, path
    accept = f"{server}/fedbench/projects/api-pending/accept"
    assert requests.post(accept, json={"datasets": ["t"]}, timeout=30).status_code == 403
    assert requests.post(f"{server}/fedbench/runs/x/cancel", timeout=30).status_code == 403

    session = _cookie_session(server)
    assert session.get(f"{server}/fedbench/projects", timeout=30).status_code == 200, "the cookie logs in"
    refused = session.post(accept, json={"datasets": ["t"]}, timeout=30)
    assert refused.status_code == 403 and "xsrf" in refused.text.lower(), refused.text
    assert fedbench.connect(home=fed / "host").project("api-pending").state == "pending"


def test_a_proposal_shows_its_terms_and_the_host_accepts_it(server: str, fed: Path) -> None:
    answer = requests.get(f"{server}/fedbench/projects", headers=_auth(), timeout=30)
    body = answer.json()
    assert body["party"] == "host" and body["user"] == {"name": "admin", "role": "admin", "can_answer": True}
    assert [d["name"] for d in body["datasets"]] == ["t"]
    pending = next(p for p in body["projects"] if p["name"] == "api-pending")
    assert (pending["state"], pending["partners"], pending["can_answer"]) == ("pending", ["guest"], True)
    assert pending["purpose"] == "churn model" and pending["uses"] == ["psi", "train", "score"]
    assert "Matched IDs go to: Nobody: only the number of matches" in pending["terms"]
    assert any("partner runs fedbench unmodified" in c for c in pending["caveats"]), pending["caveats"]
    assert "token" not in answer.text.lower()

    again = requests.get(
        f"{server}/fedbench/projects",
        headers={**_auth(), "If-None-Match": answer.headers["Etag"]},
        timeout=30,
    )
    assert again.status_code == 304 and not again.content, "an unchanged answer is a bodiless 304"

    session = _cookie_session(server)
    headers = {"X-XSRFToken": session.cookies["_xsrf"]}
    missing = session.post(
        f"{server}/fedbench/projects/api-pending/accept", json={}, headers=headers, timeout=30
    )
    assert missing.status_code == 400 and "datasets" in missing.json()["message"]
    unknown = session.post(
        f"{server}/fedbench/projects/api-pending/accept",
        json={"datasets": ["nope"]},
        headers=headers,
        timeout=30,
    )
    assert unknown.status_code in (400, 404) and "nope" in unknown.json()["message"], unknown.text
    accepted = session.post(
        f"{server}/fedbench/projects/api-pending/accept",
        json={"datasets": ["t"]},
        headers=headers,
        timeout=30,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "active"
    assert fedbench.connect(home=fed / "guest").project("api-pending").state == "active", "the guest sees it"
    assert _project(server, "api-pending")["state"] == "active", "a change drops the kept answer"


def test_runs_show_their_steps_and_a_cancel_reaches_the_partner(server: str, fed: Path) -> None:
    project = fedbench.connect(home=fed / "guest").project("api-active")
    done = project.run("row_count", data="t").wait(show_progress=False)
    quick = project.run("slow", data="t", seconds=0).wait(show_progress=False)
    slow = project.run("slow", data="t", seconds=600)
    give_up = time.monotonic() + 60
    while True:
        runs = requests.get(f"{server}/fedbench/projects/api-active/runs", headers=_auth(), timeout=30).json()
        by_id = {r["job_id"]: r for r in runs["runs"]}
        if slow.job_id in by_id and by_id[slow.job_id]["state"] == "running":
            break
        assert time.monotonic() < give_up, runs
        time.sleep(0.5)
    finished = by_id[done.job_id]
    assert (finished["state"], finished["initiator"]) == ("succeeded", "guest")
    assert finished["outputs"] == [], "row_count's metrics are the guest's: the host holds no output to offer"
    assert by_id[quick.job_id]["outputs"] == [{"name": "metrics", "step": None}], "slow's host keeps its own"
    assert [(s["step"], s["state"], s["progress"]) for s in finished["steps"]] == [
        ("row_count", "succeeded", 1.0)
    ]
    assert finished["duration"].endswith(" s") and finished["reused"] == []
    assert by_id[slow.job_id]["outputs"] == [], "a run's outputs are offered once it succeeded"
    assert by_id[slow.job_id]["steps"][0]["state"] == "running"

    cancelled = requests.post(f"{server}/fedbench/runs/{slow.job_id}/cancel", headers=_auth(), timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    give_up = time.monotonic() + 60
    while slow.refresh().record.state != "cancelled":
        assert time.monotonic() < give_up, slow.record
        time.sleep(0.3)
    assert (
        requests.post(f"{server}/fedbench/runs/nope/cancel", headers=_auth(), timeout=30).status_code == 404
    )
    assert (
        requests.get(f"{server}/fedbench/projects/nope/runs", headers=_auth(), timeout=30).status_code == 404
    )


def test_a_viewer_may_read_but_not_answer(fed: Path) -> None:
    host = fedbench.connect(home=fed / "host")
    token = host.add_user("sidebar-viewer", "viewer")
    viewer = fedbench.connect(home=fed / "host", token=token)
    assert panel.user(viewer) == {"name": "sidebar-viewer", "role": "viewer", "can_answer": False}
    with pytest.raises(Refused, match="role 'viewer'.*analyst"):
        panel.reject(viewer, "api-active")
    assert host.project("api-active").state == "active"
