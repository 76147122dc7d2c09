"""Model export and import between real nodes: round trip, use as a step input, and every refusal.

A `preprocess` model of the sandbox's `demo` project is exported by each party, imported back and used as the
`fitted` input of a new run; files of another project or party, altered files and files that are not models
are refused (and audited), and an artifact of one project is never an input of another project's job.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest
from conftest import TEST_DEMO_ROWS, Federation

import fedbench
from fedbench import sandbox
from fedbench.cli import main
from fedbench.errors import FedbenchError, ModelFileError, Refused
from fedbench.pipeline import PipelineError


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """Guest and host with the demo data, the `demo` project and a second project `other` on the same data."""
    root = tmp_path_factory.mktemp("models")
    sandbox.up(root, demo_rows=TEST_DEMO_ROWS)
    guest, host = fedbench.connect(home=root / "guest"), fedbench.connect(home=root / "host")
    guest.projects.propose("other", partners="host", datasets=["credit"], jobs_per_day=100)
    host.projects.accept("other", datasets=["credit"])
    yield root
    sandbox.down(root)


@pytest.fixture(scope="module")
def fitted(fed):
    """A preprocess run of the demo project, whose `model` output each party holds its own part of."""
    project = fedbench.connect(home=fed / "guest").project("demo")
    return project.run("preprocess", data="credit", fill="mean", scale="standard").wait(show_progress=False)


def _project(root, party: str, name: str = "demo") -> fedbench.Project:
    return fedbench.connect(home=root / party).project(name)


def _exported(root, party: str, fitted, path) -> dict:
    _project(root, party).export_model(fitted.output("model"), path)
    return json.loads(path.read_text())


def test_export_writes_our_part_with_its_origin_and_hash(fed, fitted, tmp_path):
    document = _exported(fed, "guest", fitted, tmp_path / "guest.json")
    demo = _project(fed, "guest").info
    value = base64.b64decode(document["value"])
    assert document["format"] == "fedbench-model" and document["kind"] == "model"
    assert document["project"] == {"id": demo["id"], "name": "demo"}
    assert document["party"] == "guest"
    assert document["artifact"]["id"] == fitted.output("model").id
    assert (document["artifact"]["step"], document["artifact"]["component"]) == ("preprocess", "preprocess")
    assert document["sha256"] == hashlib.sha256(value).hexdigest()
    assert document["created_at"] and document["exported_at"] and document["seal"]
    audit = fedbench.connect(home=fed / "guest").audit("demo")
    assert (audit["action"] == "models.export").any()


def test_import_round_trips_and_lists_as_a_model_of_the_project(fed, fitted, tmp_path):
    document = _exported(fed, "guest", fitted, tmp_path / "guest.json")
    project = _project(fed, "guest")
    imported = project.import_model(tmp_path / "guest.json")
    assert imported.kind == "model" and imported.id.startswith("import-") and imported.id.endswith(":model")
    assert imported.as_ref() == {"artifact": imported.id}
    listed = project.artifacts().set_index("id").loc[imported.id]
    assert (listed["kind"], listed["name"]) == ("model", "model")
    assert json.dumps(imported.value(), sort_keys=True) == json.dumps(
        fitted.output("model").value(), sort_keys=True
    )
    again = project.import_model(tmp_path / "guest.json")
    assert again.id == imported.id, "importing the same file twice stores it once"
    assert document["sha256"] == hashlib.sha256(base64.b64decode(document["value"])).hexdigest()
    renamed = project.import_model(tmp_path / "guest.json", name="prep_v1")
    assert renamed.id.endswith(":prep_v1") and renamed.id != imported.id


def test_each_partys_imported_part_feeds_a_step_on_both_sides(fed, fitted, tmp_path):
    for party in ("guest", "host"):
        _project(fed, party).export_model(fitted.output("model"), tmp_path / f"{party}.json")
    ids = {
        party: _project(fed, party).import_model(tmp_path / f"{party}.json").id for party in ("guest", "host")
    }
    assert ids["guest"] == ids["host"], (
        "the same model imported under the same name has one id on every party"
    )
    demo = _project(fed, "guest")
    imported = demo.import_model(tmp_path / "guest.json")
    applied = demo.run("preprocess", data="credit", fitted=imported).wait(show_progress=False)
    original = demo.run("preprocess", data="credit", fitted=fitted.output("model")).wait(show_progress=False)
    assert applied.output("data").to_pandas().equals(original.output("data").to_pandas())


def test_a_file_of_another_project_is_refused(fed, fitted, tmp_path):
    _exported(fed, "guest", fitted, tmp_path / "guest.json")
    other = _project(fed, "guest", "other")
    with pytest.raises(ModelFileError, match="made in project 'demo'.*cannot be used in another"):
        other.import_model(tmp_path / "guest.json")
    refusals = fedbench.connect(home=fed / "guest").audit("other")
    refused = refusals[(refusals["action"] == "models.import") & ~refusals["allowed"]]
    assert refused["reason"].str.contains("cannot be used in another").any()


def test_a_file_relabelled_for_another_project_is_refused(fed, fitted, tmp_path):
    document = _exported(fed, "guest", fitted, tmp_path / "guest.json")
    other = _project(fed, "guest", "other")
    document["project"] = {"id": other.info["id"], "name": "other"}
    (tmp_path / "relabelled.json").write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="seal does not match"):
        other.import_model(tmp_path / "relabelled.json")


def test_a_file_of_another_party_is_refused(fed, fitted, tmp_path):
    _exported(fed, "guest", fitted, tmp_path / "guest.json")
    with pytest.raises(ModelFileError, match="only 'guest' can import it"):
        _project(fed, "host").import_model(tmp_path / "guest.json")


def test_an_altered_file_is_refused(fed, fitted, tmp_path):
    document = _exported(fed, "guest", fitted, tmp_path / "guest.json")
    value = bytearray(base64.b64decode(document["value"]))
    value[-1] ^= 1
    altered = {**document, "value": base64.b64encode(bytes(value)).decode()}
    (tmp_path / "altered.json").write_text(json.dumps(altered))
    project = _project(fed, "guest")
    with pytest.raises(ModelFileError, match="does not match its sha256"):
        project.import_model(tmp_path / "altered.json")
    rehashed = {**altered, "sha256": hashlib.sha256(bytes(value)).hexdigest()}
    (tmp_path / "rehashed.json").write_text(json.dumps(rehashed))
    with pytest.raises(ModelFileError, match="seal does not match"):
        project.import_model(tmp_path / "rehashed.json")
    renamed = {**document, "artifact": {**document["artifact"], "step": "something-else"}}
    (tmp_path / "renamed.json").write_text(json.dumps(renamed))
    with pytest.raises(ModelFileError, match="seal does not match"):
        project.import_model(tmp_path / "renamed.json")


def test_what_is_not_a_model_file_is_refused(fed, fitted, tmp_path):
    project = _project(fed, "guest")
    fitted.output("data").download(tmp_path / "data.csv")
    with pytest.raises(ModelFileError, match="not a fedbench model file"):
        project.import_model(tmp_path / "data.csv")
    document = _exported(fed, "guest", fitted, tmp_path / "guest.json")
    (tmp_path / "metrics.json").write_text(json.dumps({**document, "kind": "metrics"}))
    with pytest.raises(ModelFileError, match="holds a 'metrics', not a model"):
        project.import_model(tmp_path / "metrics.json")
    (tmp_path / "extra.json").write_text(json.dumps({**document, "pickle": "gASV"}))
    with pytest.raises(ModelFileError, match="malformed"):
        project.import_model(tmp_path / "extra.json")
    with pytest.raises(ModelFileError, match="is a table, not a model"):
        project.export_model(fitted.output("data"), tmp_path / "table.json")


def test_an_artifact_of_another_project_is_not_a_job_input(fed, fitted):
    other = _project(fed, "guest", "other")
    model = fitted.output("model")
    with pytest.raises(PipelineError, match="holds no artifact .* in project 'other'.*never used in another"):
        other.run("preprocess", data="credit", fitted={"artifact": model.id})
    assert other.runs().empty, "refused before any job was recorded"


def test_a_partner_refuses_another_projects_artifact_even_if_the_initiator_does_not_check(fed, fitted):
    """A raw job request from the guest's certificate, bypassing the guest's node: the host alone refuses."""
    other = _project(fed, "guest", "other").info
    token = (fed / "guest" / "secrets" / f"project-{other['id']}.token").read_text()
    step = {
        "name": "preprocess",
        "component": "preprocess",
        "params": {},
        "inputs": {"data": {"dataset": "credit"}, "fitted": {"artifact": fitted.output("model").id}},
        "key": "0" * 40,
    }
    job_id = uuid.uuid4().hex
    spec = {
        "job_id": job_id,
        "project": other["id"],
        "name": "preprocess",
        "roles": {"guest": ["guest"], "host": ["host"]},
        "force": False,
        "uses": ["train"],
        "datasets": {"guest": ["credit"], "host": ["credit"]},
        "psi_rows": {},
        "steps": [step],
    }
    body = {
        "job_id": job_id,
        "use": "train",
        "uses": ["train"],
        "datasets": spec["datasets"],
        "psi_rows": {},
        "spec": spec,
    }
    with pytest.raises(Refused, match="'host' holds no artifact .* in project 'other'"):
        Federation(fed).peer_client("guest", "host").request(
            "job.submit", body, project=other["id"], token=token
        )


def test_model_export_and_import_from_the_command_line(fed, fitted, tmp_path, capsys):
    path = tmp_path / "cli.json"
    model = fitted.output("model").id
    args = ["--project", "demo", "--home", str(fed), "--party", "host"]
    assert main(["model", "export", model, str(path), *args]) == 0
    assert json.loads(path.read_text())["party"] == "host"
    assert main(["model", "import", str(path), "--name", "from_cli", *args]) == 0
    assert ":from_cli" in capsys.readouterr().out
    assert (
        main(["model", "import", str(path), "--project", "other", "--home", str(fed), "--party", "host"]) == 2
    )
    assert "cannot be used in another" in capsys.readouterr().err


def test_a_viewer_may_export_but_not_import(fed, fitted, tmp_path):
    admin = fedbench.connect(home=fed / "guest")
    viewer = fedbench.connect(home=fed / "guest", token=admin.add_user(f"v{uuid.uuid4().hex[:6]}", "viewer"))
    admin.project("demo").add_member(viewer.whoami()["name"])
    viewer.project("demo").export_model(fitted.output("model"), tmp_path / "v.json")
    with pytest.raises(FedbenchError, match="needs the analyst role"):
        viewer.project("demo").import_model(tmp_path / "v.json")
