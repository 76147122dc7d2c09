"""The UI without a browser: a form for every registered component, the run monitor, the charts, the dashboards'
apps. Forms and monitors run against a real sandbox (two nodes over mutual TLS) and its `demo` project.

The component tests loop over `fedbench.components.list()`, so a component added later gets its form checked
(builds, shows its defaults, refuses an out-of-bounds value at the field, submits a run the nodes record).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
from conftest import PLUGINS, up_with_test_components

import fedbench
import fedbench.ui as ui
from fedbench import components, sandbox
from fedbench.client.runs import Run
from fedbench.components import spec
from fedbench.ui.dashboards.modeling_result import refine_from_of
from fedbench.ui.errors import FormError, PlotError
from fedbench.ui.fields import field_schema

matplotlib.use("Agg")

COMPONENTS = [c["name"] for c in components.list()]


def _params(name: str) -> list[tuple[str, dict[str, Any], Any]]:
    """Each param of a component: name, JSON schema (resolved), default (None when required)."""
    model = components.get(name).params
    schema = model.model_json_schema()
    return [
        (
            p,
            field_schema(schema, p)[0],
            None if info.is_required() else info.get_default(call_default_factory=True),
        )
        for p, info in model.model_fields.items()
    ]


def _out_of_bounds() -> list[tuple[str, str, float, str]]:
    """(component, param, a value outside its bounds, the word the message should contain) for every bound."""
    cases = []
    for name in COMPONENTS:
        for param, prop, _ in _params(name):
            step = 1 if prop.get("type") == "integer" else 0.5
            if "minimum" in prop:
                cases.append((name, param, prop["minimum"] - step, "least"))
            if "exclusiveMinimum" in prop:
                cases.append((name, param, prop["exclusiveMinimum"], "more than"))
            if "maximum" in prop:
                cases.append((name, param, prop["maximum"] + step, "most"))
            if "exclusiveMaximum" in prop:
                cases.append((name, param, prop["exclusiveMaximum"], "less than"))
    return cases


def _another_value(prop: dict[str, Any], default: Any) -> Any:
    """A valid number other than the default, where the schema allows one (to see it reach the nodes).

    Only numbers that have a default change: another choice or flag, or a number that was left unset, could
    change what a component does (a phone-number normalisation of IDs that are not phone numbers), and these
    tests only check that the values arrive.
    """
    if prop.get("type") not in ("integer", "number") or default is None:
        return default
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    step = 1 if prop.get("type") == "integer" else 0.5
    candidates = [default + step, default - step]
    if prop.get("type") == "number" and low is not None:
        candidates.append(
            (low + default) / 2
        )  # a default at its maximum, a step above its minimum (0.5 in (0, 0.5])
    for candidate in candidates:
        if (high is None or candidate < high) and (low is None or candidate > low):
            return candidate
    return default


def _value_to_send(param: str, prop: dict[str, Any], default: Any) -> Any:
    """The value a form-run test sends: another valid value, the smallest key size for a key (the cheapest)."""
    if param == "key_bits":
        smallest = min(prop.get("enum", [prop.get("minimum", default)]))
        return default if smallest == default else smallest
    return _another_value(prop, default)


def _table_to_feed(name: str) -> str:
    """The demo table a form-run test feeds: the small one (569 rows) to a component that encrypts per row (it
    has a Paillier key size), where the credit table's thousands of rows would cost minutes and show nothing more."""
    return "breast_cancer" if "key_bits" in components.get(name).params.model_fields else "credit"


DEMO_ROWS = 2_000
"""Rows of this module's demo credit table: a third of the suite's (`TEST_DEMO_ROWS`): every form runs its
component on it, with a third of the work."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    """A sandbox with the demo data and project; its nodes also load the test-only `slow` component."""
    root = tmp_path_factory.mktemp("ui")
    with pytest.MonkeyPatch.context() as env:  # up_with_test_components sizes the demo from the environment
        env.setenv(sandbox.DEMO_ROWS_ENV, str(DEMO_ROWS))
        up_with_test_components(root, demo_data=True)
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def project(fed: Path):
    return fedbench.connect(home=fed / "guest").project("demo")


def _recorded_step(root: Path, party: str, job_id: str) -> dict[str, Any]:
    """The step as `party`'s node stored it in its own job table."""
    deadline = time.monotonic() + 30
    while True:
        con = sqlite3.connect(root / party / "fedbench.db")
        try:
            row = con.execute("select spec from job where id = ?", (job_id,)).fetchone()
        finally:
            con.close()
        if row is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert row is not None, f"{party} has no job {job_id}"
    step: dict[str, Any] = json.loads(row[0])["steps"][0]
    return step


