"""The rogue-peer harness itself: only the rogue node (and its workers) runs the patched code."""

from __future__ import annotations

from pathlib import Path

from rogue import restart_rogue, rogue_sandbox

import fedbench
from fedbench import sandbox


def test_only_the_rogue_node_and_its_workers_run_patched_code(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    federation = rogue_sandbox(
        root, patches=["fb_rogue_probe"], settings={"claimed_rows": 123456}, rogue="host"
    )
    try:
        wb = fedbench.connect(home=federation.home("guest").root)
        project = wb.project("demo")
        rows = project.run("row_count", data="credit").wait().output("metrics").value()["rows"]
        assert rows["host"] == 123456
        restart_rogue(root, {}, rogue="host")
        rows = project.run("row_count", data="credit", force=True).wait().output("metrics").value()["rows"]
        assert rows["host"] != 123456 and rows["host"] > 0
    finally:
        sandbox.down(root)
