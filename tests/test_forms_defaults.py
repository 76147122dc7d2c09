"""Forms reached from `import fedbench` start at data that runs, and list each earlier result once (#15 item 7).

`fedbench.ui` is an attribute of the package, imported on first use (a plain `import fedbench` loads no
widgets). A step that reads rows starts at the latest aligned result (a PSI's matched rows, or a preprocess
of them), never at the raw dataset whose rows are not matched with the partner's; pickers list each result
once, newest first, named by run and step. One two-party sandbox for the module, small uploaded tables.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Federation

import fedbench
from fedbench.client.records import RunInfo
from fedbench.ui.choices import earlier_results


@pytest.fixture(scope="module")
def fed(shared_sandbox: Federation) -> Path:
    """The suite's shared sandbox; this module's tables are `customers` and `accounts`, its project `forms`."""
    return shared_sandbox.root


@pytest.fixture(scope="module")
def project(fed: Path) -> fedbench.Project:
    """A project of the guest's 60 customers (a feature and the label) and the host's 70 (50 shared)."""
    guest, host = fedbench.connect(home=fed / "guest"), fedbench.connect(home=fed / "host")
    rng = np.random.default_rng(7)
    x1 = rng.normal(size=60)
    guest.datasets.upload(
        pd.DataFrame({"id": [f"c{i}" for i in range(60)], "x1": x1, "y": (x1 > 0).astype(int)}),
        name="customers",
        id_column="id",
        label_column="y",
    )
    host.datasets.upload(
        pd.DataFrame({"id": [f"c{i}" for i in range(10, 80)], "x2": rng.normal(size=70)}),
        name="accounts",
        id_column="id",
    )
    terms = {"psi_runs": 10, "min_intersection": 1, "release": "both"}
    guest.projects.propose("forms", partners="host", datasets=["customers"], **terms)
    host.projects.accept("forms", datasets=["accounts"])
    return guest.project("forms")


def test_import_fedbench_reaches_ui_without_loading_widgets() -> None:
    code = (
        "import sys, fedbench\n"
        "assert 'ipywidgets' not in sys.modules and 'fedbench.ui' not in sys.modules, 'import fedbench is cheap'\n"
        "assert callable(fedbench.ui.form) and 'ipywidgets' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_forms_start_at_data_that_runs(project: fedbench.Project) -> None:
    before = fedbench.ui.form(project, "hetero_lr", show_monitor=False)
    assert before.inputs["train"].value == "dataset:customers", "no PSI yet: the raw dataset is all there is"
    assert "run a PSI first" in before.field_message("train")

    psi = fedbench.ui.form(project, "psi", show_monitor=False)
    assert psi.inputs["data"].value == "dataset:customers", "a PSI reads the raw dataset"
    matched = psi.run().wait(timeout=180, show_progress=False).output("data").id

    trainer = fedbench.ui.form(project, "hetero_lr", show_monitor=False)
    assert trainer.inputs["train"].value == f"artifact:{matched}"
    assert trainer.inputs["validation"].value == "none:" and trainer.inputs["warm_start"].value == "none:"
    assert trainer.field_message("train") == ""

    scaling = fedbench.ui.form(project, "preprocess", show_monitor=False)
    assert scaling.inputs["data"].value == f"artifact:{matched}"
    scaled = scaling.set(scale="standard").run().wait(timeout=180, show_progress=False).output("data").id
    head = fedbench.ui.form(project, "head", show_monitor=False)
    head.choose_input("data", "customers")
    head.set(n=5).run().wait(timeout=180, show_progress=False)

    trainer.refresh_inputs()
    assert trainer.inputs["train"].value == f"artifact:{scaled}", (
        "the latest aligned rows: the preprocess of the PSI's output, not the newer head of the raw dataset"
    )
    run = trainer.set(epochs=2, key_bits=1024).run().wait(timeout=300, show_progress=False)
    assert run.info["state"] == "succeeded", run.info["error"]


def test_pickers_list_each_result_once_newest_first_named_by_run_and_step(project: fedbench.Project) -> None:
    for _ in range(2):
        project.run("psi", data={"guest": "customers", "host": "accounts"}).wait(show_progress=False)
    for n in (3, 4):
        project.run("head", data={"guest": "customers", "host": "accounts"}, n=n).wait(show_progress=False)
    form = fedbench.ui.form(project, "row_count", show_monitor=False)
    options = [
        (label, value) for label, value in form.inputs["data"].options if value.startswith("artifact:")
    ]
    labels, values = [label for label, _ in options], [value for _, value in options]
    assert len(set(values)) == len(values) and len(set(labels)) == len(labels), labels
    held = project.artifacts().set_index("id")
    tables = held[held["kind"] == "table"].sort_values("created_at", ascending=False)
    assert values == [f"artifact:{i}" for i in tables.index], "every table result, newest first, once"
    for label, value in options:
        row = held.loc[value.removeprefix("artifact:")]
        assert f"run {row['job_id'][:8]} (step {row['step']}, " in label
    assert sum(label.startswith("Matched rows of run") for label in labels) == 1, "reused PSIs add no entry"


def test_aligned_rows_are_read_from_each_steps_inputs() -> None:
    def step(name: str, component: str, key: str, inputs: dict[str, dict[str, str]]) -> dict[str, object]:
        return {"step": name, "component": component, "key": key, "state": "succeeded", "inputs": inputs}

    raw = {"data": {"dataset": "customers"}}
    runs = [
        {
            "job_id": "j1" * 8,
            "state": "succeeded",
            "steps": [
                step("psi", "psi", "k1", raw),
                step("scale", "preprocess", "k2", {"data": {"artifact": "k1:data"}}),
                step("again", "preprocess", "k3", {"data": {"artifact": "k2:data"}}),
                step("split", "split", "k4", {"data": {"artifact": "k3:data"}}),
                step("raw_scale", "preprocess", "k5", raw),
                step("first", "head", "k6", {"data": {"artifact": "k1:data"}}),
            ],
        }
    ]
    outputs = ["k1:data", "k2:data", "k3:data", "k4:train", "k5:data", "k6:data"]
    artifacts = [
        {
            "id": o,
            "name": o.split(":")[1],
            "kind": "table",
            "job_id": "j1" * 8,
            "created_at": f"2026-12-06T08:0{i}",
        }
        for i, o in enumerate(outputs)
    ]
    aligned = {r.artifact_id: r.aligned for r in earlier_results(artifacts, map(RunInfo.from_dict, runs))}
    assert aligned == {
        "k1:data": True,
        "k2:data": True,
        "k3:data": True,
        "k4:train": True,
        "k5:data": False,
        "k6:data": False,
    }
