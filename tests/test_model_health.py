"""Model health (#15 item 1): a diverged training fails with a plain reason and a suggestion, a weak one succeeds
with warnings kept on the run and shown by the dashboards, scoring never offers a warned model first, and the
learning-rate bound keeps standardised data from diverging; plus the run-status wording of #15 item 10.

The health rules are unit-tested on plain numbers; the coordinated protocol's arbiter in process
(`components.simulate`); the rest on one real two-party sandbox with small tables and 1024-bit keys, shared by
the module: one healthy, one weak (warned) and one diverging training.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import Federation, job_states

import fedbench
from fedbench.client.records import Event
from fedbench.client.runs import Run, _Bar, duration_words, timing_words
from fedbench.components import RoleFailed, simulate
from fedbench.components.builtin.hetero_lr import HeteroLRParams
from fedbench.components.spec import ParamsError
from fedbench.errors import NotFound
from fedbench.ml.health import ModelHealthError, check_training
from fedbench.pipeline import Pipeline
from fedbench.ui.dashboards import scoring
from fedbench.ui.dashboards.model_runs import run_state_words
from fedbench.ui.dashboards.modeling_result import headline
from fedbench.ui.monitor import RunMonitor, _StepRow

pytestmark = pytest.mark.filterwarnings("ignore::fedbench.crypto.paillier.WeakKeyWarning")

QUICKSTART = Path(__file__).parent.parent / "notebooks" / "quickstart.ipynb"


def _tables(copies: int, n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A guest table (id, label y, `copies` near-copies of one feature) and a host table (`copies` near-copies
    of a feature correlated with it). Many near-copies make the loss's curvature large, so a learning rate
    that is safe on independent standardised features diverges here (as on data with redundant columns)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = a + rng.normal(scale=0.1, size=n)
    y = (a + b + rng.normal(scale=0.5, size=n) > 0).astype(int)
    ids = [f"c{i:04d}" for i in range(n)]
    guest = pd.DataFrame(
        {"id": ids, "y": y, **{f"g{i}": a + rng.normal(scale=0.05, size=n) for i in range(copies)}}
    )
    host = pd.DataFrame({"id": ids, **{f"h{i}": b + rng.normal(scale=0.05, size=n) for i in range(copies)}})
    return guest, host


# ----- the rules ----------------------------------------------------------------------------------------------


def test_an_exploding_loss_fails_with_the_growth_and_a_safer_learning_rate() -> None:
    health = check_training(losses=[0.59, 3.2, 4.1e7], learning_rate=0.5, epochs=3)
    assert not health.ok
    assert "grew from 0.59 to 4.1e+07" in health.problems[0]
    assert "lower learning_rate, e.g. 0.1" in health.problems[0]
    with pytest.raises(ModelHealthError, match="grew from 0.59"):
        health.raise_if_broken()
    tenfold = check_training(losses=[0.69, 1.1, 7.2], learning_rate=0.05, epochs=3)
    assert not tenfold.ok and "e.g. 0.005" in tenfold.problems[0]


def test_a_loss_above_the_absolute_bound_fails_even_at_the_first_epoch() -> None:
    health = check_training(losses=[250.0], learning_rate=0.5, epochs=10)
    assert not health.ok and health.problems[0].startswith("The loss reached 250: the training diverged")


def test_non_finite_losses_or_weights_fail() -> None:
    assert (
        "became not a number"
        in check_training(losses=[0.69, math.nan], learning_rate=0.3, epochs=2).problems[0]
    )
    assert "became infinite" in check_training(losses=[math.inf], learning_rate=0.3, epochs=2).problems[0]
    weights = np.array([[0.1, np.nan]])
    health = check_training(losses=None, learning_rate=0.3, epochs=2, weights=weights)
    assert not health.ok and "weights are not numbers" in health.problems[0]


def test_an_auc_at_or_below_chance_fails_and_one_barely_above_warns() -> None:
    falling = [0.69, 0.6, 0.55, 0.54, 0.539]
    at_chance = check_training(losses=falling, learning_rate=0.15, epochs=10, auc=0.421)
    assert not at_chance.ok and "AUC on the validation rows is 0.42" in at_chance.problems[0]
    weak = check_training(losses=falling, learning_rate=0.15, epochs=10, auc=0.53, auc_rows="training")
    assert weak.ok and "AUC on the training rows is 0.530, barely better than chance" in weak.warnings[0]
    good = check_training(losses=falling, learning_rate=0.15, epochs=10, auc=0.73)
    assert good.ok and not good.warnings


def test_milder_problems_succeed_with_a_warning_that_names_the_parameter() -> None:
    flat = check_training(losses=[0.52, 0.53], learning_rate=0.3, epochs=2)
    assert flat.ok and "did not fall" in flat.warnings[0] and "learning_rate" in flat.warnings[0]
    nothing = check_training(losses=[0.6931, 0.6925], learning_rate=0.002, epochs=2)
    assert (
        nothing.ok and "learned almost nothing" in nothing.warnings[0] and "e.g. 0.15" in nothing.warnings[0]
    )
    still = check_training(losses=[0.69, 0.6, 0.55, 0.52, 0.50], learning_rate=0.15, epochs=5)
    assert (
        still.ok
        and "still falling fast" in still.warnings[0]
        and "raise epochs, e.g. 10" in still.warnings[0]
    )
    stopped_early = check_training(losses=[0.69, 0.6, 0.55, 0.52, 0.50], learning_rate=0.15, epochs=8)
    assert stopped_early.ok and not stopped_early.warnings, "the epochs did not run out"
    quick_try = check_training(losses=[0.63, 0.53], learning_rate=0.5, epochs=2)
    assert quick_try.ok and not quick_try.warnings, "fewer than 5 epochs are a quick try"


def test_one_vs_rest_losses_are_judged_per_class() -> None:
    health = check_training(losses={"0": [0.69, 0.5], "1": [0.69, 9.0]}, learning_rate=0.5, epochs=2)
    assert not health.ok and "loss of class 1 grew" in health.problems[0]


# ----- the learning rate's bound and the quickstart --------------------------------------------------------


def test_the_learning_rate_is_bounded_where_standardised_data_cannot_diverge() -> None:
    assert HeteroLRParams().learning_rate <= 0.5
    assert HeteroLRParams(learning_rate=0.5).learning_rate == 0.5
    with pytest.raises(ParamsError, match="learning_rate"):
        fedbench.components.get("hetero_lr").validate_params({"learning_rate": 1.0})


def test_the_quickstart_learning_rates_are_within_the_bound() -> None:
    cells = json.loads(QUICKSTART.read_text())["cells"]
    source = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    values = [float(v) for v in re.findall(r"learning_rate\W+=?\s*([0-9.]+)", source)]
    assert len(values) >= 2, "the quickstart trains and re-trains with a learning rate"
    for value in values:
        HeteroLRParams(learning_rate=value)


# ----- the arbiter (coordinated protocol), in process ------------------------------------------------------


def test_the_arbiter_stops_a_diverging_coordinated_training_from_the_loss_it_decrypted() -> None:
    guest, host = _tables(copies=10)
    # Taylor's plain gradient steps diverge on redundant columns; the default's Newton steps do not
    params = {
        "protocol": "coordinated",
        "approximation": "taylor",
        "key_bits": 1024,
        "epochs": 8,
        "batch_size": 0,
        "learning_rate": 0.5,
    }
    with pytest.raises(RoleFailed) as failed:
        simulate("hetero_lr", {"guest": guest, "host": host, "arbiter": {}}, **params)
    assert isinstance(failed.value.errors.get("arbiter"), ModelHealthError), failed.value.errors
    assert "grew from 0.69" in str(failed.value.errors["arbiter"])
    assert "model" not in failed.value.outputs["guest"] and "model" not in failed.value.outputs["host"]


# ----- progress wording ----------------------------------------------------------------------------------


def test_time_elapsed_and_left_are_said_in_words() -> None:
    assert (
        duration_words(42) == "42 s"
        and duration_words(185) == "3 min 5 s"
        and duration_words(4320) == "1 h 12 min"
    )
    assert timing_words(1000.0, 0.25, now=1060.0) == "1 min 0 s elapsed, about 3 min 0 s left"
    assert timing_words(1000.0, 0.0, now=1010.0) == "10 s elapsed"
    row = _StepRow("train", "hetero_lr")
    row.started = time.time() - 30
    row.update(state="running", fraction=0.5, message="class 1/1, epoch 1, batch 2")
    assert "class 1/1, epoch 1, batch 2" in row.state.value
    assert "elapsed, about" in row.state.value and "left" in row.state.value


# ----- real runs on a sandbox ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fed(shared_sandbox: Federation) -> Iterator[Path]:
    """The suite's shared sandbox, with this module's tables (`pg`, `mg`, `ph`, `mh`) and project `health`."""
    root = shared_sandbox.root
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    plain_g, plain_h = _tables(copies=1)
    many_g, many_h = _tables(copies=10)
    guest.datasets.upload(plain_g, name="pg", id_column="id", label_column="y")
    guest.datasets.upload(many_g, name="mg", id_column="id", label_column="y")
    host.datasets.upload(plain_h, name="ph", id_column="id")
    host.datasets.upload(many_h, name="mh", id_column="id")
    guest.projects.propose(
        "health", partners="host", datasets=["pg", "mg"], jobs_per_day=1000, release="both"
    )
    host.projects.accept("health", datasets=["ph", "mh"])
    yield root


def _training(name: str, guest_data: str, host_data: str, **params: Any) -> Pipeline:
    return (
        Pipeline(name)
        .add("psi", "psi", inputs={"data": {"guest": guest_data, "host": host_data}})
        .add(
            "train",
            "hetero_lr",
            inputs={"train": Pipeline.ref("psi", "data")},
            key_bits=1024,
            label="y",
            **params,
        )
    )


@pytest.fixture(scope="module")
def runs(fed: Path) -> dict[str, Run]:
    """Three trainings, oldest first: healthy, weak (it learned almost nothing), diverged."""
    project = fedbench.connect(home=fed / "guest").project("health")
    healthy = project.run_pipeline(
        _training("healthy", "pg", "ph", epochs=5, batch_size=100, learning_rate=0.5)
    ).wait(show_progress=False)
    weak = project.run_pipeline(
        _training("weak", "pg", "ph", epochs=2, batch_size=0, learning_rate=0.002)
    ).wait(show_progress=False)
    diverged = project.run_pipeline(  # Taylor: the default's Newton steps do not diverge on redundant columns
        _training("diverged", "mg", "mh", epochs=8, batch_size=0, learning_rate=0.5, approximation="taylor")
    ).wait(show_progress=False, raise_on_error=False)
    return {"healthy": healthy, "weak": weak, "diverged": diverged}


def test_a_diverging_training_ends_failed_with_the_reason_on_both_parties(
    fed: Path, runs: dict[str, Run]
) -> None:
    run = runs["diverged"].refresh()
    assert run.info["state"] == "failed"
    error = str(run.info["error"])
    assert error.startswith("guest failed at step 'train': The loss grew from 0.693 to ")
    assert "lower learning_rate, e.g. 0.1" in error
    train = next(s for s in run.info["steps"] if s["step"] == "train")
    assert train["state"] == "failed"
    assert job_states(fed, "host", run.job_id) == ("failed", {"psi": "succeeded", "train": "failed"})
    host_run = fedbench.connect(home=fed / "host").project("health").run_by_id(run.job_id)
    host_error = str(host_run.info["error"])
    assert host_error.startswith("guest failed at step 'train': The loss grew"), host_error
    assert host_error.count("failed") == 1, "the party's failure is said once"
    with pytest.raises(Exception, match="its outputs exist once it has succeeded"):
        run.output("model")


def test_a_weak_training_succeeds_with_warnings_on_the_run(runs: dict[str, Run]) -> None:
    weak, healthy = runs["weak"], runs["healthy"]
    assert weak.status == "succeeded"
    assert weak.warnings and weak.warnings[0].startswith("train: The model learned almost nothing")
    assert "raise learning_rate" in weak.warnings[0]
    assert weak.output("metrics").value()["warnings"] == [w.removeprefix("train: ") for w in weak.warnings]
    assert healthy.status == "succeeded" and healthy.warnings == []
    assert run_state_words(weak.record) == "⚠ succeeded with warnings"
    assert run_state_words(healthy.record) == "succeeded"
    card = headline(None, weak.output("metrics").value())
    assert "trained with warnings" in card and "learned almost nothing" in card
    assert "warnings" not in headline(None, healthy.output("metrics").value())
    view = RunMonitor(weak, show_results=False)
    view.follow(timeout=60)
    assert "succeeded with warnings" in view.results.value and "learned almost nothing" in view.results.value
    assert "⚠" in weak._repr_html_()


def test_scoring_offers_the_newest_healthy_model_first_and_marks_the_warned_one(
    fed: Path, runs: dict[str, Run]
) -> None:
    app = scoring.app(fedbench.connect(home=fed / "guest"))
    assert isinstance(app, scoring.ScoringApp)
    app.choose_project("health")
    healthy = runs["healthy"].output("model").id
    weak = runs["weak"].output("model").id
    labels = {value: label for label, value in app.model.options}
    assert set(labels) == {healthy, weak}, "the diverged training's model is not offered at all"
    assert app.model.value == healthy, "a newer model trained with warnings is not picked by default"
    assert "⚠" in labels[weak] and "⚠" not in labels[healthy]
    app.choose_model(weak)
    assert "learned almost nothing" in app.model_info.value


def test_run_ids_as_the_dashboards_show_them_are_accepted(fed: Path, runs: dict[str, Run]) -> None:
    project = fedbench.connect(home=fed / "guest").project("health")
    run = runs["weak"]
    assert project.run_by_id(run.job_id[:8]).job_id == run.job_id
    assert project.run_by_id(run.job_id).job_id == run.job_id
    with pytest.raises(NotFound, match="or at least its first 8 characters"):
        project.run_by_id(run.job_id[:5])
    with pytest.raises(NotFound, match="no run of project 'health' has an id starting with"):
        project.run_by_id("zzzzzzzz")


def test_the_progress_bar_says_a_state_once(runs: dict[str, Run]) -> None:
    bar = _Bar(1, "run")
    try:
        bar.update_to(runs["healthy"], Event(type="job", state="succeeded"))
        assert str(bar._bar.postfix).strip(", ") == "succeeded"
        bar.update_to(runs["healthy"], Event(type="step", step="train", state="succeeded"))
        assert str(bar._bar.postfix).strip(", ") == "train succeeded"
    finally:
        bar.close()
