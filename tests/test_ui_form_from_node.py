"""`ui.form` builds its form from the component the node reports: a component only the nodes load (through
`component_modules`) gets a working form in a kernel that never imported it.

The nodes load `tests/plugins/fb_kernel_unknown.py`; its `tally` step has one parameter of each kind a form
shows (a bounded whole number, an optional number, a choice, text, yes/no).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import small_two_party_project, up_with_test_components

import fedbench
import fedbench.ui as ui
from fedbench import components, sandbox
from fedbench.components.builtin.row_count import RowCountParams
from fedbench.errors import NotFound
from fedbench.ui.errors import FormError


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two nodes with a project `forms` over 20 rows on each side."""
    root = tmp_path_factory.mktemp("form_from_node")
    up_with_test_components(root, modules=("fb_kernel_unknown",))
    small_two_party_project(root, "forms")
    yield root
    sandbox.down(root)


def test_a_component_only_the_node_knows_gets_a_working_form(fed: Path) -> None:
    with pytest.raises(NotFound):
        components.get("tally")  # this kernel never imported it
    project = fedbench.connect(home=fed / "guest").project("forms")
    form = ui.form(project, "tally", show_monitor=False)
    assert {"fb-form", "fb-form-tally"} <= set(form._dom_classes)
    assert set(form.fields) == {"times", "scale", "mode", "label", "verbose"}
    assert form.params.fields["times"].read() == 2 and form.params.fields["label"].read() == "tally"
    assert form.params.fields["scale"].read() is None and form.params.fields["verbose"].read() is False
    assert [value for _, value in form.fields["mode"].options] == ["plain", "doubled"]
    assert "dataset:t" in [value for _, value in form.inputs["data"].options]

    form.set(times=9)
    assert "at most 5" in form.field_message("times"), "the node's bound shows at the field"
    with pytest.raises(FormError) as refused:
        form.run()
    assert "times" in refused.value.fields and form.status == "invalid"
    form.set(scale=0)
    assert "more than 0" in form.field_message("scale")

    form.set(times=3, scale=0.5, mode="doubled", label="seen")
    run = form.run().wait(timeout=120, show_progress=False)
    assert run.record.state == "succeeded"
    assert run.output("metrics").value() == {"seen": 20 * 3 * 2 * 0.5, "party": "guest"}
    host_run = fedbench.connect(home=fed / "host").project("forms").run_by_id(run.job_id)
    assert host_run.record.steps[0].params == {
        "times": 3,
        "scale": 0.5,
        "mode": "doubled",
        "label": "seen",
        "verbose": False,
    }


def test_a_component_the_kernel_also_knows_keeps_the_kernels_params_model(fed: Path) -> None:
    project = fedbench.connect(home=fed / "guest").project("forms")
    assert ui.form(project, "row_count", show_monitor=False).params.model is RowCountParams


def test_a_component_the_node_does_not_have_is_refused_by_name(fed: Path) -> None:
    project = fedbench.connect(home=fed / "guest").project("forms")
    with pytest.raises(NotFound, match="no component 'nonesuch'"):
        ui.form(project, "nonesuch", show_monitor=False)