# ----- forms, for every registered component ---------------------------------------------------------------


@pytest.mark.parametrize("name", COMPONENTS)
def test_form_builds_with_defaults_and_css_hooks(project, name: str) -> None:
    form = ui.form(project, name, show_monitor=False)
    assert {"fb-form", f"fb-form-{name}"} <= set(form._dom_classes)
    assert "fb-run-button" in form.button._dom_classes
    assert "fb-form-error" in form.message._dom_classes
    for param, _prop, default in _params(name):
        field = form.params.fields[param]
        assert f"fb-field-{param}" in field.box._dom_classes
        if default is not None:
            assert field.read() == default, f"{name}.{param} should show its default {default!r}"
        assert form.field_message(param) == ""
    for port in components.get(name).inputs:
        if port.kind == "table":
            assert "dataset:credit" in [value for _, value in form.inputs[port.name].options]


@pytest.mark.parametrize(("name", "param", "bad", "word"), _out_of_bounds())
def test_form_refuses_out_of_bounds_value_at_the_field(
    project, name: str, param: str, bad: float, word: str
) -> None:
    form = ui.form(project, name, show_monitor=False)
    runs_before = len(project.runs())
    form.set(**{param: bad})
    assert word in form.field_message(param), "the message shows at the field as soon as the value changes"
    with pytest.raises(FormError) as refused:
        form.run()
    assert param in refused.value.fields
    assert form.status == "invalid"
    assert "fb-field-invalid" in form.params.fields[param].box._dom_classes
    assert param in form.message.value and "Traceback" not in form.message.value
    assert len(project.runs()) == runs_before, "nothing was submitted"


@pytest.mark.parametrize("name", COMPONENTS)
def test_form_run_submits_the_values_and_the_nodes_record_them(fed: Path, project, name: str) -> None:
    """Whether a run succeeds is its component's own tests' business; here: the values reach both nodes."""
    needed = set(components.get(name).required_roles())
    if not needed <= {"guest", "host"}:
        pytest.skip(
            f"{name} plays roles {sorted(needed)}: it runs on a horizontal project, not this sandbox's two-party "
            "one (tests/test_horizontal_dashboard.py and tests/test_homo_lr_nodes.py run it on one)"
        )
    form = ui.form(project, name, show_monitor=False)
    chosen = {param: _value_to_send(param, prop, default) for param, prop, default in _params(name)}
    form.set(**chosen)
    for port in components.get(name).inputs:
        if not form.inputs[port.name].options:
            pytest.skip(f"{name} needs a {port.kind} input that a fresh sandbox does not hold")
        if port.kind == "table":
            form.choose_input(port.name, _table_to_feed(name))
    run = form.run()
    assert isinstance(run, Run) and form.last_run is run and form.status == "submitted"
    run.wait(timeout=180, show_progress=False, raise_on_error=False)
    assert run.info["state"] in ("succeeded", "failed"), "the run reached its end"
    assert "bad params" not in str(run.info["error"]), "the nodes accepted the form's params"
    expected = components.get(name).params.model_validate(chosen).model_dump(mode="json")
    for party in ("guest", "host"):
        step = _recorded_step(fed, party, run.job_id)
        assert step["component"] == name
        assert step["params"] == expected, f"{party} recorded other params"
    assert list(run.steps()["component"]) == [name]
    # A component fed plain data tables must run to the end on a demo table; one that needs an upstream
    # result (evaluate's scores) cannot, and is checked above for the params both nodes recorded.
    if all(port.name == "data" for port in components.get(name).inputs):
        assert run.info["state"] == "succeeded", run.info["error"]


