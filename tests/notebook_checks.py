"""What each shipped notebook is there to show, checked on its executed outputs (cell by cell, by cell id),
and how a test runs a notebook with smaller sizes than a user's.

Shared by tests/test_notebooks.py (each notebook against a fresh sandbox) and tests/test_binder.py (the
quickstart notebook in the Binder setup): one run of a notebook proves both where they overlap.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

import nbformat
from nbformat import NotebookNode

from fedbench import sandbox
from fedbench.datasets import credit_vertical

TEST_PARAMETERS: dict[str, Any] = {"key_bits": 1024, "epochs": 2}
"""What the suite runs the notebooks with in place of their `parameters` cell's values (for the names that cell
sets): 1024-bit Paillier keys (the smallest the components accept, several times quicker than a user's 2048)
and 2 epochs of each training (modeling.ipynb: 6). No check reads either: they hold with any key size and
any number of epochs."""


def parameters_cell(notebook: NotebookNode) -> NotebookNode | None:
    """The notebook's cell tagged `parameters` (papermill's convention), which sets its size parameters."""
    tagged = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) <= 1, "a notebook has one parameters cell"
    return tagged[0] if tagged else None


def with_test_parameters(notebook: NotebookNode) -> NotebookNode:
    """`notebook` with a cell setting the TEST_PARAMETERS its parameters cell sets, right after that cell."""
    cell = parameters_cell(notebook)
    if cell is None:
        return notebook
    values = {k: v for k, v in TEST_PARAMETERS.items() if re.search(rf"^{k} = ", cell.source, re.MULTILINE)}
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()))
    injected.id = "injected-parameters"
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(notebook.cells.index(cell) + 1, injected)
    return notebook


def text_of(notebook: NotebookNode, cell_id: str | None = None) -> str:
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
    outputs = text_of(notebook)
    assert "reused" in outputs
    assert "'total': 3000" in outputs or "'total': 4000" in outputs


@cache
def demo_matched() -> int:
    """How many IDs of the demo's credit table the guest and the host share, in a sandbox made now: the
    demo's 24,000 at its full size, fewer under the suite's smaller demo (`sandbox.DEMO_ROWS_ENV`)."""
    guest, host = credit_vertical(sandbox._demo_rows(None))  # the rows `sandbox.up` registers
    return len(set(guest["id"]) & set(host["id"]))


def _check_psi(notebook: NotebookNode) -> None:
    matched = demo_matched()
    assert "'release': 'both'" in text_of(notebook, "terms")
    run = text_of(notebook, "run")
    assert _has(run, f"intersection size {matched}") and _has(run, f"rows we received {matched}")
    assert "'role': 'partner'" in text_of(notebook, "host-view") and f"'rows_received': {matched}" in text_of(
        notebook, "host-view"
    ), "under the 'both' policy the host receives its matched rows too"
    assert f"{matched} rows saved to" in text_of(notebook, "download")
    assert "same IDs in the same order: True" in text_of(notebook, "download")
    normalised = text_of(notebook, "normalisers")
    assert "alice.martin@example.com" in normalised and "+442079460958" in normalised
    assert "text: 2 matched" in text_of(notebook, "compare") and "email: 5 matched" in text_of(
        notebook, "compare"
    )
    host_contacts = text_of(notebook, "host-contacts")
    assert "'intersection_size': 5" in host_contacts and "'rows_received': None" in host_contacts
    count_only = text_of(notebook, "count-only")
    assert f"'intersection_size': {matched}" in count_only and "'rows_received': None" in count_only


def _check_feature_engineering(notebook: NotebookNode) -> None:
    sampled = int(demo_matched() * 0.25 + 0.5)
    assert f"{sampled} aligned rows" in text_of(notebook, "stats-own"), "the notebook samples a quarter"
    assert "correlation matrix: 15 guest features x 14 host features" in text_of(notebook, "correlation")
    assert _has(text_of(notebook, "correlation"), r"pearson\n\d+ credit_limit income"), (
        "the strongest pair comes first"
    )
    assert "a correlation: False" in text_of(notebook, "host-stats"), "the host never gets the correlation"
    prep_bin = text_of(notebook, "prep-bin-run")
    assert prep_bin.count("reused") == 3 and prep_bin.count("succeeded") == 2
    assert "image/png" in _mimetypes(notebook, "iv"), "the IV chart is drawn"
    assert "income" in text_of(notebook, "iv-table")
    assert "'bins'" in text_of(notebook, "host-bins") and "'iv'" not in text_of(notebook, "host-bins")
    kept = re.search(
        r"iv_min=0.02 keeps (\d+) guest and (\d+) host features", text_of(notebook, "select-run")
    )
    assert kept is not None and int(kept[1]) > 0 and int(kept[2]) > 0
    rerun = text_of(notebook, "rerun")
    only_select = "{'succeeded': ['select'], 'reused': ['psi', 'sample', 'stats', 'prep', 'binning']}"
    assert f"guest: {only_select}" in rerun and f"host:  {only_select}" in rerun
    # The PSI's row order is fresh each run, so the sampled rows (and IVs near a threshold) vary a little.
    counts = {
        party: tuple(map(int, found.groups()))
        for party in ("guest", "host")
        if (found := re.search(rf"{party}\s+(\d+)\s+(\d+)", text_of(notebook, "compare")))
    }
    assert counts["guest"][0] == int(kept[1]) and counts["host"][0] == int(kept[2])
    assert all(strict <= loose for loose, strict in counts.values()), "a stricter iv_min keeps no more"
    assert sum(strict for _, strict in counts.values()) < sum(loose for loose, _ in counts.values())


def _check_quickstart(notebook: NotebookNode) -> None:
    assert text_of(notebook, "run").count("succeeded") == 5
    evaluated = text_of(notebook, "evaluate")
    auc = re.search(r"'validation': \{'auc': ([0-9.]+)", evaluated)
    assert auc is not None and float(auc[1]) > 0.95, evaluated
    assert "image/png" in _mimetypes(notebook, "roc") and "image/png" in _mimetypes(notebook, "loss")
    assert "points" in text_of(notebook, "scores")
    rerun = text_of(notebook, "rerun")
    assert rerun.count("reused") == 2 and rerun.count("succeeded") == 3


def _check_modeling(notebook: NotebookNode) -> None:
    assert "'protocol': 'sshe'" in text_of(notebook, "model")
    assert "'data_fingerprint'" in text_of(notebook, "card") and "'created_by': 'guest'" in text_of(
        notebook, "card"
    )
    assert "(20, False)" in text_of(notebook, "host-part"), "the host's part has its 20 features and no label"
    assert text_of(notebook, "rerun").count("reused") == 2
    assert "import-" in text_of(notebook, "import") and "score" in text_of(notebook, "score")
    assert "['guest.json', 'host.json', 'scores.csv']" in text_of(notebook, "download")


def _check_secureboost(notebook: NotebookNode) -> None:
    assert "psi → split → train → evaluate → score" in text_of(notebook, "template")
    assert "'hetero_secureboost'" in text_of(notebook, "build") and "'label': 'y'" in text_of(
        notebook, "build"
    )
    assert text_of(notebook, "run").count("succeeded") == 5
    metrics = text_of(notebook, "metrics")
    auc = re.search(r"'validation': \{'auc': ([0-9.]+)", metrics)
    assert "10 trees" in metrics and auc is not None and float(auc[1]) > 0.9, metrics
    for cell in ("loss", "importance", "tree", "compare-chart"):
        assert "image/png" in _mimetypes(notebook, cell), f"the {cell} chart is drawn"
    used = re.search(
        r"(\d+) of 30 features used, (\d+) of them the host's", text_of(notebook, "importance-table")
    )
    assert used is not None and 0 < int(used[2]) < int(used[1]), "the trees use features of both parties"
    host = text_of(notebook, "host-part")
    assert (
        "20 host features" in host and "leaf values or trees in the host's part: False | label: False" in host
    )
    scored = re.search(r"(\d+) test rows scored, columns \[(.*)\]", text_of(notebook, "score"))
    assert scored is not None and int(scored[1]) > 50, "the trees scored the test rows"
    assert "'score'" in scored[2] and "'pred'" in scored[2] and "points" not in scored[2]
    regression = text_of(notebook, "lr-run")
    assert regression.count("reused") == 2 and regression.count("succeeded") == 3, "PSI and split reused"
    compared = text_of(notebook, "compare")
    assert "boosted trees" in compared and "logistic regression" in compared and "validation auc" in compared


def _check_horizontal(notebook: NotebookNode) -> None:
    assert "'members': ['branch-1', 'branch-2', 'branch-3', 'aggregator']" in text_of(notebook, "project")
    assert text_of(notebook, "run").count("succeeded") == 2
    rounds = text_of(notebook, "rounds")
    assert _has(rounds, r"15 \s*0\.\d+ \s*3 \s*0"), "fifteen rounds, every branch in each"
    assert "image/png" in _mimetypes(notebook, "chart") and "image/png" in _mimetypes(
        notebook, "distribution"
    )
    assert "same weights as the aggregator's: True" in text_of(notebook, "same-model")
    scored = re.search(r"(\d+) of our rows scored, AUC on them ([0-9.]+)", text_of(notebook, "scores"))
    assert scored is not None and int(scored[1]) > 0 and float(scored[2]) > 0.65, text_of(notebook, "scores")
    assert text_of(notebook, "rerun").count("succeeded") == 2


CHECKS: dict[str, Callable[[NotebookNode], None]] = {
    "quickstart.ipynb": _check_quickstart,
    "modeling.ipynb": _check_modeling,
    "rerun_one_stage.ipynb": _check_rerun_one_stage,
    "psi.ipynb": _check_psi,
    "feature_engineering.ipynb": _check_feature_engineering,
    "secureboost.ipynb": _check_secureboost,
    "horizontal.ipynb": _check_horizontal,
}
