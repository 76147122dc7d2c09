"""The rogue-peer harness: a real sandbox where one party's node runs modified code against unmodified peers.

A deviating party is played in one of two ways, both over real mutual TLS:

* **Raw requests** from the test process holding the party's certificate (`Federation.peer_client`), for
  attacks on the negotiation and admission messages themselves.
* **A patched node** (`rogue_sandbox`): the rogue party's node and its worker processes import extra modules
  from `tests/plugins/` (named `fb_rogue_<topic>.py`) that replace protocol functions at import time. Each
  such module reads what to do from `rogue_settings()` (the JSON in `$FB_ROGUE`, set only for the rogue
  node), so one module can play several deviations. The victim's node is never patched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from conftest import PLUGINS, Federation, up_with_test_components

from fedbench import sandbox
from fedbench.client.runs import TERMINAL
from fedbench.node.config import NodeHome

ROGUE_ENV = "FB_ROGUE"
"""The environment variable that carries a rogue node's settings (JSON) to the node and its workers."""
ROGUE_FILE_ENV = "FB_ROGUE_FILE"
"""The variable naming the rogue's settings file, which wins over `ROGUE_ENV` (see `reconfigure_rogue`)."""


def rogue_sandbox(
    root: Path,
    *,
    patches: list[str],
    settings: dict[str, Any] | None = None,
    rogue: str = "guest",
    demo_data: bool = True,
    arbiter: bool = False,
) -> Federation:
    """Start a sandbox at `root` in which `rogue`'s node imports `patches` (modules of tests/plugins).

    Every node also loads the test components. Call `restart_rogue` to change the settings between attacks
    and `sandbox.down(root)` when done.
    """
    up_with_test_components(root, demo_data=demo_data, arbiter=arbiter)
    home = NodeHome(root / rogue)
    config = home.load_config()
    config.component_modules = [*config.component_modules, *patches]
    home.save_config(config)
    restart_rogue(root, settings or {}, rogue=rogue)
    return Federation(root)


def restart_rogue(root: Path, settings: dict[str, Any], *, rogue: str = "guest") -> None:
    """Restart the rogue party's node (only it) with new settings; the other nodes keep running."""
    for node in sandbox.status(root):
        if node.party == rogue and node.pid is not None:
            sandbox._terminate(node.pid, 15.0)
            NodeHome(node.home).pid_file.unlink(missing_ok=True)
    saved = {name: os.environ.get(name) for name in (ROGUE_ENV, ROGUE_FILE_ENV, "PYTHONPATH")}
    os.environ[ROGUE_ENV] = json.dumps(settings)
    os.environ[ROGUE_FILE_ENV] = str(_settings_file(root, rogue))
    _settings_file(root, rogue).write_text(json.dumps(settings))
    os.environ["PYTHONPATH"] = PLUGINS + (os.pathsep + saved["PYTHONPATH"] if saved["PYTHONPATH"] else "")
    try:
        sandbox.up(root, demo_data=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def reconfigure_rogue(root: Path, settings: dict[str, Any], *, rogue: str = "guest") -> None:
    """Change the running rogue's deviation for the steps it starts from now on, without a restart.

    Only for deviations played in a step's worker (a fresh process per step in the suite's sandboxes, which
    keep no warm workers): the worker imports the patch modules anew and reads these settings. A deviation of
    the node process itself needs `restart_rogue`.
    """
    pool = NodeHome(root / rogue).load_config().warm_workers
    if pool:
        raise AssertionError(
            f"the rogue {rogue!r} keeps {pool} warm workers, which would keep their old settings: start its "
            "sandbox with warm_workers=0 (the suite's default) or use restart_rogue"
        )
    _settings_file(root, rogue).write_text(json.dumps(settings))


def _settings_file(root: Path, rogue: str) -> Path:
    return NodeHome(root / rogue).root / "rogue-settings.json"


def victim_run_ended(project: Any, job_id: str, timeout: float = 300.0) -> str:
    """Wait until the victim's own record of a job is final and return its state.

    The attacker's run can fail (on the victim's error message) before the victim's node has written the
    refusal to its audit log; the victim audits before it marks the job ended, so a test reads the audit
    only after this returns.
    """
    deadline = time.monotonic() + timeout
    while (state := project.run_by_id(job_id).status) not in TERMINAL:
        if time.monotonic() > deadline:
            raise AssertionError(f"the victim's run {job_id} is still {state!r} after {timeout:.0f} s")
        time.sleep(0.2)
    return state