def test_form_choose_input_refuses_data_outside_the_project(project) -> None:
    form = ui.form(project, "row_count", show_monitor=False)
    with pytest.raises(FormError) as refused:
        form.choose_input("data", "not_authorised")
    assert "data" in refused.value.fields
    assert "Not available" in form.field_message("data")


def test_form_lists_earlier_results_by_friendly_name(project) -> None:
    project.run("head", data="credit", n=3).wait(show_progress=False)
    form = ui.form(project, "row_count", show_monitor=False)
    results = [
        (label, value) for label, value in form.inputs["data"].options if value.startswith("artifact:")
    ]
    assert results and results[0][0].startswith("Rows of run ") and "(step head, " in results[0][0]
    form.choose_input("data", results[0][1])
    run = form.run().wait(show_progress=False)
    assert run.output("metrics").value()["total"] > 0


def test_form_shows_node_refusals_in_words(fed: Path) -> None:
    guest = fedbench.connect(home=fed / "guest")
    host = fedbench.connect(home=fed / "host")
    guest.projects.propose("ui-quota", partners="host", datasets=["credit"], jobs_per_day=0)
    host.projects.accept("ui-quota", datasets=["credit"])
    form = ui.form(guest.project("ui-quota"), "row_count", show_monitor=False)
    with pytest.raises(fedbench.FedbenchError):
        form.run()
    assert form.status == "failed"
    assert "The run could not start" in form.message.value and "Traceback" not in form.message.value
    assert not form.button.disabled


# ----- the monitor -----------------------------------------------------------------------------------------


def test_monitor_follows_a_run_to_completion_and_shows_results(fed: Path, project) -> None:
    run = project.run("row_count", data="credit")
    view = ui.monitor(run, start=False)
    assert "fb-monitor" in view._dom_classes
    view.follow(timeout=120)
    assert view.done and view.state == "succeeded"
    row = view.rows["row_count"]
    assert row.bar.value == 1.0 and row.bar.bar_style == "success"
    total = sum(
        fedbench.connect(home=fed / party).datasets.get("credit").info.n_rows for party in ("guest", "host")
    )
    assert "total" in view.results.value and f"{total:,}" in view.results.value
    assert view.cancel_button.disabled


def test_monitor_in_background_thread_and_cancel(fed: Path, project) -> None:
    sys.path.insert(0, PLUGINS)
    try:
        import fb_test_components  # noqa: F401  (registers `slow` in this process, as the nodes have it)
    finally:
        sys.path.remove(PLUGINS)
    try:
        form = ui.form(project, "slow")
        form.set(seconds=20.0, data="credit")
        run = form.run()
        view = form.monitor_area.children[0]
        deadline = time.monotonic() + 30
        while view.rows.get("slow") is None or view.rows["slow"].bar.value == 0.0:
            assert time.monotonic() < deadline, "the monitor never showed progress"
            time.sleep(0.1)
        view.cancel()
        view.join(timeout=60)
        assert view.done and view.state == "cancelled"
        assert run.status == "cancelled"
        assert view.rows["slow"].bar.bar_style in ("warning", "danger")
    finally:
        spec._REGISTRY.pop("slow", None)  # other test modules list components at run time


def test_monitor_redraws_metric_chart_on_metric_events(project) -> None:
    run = project.run("row_count", data="credit").wait(show_progress=False)
    view = ui.monitor(run, start=False)
    for i in range(5):
        view.apply(
            {"type": "metric", "step": "row_count", "name": "loss", "value": 1 / (i + 1), "iteration": i}
        )
        view._drawn_at = 0.0
    (shown,) = view.chart.outputs
    assert shown["data"]["image/png"]
    timed = ui.monitor(run, start=False)
    for i in range(3):
        timed.apply(
            {"type": "metric", "step": "row_count", "name": "epoch_seconds", "value": 2.0, "iteration": i}
        )
        timed._drawn_at = 0.0
    assert timed.chart.outputs == (), "timings are not charted for the people watching a run"
    view.apply({"type": "log", "step": "row_count", "message": "iteration 5 done"})
    assert "iteration 5 done" in view.logs.value


# ----- charts ----------------------------------------------------------------------------------------------


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    return y, np.clip(y * 0.3 + rng.normal(0.35, 0.2, 400), 0, 1)


