"""What a sandbox's start and stop cost: `sandbox.up` then `sandbox.down`, against a baseline commit in the same run.

Each round runs a fresh Python that makes a sandbox (no demo data), brings it up, times the `up`, and takes it
down, once for 2 parties (guest, host) and once for 3 (with the arbiter). Its CPU seconds count every process it
started (nodes, their fork servers, the process the nodes are forked from), adopted and reaped by this process
(a child subreaper, as in `suite_cpu.py`). The baseline is the same script run on the files of commit REF
(`git archive`, through PYTHONPATH), alternating with this tree round by round so both see the same load.

Run: `python benchmarks/sandbox_start.py --baseline REF [--rounds 5] [--record]`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, median, record  # noqa: E402
from suite_cpu import ROOT, baseline_tree, become_subreaper, run_counted  # noqa: E402

UP_AND_DOWN = """
import sys, tempfile, time
from pathlib import Path
from fedbench import sandbox
root = Path(tempfile.mkdtemp(prefix="fb-start-"))
started = time.monotonic()
sandbox.up(root, demo_data=False, arbiter=sys.argv[1] == "3")
print(f"up_s={time.monotonic() - started:.3f}")
sandbox.down(root)
"""
LOGS = Path(tempfile.gettempdir()) / "sandbox_start"


def one_round(parties: int, root: Path) -> tuple[float, float, float]:
    """(CPU seconds, `up` wall seconds, up-and-down wall seconds) of one sandbox of `parties` nodes."""
    log = LOGS / f"{'here' if root == ROOT else 'baseline'}-{parties}.log"
    run = run_counted([sys.executable, "-c", UP_AND_DOWN, str(parties)], log, root)
    up = re.search(r"up_s=([0-9.]+)", log.read_text())
    if run.exit_code != 0 or up is None:
        raise SystemExit(f"the sandbox of {parties} did not come up ({root}); see {log}")
    return run.user_s + run.system_s, float(up[1]), run.wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, metavar="REF", help="the git commit to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    become_subreaper()
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        baseline = baseline_tree(args.baseline, Path(scratch))
        for parties in (2, 3):
            figures: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "here": []}
            for _ in range(args.rounds):
                figures["baseline"].append(one_round(parties, baseline))
                figures["here"].append(one_round(parties, ROOT))
            old, new = (
                [median([r[i] for r in figures[tree]]) for i in range(3)] for tree in ("baseline", "here")
            )
            rows.append(
                [
                    parties,
                    f"{old[0]:.2f}",
                    f"{new[0]:.2f}",
                    f"{new[0] / old[0]:.2f}",
                    f"{old[1]:.2f}",
                    f"{new[1]:.2f}",
                    f"{old[2]:.2f}, {new[2]:.2f}",
                ]
            )
    table = markdown_table(
        [
            "nodes",
            f"CPU s at {args.baseline}",
            "CPU s here",
            "ratio",
            f"`up` wall s at {args.baseline}",
            "`up` wall s here",
            "up+down wall s (baseline, here)",
        ],
        rows,
    )
    notes = (
        f"Medians of {args.rounds} rounds each, baseline and this tree alternating; no demo data; CPU of every "
        f"process started (adopted by a child subreaper); load average (1 min) {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after."
    )
    if args.record:
        record("Sandbox start and stop: CPU and wall seconds, against a baseline commit", table, notes)
    else:
        print(table + "\n\n" + notes)


if __name__ == "__main__":
    main()
