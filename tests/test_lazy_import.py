"""`import fedbench` is cheap: the client, the sandbox and the heavy libraries load on first use of a name.

A node's worker processes and the CLI import the package first of all; what `import fedbench` pulls in is
paid by every one of them. Checked in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import fedbench

HEAVY = ("pandas", "sqlmodel", "grpc", "fedbench.client", "fedbench.sandbox")


def _fresh(code: str) -> dict[str, object]:
    """Run `code` in a new interpreter; it prints one JSON value, returned decoded."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_fedbench_loads_none_of_the_heavy_modules() -> None:
    found = _fresh(
        "import json, sys, fedbench\n"
        f"print(json.dumps({{'loaded': [m for m in {list(HEAVY)!r} if m in sys.modules]}}))"
    )
    assert found["loaded"] == []


def test_every_public_name_resolves_and_is_the_object_its_module_defines() -> None:
    found = _fresh(
        "import json, fedbench\n"
        "names = {n: type(getattr(fedbench, n)).__name__ for n in fedbench.__all__}\n"
        "print(json.dumps({'names': names, 'dir': sorted(set(fedbench.__all__) - set(dir(fedbench)))}))"
    )
    assert set(found["names"]) == set(fedbench.__all__)  # type: ignore[arg-type]
    assert found["dir"] == []
    from fedbench.client import Workbench, connect
    from fedbench.errors import PeerUnavailable

    assert fedbench.connect is connect
    assert fedbench.Workbench is Workbench
    assert fedbench.PeerUnavailable is PeerUnavailable
    from fedbench import Project as FromImport

    assert FromImport is fedbench.client.Project


def test_an_unknown_name_is_an_attribute_error_that_names_it() -> None:
    try:
        fedbench.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("fedbench.no_such_thing resolved")
