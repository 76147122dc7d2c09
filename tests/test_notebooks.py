"""The shipped notebooks run top to bottom against a fresh sandbox (executed by a real Jupyter kernel).

Each notebook's outputs are then checked, cell by cell (by cell id), for what it is there to show
(tests/notebook_checks.py), so a broken feature fails here even when every cell still runs. The suite runs them
with its smaller sizes (`notebook_checks.TEST_PARAMETERS`, in place of their `parameters` cell's values) on its
smaller demo data (tests/conftest.py); the checks derive the figures they expect from the demo's size.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from notebook_checks import CHECKS, parameters_cell, with_test_parameters

from fedbench import sandbox

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"

RUN_BY_BINDER = frozenset({"quickstart.ipynb"})
"""Notebooks tests/test_binder.py runs and checks with their CHECKS (in the Binder setup, on the sandbox its
`start` brought up): a second run here would prove nothing more."""

ENCRYPTING = re.compile(r"\"(hetero_lr|binning|statistics)\"|secureboost|credit_scoring")
"""Code that runs a step encrypting under Paillier (the templates named train hetero_lr or SecureBoost)."""


@pytest.mark.parametrize("name", sorted(set(CHECKS) - RUN_BY_BINDER))
def test_notebook_runs_against_a_fresh_sandbox_and_shows_what_it_is_for(name, tmp_path, monkeypatch):
    home = tmp_path / "sandbox"
    monkeypatch.setenv("FEDBENCH_SANDBOX_HOME", str(home))
    notebook = with_test_parameters(nbformat.read(NOTEBOOKS / name, as_version=4))
    # The kernel listens on Unix sockets: TCP ports are picked free, then bound by the kernel a moment later,
    # and under the suite's load another process can take one in between (the kernel then dies at start).
    try:
        NotebookClient(
            notebook,
            km=KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel")),
            timeout=300,
            resources={"metadata": {"path": str(tmp_path)}},
        ).execute()
    finally:
        sandbox.down(home)
        sandbox.down(home.with_name("horizontal-sandbox"))  # horizontal.ipynb's own (nothing if none)
    CHECKS[name](notebook)


@pytest.mark.parametrize("name", list(CHECKS))
def test_notebook_is_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{name}: {cell.get('id')}"
            )


@pytest.mark.parametrize("name", list(CHECKS))
def test_an_encrypting_notebook_takes_its_key_size_as_a_parameter_of_a_users_default(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    if ENCRYPTING.search(code) is None:
        assert parameters_cell(notebook) is None or "key_bits" not in parameters_cell(notebook).source
        return
    cell = parameters_cell(notebook)
    assert cell is not None and re.search(r"^key_bits = 2048$", cell.source, re.MULTILINE), (
        f"{name}: its parameters cell sets key_bits = 2048 (a user's default; the suite runs it with 1024)"
    )
    assert code.count("key_bits") > 1, f"{name}: the encrypted steps take key_bits"


def test_every_analyst_notebook_is_checked():
    assert set(CHECKS) == {p.name for p in NOTEBOOKS.glob("*.ipynb")}