def test_roc_curve_draws_curve_and_chance_line_with_auc(scored) -> None:
    fig = ui.roc_curve(*scored)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and ax.get_title().startswith("ROC curve (AUC 0.")
    perfect = ui.roc_curve([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert "AUC 1.000" in perfect.axes[0].get_title()


def test_ks_curve_marks_the_largest_gap(scored) -> None:
    fig = ui.ks_curve(*scored)
    (ax,) = fig.axes
    assert len(ax.lines) == 3 and ax.get_title().startswith("KS = 0.")
    assert ui.ks_curve([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]).axes[0].get_title() == "KS = 1.000"


def test_lift_gain_chart_has_gain_curve_and_lift_bars(scored) -> None:
    fig = ui.lift_gain_chart(*scored, bins=10)
    gain, lift = fig.axes
    assert len(gain.lines) == 2 and gain.get_title() == "Cumulative gain"
    assert len(lift.patches) == 10 and lift.get_title().startswith("Lift by bucket")


def test_confusion_matrix_annotates_every_cell() -> None:
    fig = ui.confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    (ax, *_colorbar) = fig.axes
    assert len(ax.texts) == 4 and ax.get_title() == "Confusion matrix (accuracy 60.0%)"
    assert [t.get_text() for t in ax.texts] == ["1", "1", "1", "2"]
    floats = ui.confusion_matrix(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0])).axes[0]
    assert [t.get_text() for t in floats.get_xticklabels()] == ["0", "1"], "classes read 0 and 1, not 0.0"


def test_loss_curve_one_line_per_metric_and_party() -> None:
    metrics = pd.DataFrame(
        [
            {"step": "lr", "party": party, "name": name, "iteration": i, "value": 1.0 / (i + 1)}
            for party in ("guest", "host")
            for name in ("loss", "auc")
            for i in range(6)
        ]
    )
    fig = ui.loss_curve(metrics)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "auc"]
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    with pytest.raises(PlotError):
        ui.loss_curve(pd.DataFrame())


def test_loss_curve_marks_where_the_refine_epochs_begin() -> None:
    """hetero_lr's refine epochs report the logistic loss, its warm-up the quadratic one: the step up between
    them is marked on the loss panel, from the streamed `refine_from` metric or from the model's value."""
    losses = [0.52, 0.45, 0.41, 0.47, 0.46]
    rows = [{"name": "loss", "iteration": i, "value": v} for i, v in enumerate(losses)]
    rows += [{"name": "epoch_seconds", "iteration": i, "value": 1.0} for i in range(5)]
    streamed = pd.DataFrame([*rows, {"name": "refine_from", "iteration": 3, "value": 3}])
    for fig in (ui.loss_curve(streamed), ui.loss_curve(pd.DataFrame(rows), refine_from=3)):
        assert [ax.get_title() for ax in fig.axes] == ["loss", "epoch_seconds"], "the mark is no panel"
        loss, seconds = fig.axes
        marks = [line for line in loss.lines if line.get_linestyle() == "--"]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [2.5, 2.5]
        assert [t.get_text() for t in loss.texts] == [" refine: logistic loss"]
        assert not seconds.texts and all(line.get_linestyle() != "--" for line in seconds.lines)
    plain = ui.loss_curve(pd.DataFrame(rows)).axes[0]
    assert not plain.texts and all(line.get_linestyle() != "--" for line in plain.lines)
    assert refine_from_of({"refine_from": 3}) == 3 and refine_from_of({"refine_from": {"0": 4, "1": 4}}) == 4
    assert refine_from_of({"refine_from": None}) is None and refine_from_of(None) is None


def test_iv_chart_sorts_features_and_keeps_the_top() -> None:
    iv = {f"x{i}": i / 50 for i in range(30)}
    fig = ui.iv_chart(iv, top=10)
    (ax,) = fig.axes
    assert len(ax.patches) == 10 and ax.get_title() == "Information value by feature"
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "x29"


def test_score_distribution_one_histogram_per_class(scored) -> None:
    y, s = scored
    assert len(ui.score_distribution(s).axes[0].patches) == 30
    fig = ui.score_distribution(s, y, bins=20)
    (ax,) = fig.axes
    assert len(ax.patches) == 40 and ax.get_title() == "Score distribution"
    assert len(ax.get_legend().get_texts()) == 2


