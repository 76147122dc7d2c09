"""`%load_ext fedbench` in a real IPython shell against a real sandbox: status, run and dashboards magics."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from fedbench import sandbox
from fedbench.client.runs import Run
from fedbench.magics import parse_arguments


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    """An IPython shell with the extension loaded, whose default node is a fresh sandbox's guest."""
    home = tmp_path_factory.mktemp("magics-sandbox")
    saved = {k: os.environ.get(k) for k in ("FEDBENCH_SANDBOX_HOME", "FEDBENCH_HOME")}
    os.environ["FEDBENCH_SANDBOX_HOME"] = str(home)
    os.environ.pop("FEDBENCH_HOME", None)
    sandbox.up(home)
    ipython = InteractiveShell.instance()
    result = ipython.run_cell("%load_ext fedbench")
    assert result.success, result.error_in_exec
    yield ipython
    sandbox.down(home)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_status_shows_party_peers_projects_and_datasets(shell, capsys) -> None:
    assert shell.run_cell("%fedbench status").success
    out = capsys.readouterr().out
    assert "party guest" in out and "(up)" in out
    assert "peer host" in out and "reachable" in out
    assert "demo (active)" in out and "credit" in out and "breast_cancer" in out
    assert shell.run_cell("%fedbench status party=host").success
    assert "party host" in capsys.readouterr().out


def test_run_splits_inputs_from_params_and_picks_the_demo_project(shell) -> None:
    run = shell.run_line_magic("fedbench", "run row_count data=credit min_rows=100")
    assert isinstance(run, Run) and run.status == "succeeded"
    metrics = run.output("metrics").value()
    assert metrics["total"] == metrics["rows"]["guest"] + metrics["rows"]["host"] > 100
    again = shell.run_line_magic("fedbench", "run row_count data=credit min_rows=100 project=demo")
    assert set(again.steps()["state"]) == {"reused"}, "the same step is reused, as with Project.run"


def test_run_errors_are_one_line_usage_errors(shell) -> None:
    with pytest.raises(UsageError, match="RunFailed.*fewer than min_rows=10000000"):
        shell.run_line_magic("fedbench", "run row_count data=credit min_rows=10000000")
    with pytest.raises(UsageError, match="unknown component 'nope'"):
        shell.run_line_magic("fedbench", "run nope data=credit")
    with pytest.raises(UsageError, match="NotFound: no project .nosuch."):
        shell.run_line_magic("fedbench", "run row_count data=credit project=nosuch")
    with pytest.raises(UsageError, match="unknown command 'frobnicate'"):
        shell.run_line_magic("fedbench", "frobnicate")
    with pytest.raises(UsageError, match="takes only home= and party="):
        shell.run_line_magic("fedbench", "status verbose")


def test_values_are_json_when_they_parse_else_text() -> None:
    positional, named = parse_arguments(
        ["row_count", "n=2000", "force=true", "data=credit", 'cols=["a","b"]', "x="]
    )
    assert positional == ["row_count"]
    assert named == {"n": 2000, "force": True, "data": "credit", "cols": ["a", "b"], "x": ""}
    with pytest.raises(UsageError, match="put it first"):
        parse_arguments(["n=1", "row_count"])


def test_dashboards_lists_the_notebooks_to_open(shell, capsys, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "notebooks" / "dashboards").mkdir(parents=True)
    (tmp_path / "notebooks" / "dashboards" / "projects.ipynb").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "no-servers"))
    assert shell.run_cell("%fedbench dashboards").success
    out = capsys.readouterr().out
    assert f"voila --token {tmp_path / 'notebooks' / 'dashboards' / 'projects.ipynb'}" in out, (
        "the command it suggests serves the dashboard behind a token"
    )


def test_bare_magic_prints_help(shell, capsys) -> None:
    assert shell.run_cell("%fedbench").success
    out = capsys.readouterr().out
    assert "%fedbench status" in out and "%fedbench run COMPONENT" in out and "%fedbench dashboards" in out
