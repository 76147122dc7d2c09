"""Binder, imitated on this machine: a fresh environment, `binder/postBuild`, then `binder/start` running
JupyterLab; the sandbox comes up behind it, the extension reports it, every dashboard renders under
`/voila/render/...`, and the quickstart notebook runs on it and shows what it is for (its checks of
tests/notebook_checks.py; tests/test_notebooks.py leaves it to this run).

The fresh environment is a venv with `--system-site-packages` (the Jupyter stack and fedbench's
dependencies come from this machine instead of being downloaded again); postBuild installs fedbench into it.
Jupyter's data files and JupyterLab's build live in the base environment here, where Binder has them in its
one environment, so the server is pointed at them with JUPYTER_PATH and JUPYTERLAB_DIR.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from notebook_checks import CHECKS, with_test_parameters

import fedbench
from fedbench import sandbox
from fedbench.net.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "binder-test-token"
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
DASHBOARDS = sorted((ROOT / "notebooks" / "dashboards").glob("*.ipynb"))

_EXECUTE = """
import sys
import nbformat
from nbclient import NotebookClient

notebook = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(notebook, sys.argv[2])
"""


_LIST_LABEXTENSIONS = """
import sys
from jupyterlab.labextensions import LabExtensionApp

sys.argv = ["jupyter-labextension", "list"]
LabExtensionApp.launch_instance()
"""
"""`jupyter labextension list` run by the venv's own Python (the `jupyter` command would run the base one's)."""


def _get(url: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> None:
    done = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_binder_sequence_serves_lab_with_the_sandbox_and_runs_the_notebook(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # no pip of its own (ensurepip costs seconds): with the system site packages, `python -m pip` is this
    # machine's pip, and it installs into the venv it runs in
    _run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], dict(os.environ)
    )
    base = Path(sys.base_prefix)
    home = tmp_path / "sandbox"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FEDBENCH_", "JUPYTER", "VIRTUAL_ENV"))},
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "HOME": str(tmp_path / "user"),
        "FEDBENCH_SANDBOX_HOME": str(home),
        "JUPYTER_PATH": str(base / "share" / "jupyter"),
        "JUPYTERLAB_DIR": str(base / "share" / "jupyter" / "lab"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # the suite's sandbox settings (tests/conftest.py): no idle warm workers, a smaller demo credit table
        **{k: os.environ[k] for k in (sandbox.WARM_WORKERS_ENV, sandbox.DEMO_ROWS_ENV) if k in os.environ},
    }
    (tmp_path / "user").mkdir()

    _run(["bash", str(ROOT / "binder" / "postBuild")], env)
    enabled = venv / "etc" / "jupyter" / "jupyter_server_config.d"
    assert (enabled / "fedbench.json").exists(), "the package's shared data enables the extension on install"
    assert json.loads((enabled / "fedbench.jupyter.json").read_text())["ServerApp"][
        "jpserver_extensions"
    ] == {"fedbench.jupyter": True}
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _LIST_LABEXTENSIONS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.search(r"fedbench-sidebar v\S+ \S*enabled\S* \S*OK", listed.stdout + listed.stderr), (
        "pip installed the prebuilt sidebar, enabled: " + listed.stdout + listed.stderr
    )

    port = free_port()
    lab_command = [
        str(venv / "bin" / "python"), "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
        "--ServerApp.port_retries=0", f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={ROOT}",
    ]  # fmt: skip
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        lab = subprocess.Popen(
            ["bash", str(ROOT / "binder" / "start"), *lab_command], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        status = _wait_for_sandbox(f"http://127.0.0.1:{port}", lab, log)
        assert status["mode"] == "sandbox" and status["home"] == str(home.resolve())
        assert status["party"] == "guest" and [p["party"] for p in status["peers"]] == ["host"]
        code, page = _get(f"http://127.0.0.1:{port}/lab")
        assert code == 200 and b"JupyterLab" in page
        assert b"fedbench-sidebar" in page, (
            "JupyterLab loads the sidebar (its page lists the prebuilt extension)"
        )
        assert (home / "up.log").exists(), "`start` ran `fedbench sandbox up` in the background"
        for dashboard in DASHBOARDS:
            code, page = _get(f"http://127.0.0.1:{port}/voila/render/notebooks/dashboards/{dashboard.name}")
            assert code == 200, (dashboard.name, page[-2000:])
            assert b"voila" in page and b"Traceback" not in page, dashboard.name
        code, page = _get(f"http://127.0.0.1:{port}/voila/render/notebooks/dashboards/psi.ipynb", None)
        assert code == 403 or b'id="login_submit"' in page, (
            "Voila under JupyterLab asks for the server's token"
        )

        given, executed = tmp_path / NOTEBOOK.name, tmp_path / "executed.ipynb"
        nbformat.write(with_test_parameters(nbformat.read(NOTEBOOK, as_version=4)), given)
        _run(
            [str(venv / "bin" / "python"), "-c", _EXECUTE, str(given), str(executed), str(tmp_path)],
            env,
            600,
        )
        notebook = nbformat.read(executed, as_version=4)
        outputs = "\n".join(
            str(out.get("data", {}).get("text/plain", "")) + str(out.get("text", ""))
            for cell in notebook.cells
            if cell.cell_type == "code"
            for out in cell.get("outputs", [])
        )
        assert "reused" in outputs and "'validation': {'auc'" in outputs
        CHECKS[NOTEBOOK.name](notebook)
        guest = fedbench.connect(home=home)
        assert len(guest.project("demo").runs()) >= 2, (
            "the notebook ran on the sandbox that `start` brought up"
        )
        guest.close()
    finally:
        lab.send_signal(signal.SIGTERM)
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lab.kill()
        sandbox.down(home)


def _wait_for_sandbox(url: str, lab: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> dict:
    give_up = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < give_up:
        assert lab.poll() is None, f"JupyterLab exited:\n{log.read_text()[-4000:]}"
        try:
            code, body = _get(f"{url}/fedbench/status")
        except OSError as exc:
            code, body, last = 0, b"", exc
        if code == 200:
            last = json.loads(body)
            if last["node"]["ok"] and last["peers"] and all(p["reachable"] for p in last["peers"]):
                return dict(last)
        time.sleep(0.5)
    raise AssertionError(
        f"the sandbox was not up in {timeout} s; last status {last}; log:\n{log.read_text()[-4000:]}"
    )