def test_compare_runs_pairs_final_values_and_overlays_curves() -> None:
    def metrics(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            [{"name": n, "iteration": i, "value": shift + i / 10} for n in ("loss", "auc") for i in range(4)]
        )

    fig = ui.compare_runs(metrics(0.0), metrics(0.1), labels=("before", "after"))
    loss_bars, auc_bars, loss_curves, auc_curves = fig.axes
    assert fig.get_suptitle() == "before vs after"
    assert [ax.get_title() for ax in fig.axes] == ["loss", "auc", "loss by iteration", "auc by iteration"]
    assert len(loss_bars.patches) == len(auc_bars.patches) == 2
    assert len(loss_curves.lines) == len(auc_curves.lines) == 2
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["before", "after"]
    simple = ui.compare_runs({"auc": 0.7}, {"auc": 0.75, "ks": 0.3})
    assert [len(ax.patches) for ax in simple.axes] == [2, 2]


def test_compare_runs_gives_each_metric_its_own_scale() -> None:
    fig = ui.compare_runs({"loss": 4.1e7, "auc": 0.42}, {"loss": 0.59, "auc": 0.77})
    loss, auc = fig.axes
    assert auc.get_ylim()[1] < 1.0, "a huge loss does not flatten the AUC bars"
    assert loss.get_ylim()[1] > 4e7


def test_charts_refuse_unusable_data_with_our_error() -> None:
    with pytest.raises(PlotError, match="both classes"):
        ui.roc_curve([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(PlotError, match="differ in length"):
        ui.ks_curve([0, 1], [0.1])
    with pytest.raises(PlotError, match="0 and 1"):
        ui.lift_gain_chart([0, 2, 1], [0.1, 0.2, 0.3])


# ----- the dashboards' apps, in-process ----------------------------------------------------------------------


def test_data_app_refuses_bad_files_and_names_in_words(fed: Path) -> None:
    from fedbench.ui.dashboards import data

    app = data.app(fedbench.connect(home=fed / "guest"))
    with pytest.raises(FormError):
        app.load_file("notes.txt", b"hello")
    assert "neither a CSV nor a parquet" in app.message.text
    with pytest.raises(FormError):
        app.register()
    app.load_file("my clients.csv", b"client_id,age,churned\n007,31,1\n008,45,0\n009,52,1\n")
    assert (app.id_column.value, app.label_column.value, app.name.value) == (
        "client_id",
        "churned",
        "my_clients",
    )
    assert "client_id" in app.schema.value and "First rows" in app.preview.value
    app.name.value = "bad name!"
    with pytest.raises(FormError) as refused:
        app.register()
    assert "name" in refused.value.fields and "letters, digits" in app.name_message.value
    app.name.value = "clients_ui"
    dataset = app.register()
    assert dataset.to_pandas()["client_id"].tolist() == ["007", "008", "009"], "leading zeros of ids are kept"
    assert "clients_ui" in app.datasets.value and app.pick.value == "clients_ui"


def test_projects_app_propose_accept_revoke_in_process(fed: Path) -> None:
    from fedbench.ui.dashboards import projects

    guest = projects.app(fedbench.connect(home=fed / "guest"))
    host = projects.app(fedbench.connect(home=fed / "host"))
    guest.propose_name.value = "ui-inprocess"
    with pytest.raises(FormError) as refused:
        guest.propose()
    assert "datasets" in refused.value.fields
    guest.propose_datasets.value = ("credit",)
    guest.terms.set(release="count_only", jobs_per_day=7)
    guest.propose()
    host.refresh()
    assert "ui-inprocess" in host.proposals
    with pytest.raises(FormError):
        host.accept("ui-inprocess")
    host.accept("ui-inprocess", ["credit"])
    assert guest.workbench.project("ui-inprocess").state == "active"
    assert guest.workbench.project("ui-inprocess").quotas["release"] == "count_only"
    host.revoke("ui-inprocess", "test over")
    assert guest.workbench.project("ui-inprocess").state == "revoked"
    assert "revoked" in host.audit.value
