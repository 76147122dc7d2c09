"""The modeling dashboard on a horizontal project, in-process against a real horizontal sandbox.

A branch picks the `branches` project: the page offers the horizontal training (model, our dataset, the
parties that train, the aggregator, the settings) instead of the vertical steps, trains with the chosen
parties, and shows our rows' metrics, our loss per round and our scored rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import fedbench
from fedbench import sandbox
from fedbench.ui.dashboards import modeling
from fedbench.ui.errors import FormError


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("horizontal-dashboard")
    sandbox.up(root, horizontal=3, demo_rows=3000)
    yield root
    sandbox.down(root)


def test_a_branch_trains_with_the_other_branches_from_the_modeling_page(fed: Path) -> None:
    app = modeling.app(fedbench.connect(home=fed / "branch-1"))
    assert isinstance(app, modeling.ModelingApp)
    app.choose_project(sandbox.HORIZONTAL_PROJECT)
    part = app.horizontal
    assert part.box.layout.display is None, "the horizontal training is shown"
    assert all(w.layout.display == "none" for w in (app.data_box, app.steps_box, app.settings_box))
    assert list(part.dataset.options) == ["credit"]
    assert list(part.clients) == ["branch-1", "branch-2", "branch-3"] and part.clients["branch-1"].disabled
    assert part.server.value == "aggregator"

    part.clients["branch-3"].value = False
    with pytest.raises(FormError, match="at least three parties"):
        part.train()
    part.clients["branch-3"].value = True

    part.forms["homo_lr"].set(rounds=3)
    run = part.train(wait=True)
    assert run.refresh().record.state == "succeeded"
    assert app.shown == run.job_id
    summary = part.result.value
    assert "homo_lr of" in summary and "auc on our rows" in summary and "we trained in 3 rounds" in summary
    assert "Our scored rows (1,000)" in summary
    assert "<img" in part.charts.value, "our loss per round is drawn"
    roles = {s.role for s in fedbench.connect(home=fed / "aggregator").run(run.job_id).record.steps}
    assert roles == {"server"}, "the aggregator took part as the server"
