"""The plainly-wrong items of issue #16: step timeouts from the node's config, control-API argument errors, and
the PSI release policy written once.

One sandbox (guest with short timeouts in its node.json, host with the defaults) serves the tests that need
real nodes.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATABASE_URL, PLUGINS, Federation

import fedbench
from fedbench import sandbox
from fedbench.errors import ConfigError
from fedbench.node.config import NodeConfig
from fedbench.node.control import _invoke

PACKAGE = Path(fedbench.__file__).parent
GUEST_RECV_TIMEOUT = 5.0
GUEST_SEND_DEADLINE = 7.0


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """guest and host with the demo project and the `wait_for_peer` component; guest's timeouts configured."""
    root = tmp_path_factory.mktemp("plain")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = PLUGINS + (os.pathsep + old if old else "")
    try:
        sandbox.up(root, demo_data=True, component_modules=["fb_test_waits"], database_url=DATABASE_URL)
        sandbox.down(root)
        federation = Federation(root)
        config_file = federation.home("guest").config_file
        settings = json.loads(config_file.read_text())
        settings.update(recv_timeout=GUEST_RECV_TIMEOUT, send_deadline=GUEST_SEND_DEADLINE)
        config_file.write_text(json.dumps(settings))
        sandbox.up(root, demo_data=False)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    yield federation
    sandbox.down(root)


def test_node_config_has_step_timeouts_with_documented_defaults():
    fields = NodeConfig.model_fields
    assert fields["recv_timeout"].default == 600.0 and fields["recv_timeout"].description
    assert fields["send_deadline"].default == 120.0 and fields["send_deadline"].description
    with pytest.raises(ValueError):
        NodeConfig(party="guest", federation_port=1, control_port=2, recv_timeout=0)


def test_a_step_waits_the_recv_timeout_its_node_is_configured_with(fed):
    guest = fedbench.connect(home=fed.home("guest").root).project("demo")
    run = guest.run("wait_for_peer", data="credit")
    # The guest's step waits for a message the host never sends: it must fail after the guest's configured
    # 5 s, long before this generous wait (the default would be 600 s).
    run.wait(timeout=120, show_progress=False, raise_on_error=False)
    assert run.info["state"] == "failed", run.info
    assert "no message from 'host'" in str(run.info["error"])
    seen = {(m["party"], m["name"]): m["value"] for m in run.metrics.to_dict("records")}
    assert seen[("guest", "recv_timeout")] == GUEST_RECV_TIMEOUT
    assert seen[("guest", "send_deadline")] == GUEST_SEND_DEADLINE
    host = fedbench.connect(home=fed.home("host").root).project("demo")
    host_seen = {m["name"]: m["value"] for m in host.run_by_id(run.job_id).metrics.to_dict("records")}
    assert host_seen == {"recv_timeout": 600.0, "send_deadline": 120.0}


def test_a_control_call_with_wrong_arguments_is_a_config_error_naming_the_method(fed):
    client = fed.client("guest")
    with pytest.raises(ConfigError, match=r"'peers'.*'colour'"):
        client.call("peers", colour="blue")
    with pytest.raises(ConfigError, match=r"'runs.get'.*job_id"):
        client.call("runs.get")


def test_a_type_error_inside_a_method_is_a_real_error_not_bad_arguments():
    def method(caller: str, count: int) -> int:
        return len(count)  # type: ignore[arg-type]  # a bug inside the method: "object of type 'int' ..."

    def mentions_argument(caller: str) -> None:
        raise TypeError("unsupported argument type for the engine")

    with pytest.raises(TypeError, match="has no len"):
        _invoke("demo.method", method, {"caller": "me", "count": 3})
    with pytest.raises(TypeError, match="unsupported argument"):
        _invoke("demo.other", mentions_argument, {"caller": "me"})
    with pytest.raises(ConfigError, match=r"'demo.method'.*count"):
        _invoke("demo.method", method, {"caller": "me"})
    assert _invoke("demo.method", lambda caller, count=1: count * 2, {"caller": "me", "count": 4}) == 8


# ----- the PSI release policy, written once ------------------------------------------------------------------


def test_who_receives_rows_and_which_policy_is_narrower():
    from fedbench.psi import release

    assert release.RELEASES == ("both", "initiator", "partner", "count_only")
    assert release.released_to("both", ("g", "h"), "g") == ("g", "h")
    assert release.released_to("initiator", ("g", "h"), "g") == ("g",)
    assert release.released_to("partner", ("g", "h"), "g") == ("h",)
    assert release.released_to("count_only", ("g", "h"), "g") == ()
    assert release.released_to("no such policy", ("g", "h"), "g") == ()
    assert release.receives_rows("initiator", "initiator") and not release.receives_rows(
        "initiator", "partner"
    )
    assert not release.releases_rows("count_only") and release.releases_rows("partner")
    assert set(release.within("both")) == set(release.RELEASES)
    assert set(release.within("initiator")) == {"initiator", "count_only"}
    assert set(release.within("partner")) == {"partner", "count_only"}
    assert release.within("count_only") == ("count_only",)
    assert set(release.LABELS) == set(release.RELEASES)


def test_every_module_takes_the_release_policy_from_one_place():
    from fedbench.components.builtin.psi import PsiParams
    from fedbench.node.terms import ProjectTerms
    from fedbench.psi import release
    from fedbench.ui.dashboards.projects import RELEASE_LABELS

    terms = ProjectTerms.model_json_schema()["properties"]["release"]
    assert tuple(terms["enum"]) == release.RELEASES
    assert tuple(PsiParams.model_json_schema()["properties"]["release"]["enum"]) == (
        "project",
        *release.RELEASES,
    )
    assert fedbench.psi.RELEASES is release.RELEASES
    assert RELEASE_LABELS is release.LABELS
    owners = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path != PACKAGE / "psi" / "release.py" and "count_only" in _string_constants(path)
    )
    assert owners == [], f"release policy names written outside fedbench/psi/release.py: {owners}"


def _string_constants(path: Path) -> set[str]:
    """The string constants a module's code uses (docstrings and other bare string statements left out)."""
    tree = ast.parse(path.read_text())
    bare = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare
    }
