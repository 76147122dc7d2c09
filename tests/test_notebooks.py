"""The shipped notebooks run top to bottom against a fresh sandbox (executed by a real Jupyter kernel).

Each notebook's outputs are then checked, cell by cell (by cell id), for what it is there to show, so a broken
feature fails here even when every cell still runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode

from fedbench import sandbox

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def _text(notebook: NotebookNode, cell_id: str | None = None) -> str:
    """The plain-text outputs of one cell (by id), or of every code cell."""
    cells = [c for c in notebook.cells if c.cell_type == "code" and cell_id in (None, c.get("id"))]
    assert cells, f"no code cell {cell_id!r}"
    return "\n".join(
        str(out.get("data", {}).get("text/plain", "")) + str(out.get("text", ""))
        for cell in cells
        for out in cell.get("outputs", [])
    )


def _mimetypes(notebook: NotebookNode, cell_id: str) -> set[str]:
    (cell,) = [c for c in notebook.cells if c.get("id") == cell_id]
    return {mime for out in cell.get("outputs", []) for mime in out.get("data", {})}


def _has(text: str, pattern: str) -> bool:
    """Whether `pattern` (a regular expression; runs of spaces in it match any spacing) occurs in `text`."""
    return re.search(re.sub(r" +", r"\\s+", pattern), text) is not None


def _check_rerun_one_stage(notebook: NotebookNode) -> None:
    outputs = _text(notebook)
    assert "reused" in outputs
    assert "'total': 3000" in outputs or "'total': 4000" in outputs


def _check_psi(notebook: NotebookNode) -> None:
    assert "'release': 'both'" in _text(notebook, "terms")
    run = _text(notebook, "run")
    assert _has(run, "intersection size 24000") and _has(run, "rows we received 24000")
    assert "'role': 'partner'" in _text(notebook, "host-view") and "'rows_received': 24000" in _text(
        notebook, "host-view"
    ), "under the 'both' policy the host receives its matched rows too"
    assert "24000 rows saved to" in _text(notebook, "download")
    assert "same IDs in the same order: True" in _text(notebook, "download")
    normalised = _text(notebook, "normalisers")
    assert "alice.martin@example.com" in normalised and "+442079460958" in normalised
    assert "text: 2 matched" in _text(notebook, "compare") and "email: 5 matched" in _text(
        notebook, "compare"
    )
    host_contacts = _text(notebook, "host-contacts")
    assert "'intersection_size': 5" in host_contacts and "'rows_received': None" in host_contacts
    count_only = _text(notebook, "count-only")
    assert "'intersection_size': 24000" in count_only and "'rows_received': None" in count_only


def _check_feature_engineering(notebook: NotebookNode) -> None:
    assert "6000 aligned rows" in _text(notebook, "stats-own")
    assert "correlation matrix: 15 guest features x 14 host features" in _text(notebook, "correlation")
    assert _has(_text(notebook, "correlation"), r"pearson\n\d+ credit_limit income"), (
        "the strongest pair comes first"
    )
    assert "a correlation: False" in _text(notebook, "host-stats"), "the host never gets the correlation"
    prep_bin = _text(notebook, "prep-bin-run")
    assert prep_bin.count("reused") == 3 and prep_bin.count("succeeded") == 2
    assert "image/png" in _mimetypes(notebook, "iv"), "the IV chart is drawn"
    assert "income" in _text(notebook, "iv-table")
    assert "'bins'" in _text(notebook, "host-bins") and "'iv'" not in _text(notebook, "host-bins")
    kept = re.search(r"iv_min=0.02 keeps (\d+) guest and (\d+) host features", _text(notebook, "select-run"))
    assert kept is not None and int(kept[1]) > 0 and int(kept[2]) > 0
    rerun = _text(notebook, "rerun")
    only_select = "{'succeeded': ['select'], 'reused': ['psi', 'sample', 'stats', 'prep', 'binning']}"
    assert f"guest: {only_select}" in rerun and f"host:  {only_select}" in rerun
    # The PSI's row order is fresh each run, so the sampled rows (and IVs near a threshold) vary a little.
    counts = {
        party: tuple(map(int, found.groups()))
        for party in ("guest", "host")
        if (found := re.search(rf"{party}\s+(\d+)\s+(\d+)", _text(notebook, "compare")))
    }
    assert counts["guest"][0] == int(kept[1]) and counts["host"][0] == int(kept[2])
    assert all(strict <= loose for loose, strict in counts.values()), "a stricter iv_min keeps no more"
    assert sum(strict for _, strict in counts.values()) < sum(loose for loose, _ in counts.values())


def _check_quickstart(notebook: NotebookNode) -> None:
    assert _text(notebook, "run").count("succeeded") == 5
    evaluated = _text(notebook, "evaluate")
    auc = re.search(r"'validation': \{'auc': ([0-9.]+)", evaluated)
    assert auc is not None and float(auc[1]) > 0.95, evaluated
    assert "image/png" in _mimetypes(notebook, "roc") and "image/png" in _mimetypes(notebook, "loss")
    assert "points" in _text(notebook, "scores")
    rerun = _text(notebook, "rerun")
    assert rerun.count("reused") == 2 and rerun.count("succeeded") == 3


def _check_modeling(notebook: NotebookNode) -> None:
    assert "'protocol': 'sshe'" in _text(notebook, "model")
    assert "'data_fingerprint'" in _text(notebook, "card") and "'created_by': 'guest'" in _text(
        notebook, "card"
    )
    assert "(20, False)" in _text(notebook, "host-part"), "the host's part has its 20 features and no label"
    assert _text(notebook, "rerun").count("reused") == 2
    assert "import-" in _text(notebook, "import") and "score" in _text(notebook, "score")
    assert "['guest.json', 'host.json', 'scores.csv']" in _text(notebook, "download")


def _check_secureboost(notebook: NotebookNode) -> None:
    assert "psi → split → train → evaluate → score" in _text(notebook, "template")
    assert "'hetero_secureboost'" in _text(notebook, "build") and "'label': 'y'" in _text(notebook, "build")
    assert _text(notebook, "run").count("succeeded") == 5
    metrics = _text(notebook, "metrics")
    auc = re.search(r"'validation': \{'auc': ([0-9.]+)", metrics)
    assert "10 trees" in metrics and auc is not None and float(auc[1]) > 0.9, metrics
    for cell in ("loss", "importance", "tree", "compare-chart"):
        assert "image/png" in _mimetypes(notebook, cell), f"the {cell} chart is drawn"
    used = re.search(
        r"(\d+) of 30 features used, (\d+) of them the host's", _text(notebook, "importance-table")
    )
    assert used is not None and 0 < int(used[2]) < int(used[1]), "the trees use features of both parties"
    host = _text(notebook, "host-part")
    assert (
        "20 host features" in host and "leaf values or trees in the host's part: False | label: False" in host
    )
    scored = re.search(r"(\d+) test rows scored, columns \[(.*)\]", _text(notebook, "score"))
    assert scored is not None and int(scored[1]) > 50, "the trees scored the test rows"
    assert "'score'" in scored[2] and "'pred'" in scored[2] and "points" not in scored[2]
    regression = _text(notebook, "lr-run")
    assert regression.count("reused") == 2 and regression.count("succeeded") == 3, "PSI and split reused"
    compared = _text(notebook, "compare")
    assert "boosted trees" in compared and "logistic regression" in compared and "validation auc" in compared


CHECKS: dict[str, Callable[[NotebookNode], None]] = {
    "quickstart.ipynb": _check_quickstart,
    "modeling.ipynb": _check_modeling,
    "rerun_one_stage.ipynb": _check_rerun_one_stage,
    "psi.ipynb": _check_psi,
    "feature_engineering.ipynb": _check_feature_engineering,
    "secureboost.ipynb": _check_secureboost,
}


FULL_DEMO = frozenset({"psi.ipynb", "feature_engineering.ipynb"})
"""Notebooks whose checks read the demo's own figures (24,000 matched IDs, 6,000 sampled rows): their sandbox
registers the demo's whole credit table. The others run on the suite's smaller one (tests/conftest.py)."""


@pytest.mark.parametrize("name", list(CHECKS))
def test_notebook_runs_against_a_fresh_sandbox_and_shows_what_it_is_for(name, tmp_path, monkeypatch):
    home = tmp_path / "sandbox"
    monkeypatch.setenv("FEDBENCH_SANDBOX_HOME", str(home))
    if name in FULL_DEMO:
        monkeypatch.delenv(sandbox.DEMO_ROWS_ENV, raising=False)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    try:
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        sandbox.down(home)
    CHECKS[name](notebook)


@pytest.mark.parametrize("name", list(CHECKS))
def test_notebook_is_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{name}: {cell.get('id')}"
            )


def test_every_analyst_notebook_is_checked():
    assert set(CHECKS) == {p.name for p in NOTEBOOKS.glob("*.ipynb")}
