"""The shipped notebooks run top to bottom against a fresh sandbox (executed by a real Jupyter kernel)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fedbench import sandbox

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


@pytest.mark.parametrize("name", ["rerun_one_stage.ipynb"])
def test_notebook_runs_and_reuses_upstream_steps(name, tmp_path, monkeypatch):
    home = tmp_path / "sandbox"
    monkeypatch.setenv("FEDBENCH_SANDBOX_HOME", str(home))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    try:
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        sandbox.down(home)
    outputs = "\n".join(
        str(out.get("data", {}).get("text/plain", "")) + str(out.get("text", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert "reused" in outputs
    assert "'total': 3000" in outputs or "'total': 4000" in outputs
