"""IPython magics: `%load_ext fedbench`, then `%fedbench status`, `%fedbench run ...`, `%fedbench dashboards`.

Each is a thin shell over the client API, the same calls a notebook makes, so a magic shows what
`fedbench.connect()` gives. Which node: `home=DIR` and `party=NAME` on the line, else `$FEDBENCH_HOME` (a
node home), else the sandbox (started if it is not running), as `fedbench.connect()` does.

    %fedbench status
    %fedbench run row_count data=credit min_rows=100 project=demo
    %fedbench dashboards

`run` values are read as JSON where they parse (`n=2000`, `force=true`, `cols='["a","b"]'`), else as text
(`data=credit`); arguments named like the component's inputs are inputs, the rest params (`Project.run`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_magic, magics_class

from fedbench.client.connect import connect
from fedbench.client.projects import Project
from fedbench.client.runs import Run, RunFailed
from fedbench.client.workbench import PeerStatus, Workbench
from fedbench.errors import ConfigError, FedbenchError
from fedbench.jupyter.links import DASHBOARDS_DIR, find_dashboards, running_server_for, voila_url

__all__ = ["FedbenchMagics", "parse_arguments", "register"]

USAGE = """\
%fedbench status                                  the node, its peers (pinged live), projects and datasets
%fedbench run COMPONENT key=value ... [project=P] run one component in a project and wait for it
%fedbench dashboards                              where the dashboards open
Every command takes home=DIR and party=NAME to pick the node (default: $FEDBENCH_HOME, else the sandbox)."""

_CONNECTION_KEYS = ("home", "party")


def parse_arguments(words: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Split magic words into positionals and `key=value` pairs, each value JSON when it parses, else text."""
    positional: list[str] = []
    named: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if not sep:
            if named:
                raise UsageError(f"{word!r} comes after key=value arguments; put it first")
            positional.append(word)
            continue
        if not key.isidentifier():
            raise UsageError(f"{key!r} is not a valid argument name (in {word!r})")
        try:
            named[key] = json.loads(raw)
        except ValueError:
            named[key] = raw
    return positional, named


@magics_class
class FedbenchMagics(Magics):
    """The `%fedbench` line magic; keeps one connection per (home, party) for the session."""

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self._workbenches: dict[tuple[str | None, str | None], Workbench] = {}

    @line_magic
    def fedbench(self, line: str) -> Any:
        """`%fedbench status | run COMPONENT key=value ... | dashboards` (no argument: help)."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot read {line!r}: {exc}") from None
        if not words or words[0] in ("help", "-h", "--help"):
            print(USAGE)
            return None
        command, rest = words[0], words[1:]
        positional, named = parse_arguments(rest)
        commands = {"status": self._status, "run": self._run, "dashboards": self._dashboards}
        if command not in commands:
            raise UsageError(f"unknown command {command!r}\n{USAGE}")
        try:
            return commands[command](positional, named)
        except RunFailed as exc:  # also of its cause's class (e.g. TooFewRows); the run failing is the news
            raise UsageError(f"RunFailed: {exc}") from None
        except FedbenchError as exc:
            raise UsageError(f"{type(exc).__name__}: {exc}") from None

    def workbench(self, home: str | None = None, party: str | None = None) -> Workbench:
        """The connection for `home` and `party` (defaults: $FEDBENCH_HOME, else the sandbox)."""
        home = home or os.environ.get("FEDBENCH_HOME") or None
        key = (home, party)
        if key not in self._workbenches:
            self._workbenches[key] = connect(party, home)
        return self._workbenches[key]

    def _connection(self, named: dict[str, Any]) -> Workbench:
        home, party = (named.pop(k, None) for k in _CONNECTION_KEYS)
        return self.workbench(None if home is None else str(home), None if party is None else str(party))

    def _status(self, positional: list[str], named: dict[str, Any]) -> None:
        wb = self._connection(named)
        _no_extra("status", positional, named)
        health = wb.health()
        print(f"fedbench {health['version']}: party {wb.party}, node at {wb.node.address} (up)")
        peers = wb.peers(timeout=3.0)
        for peer in peers:
            state = f"reachable, {peer.latency_ms} ms" if peer.reachable else _unreachable(peer)
            print(f"  peer {peer.party:<12} {peer.address:<22} {state}")
        if not peers:
            print("  no peers configured")
        projects = ", ".join(f"{p.name} ({p.state})" for p in wb.projects.list()) or "none yet"
        datasets = ", ".join(d.name for d in wb.datasets.list()) or "none yet"
        print(f"  projects: {projects}")
        print(f"  datasets: {datasets}")

    def _run(self, positional: list[str], named: dict[str, Any]) -> Run:
        if len(positional) != 1:
            raise UsageError("usage: %fedbench run COMPONENT key=value ... [project=NAME] [force=true]")
        wb = self._connection(named)
        project = _pick_project(wb, named.pop("project", None))
        force = bool(named.pop("force", False))
        run = project.run(positional[0], force=force, **named)
        return run.wait()

    def _dashboards(self, positional: list[str], named: dict[str, Any]) -> None:
        _no_extra("dashboards", positional, named)
        server = running_server_for(Path.cwd())
        roots = [Path(server["root_dir"])] if server else _candidate_roots()
        found = next(((root, paths) for root in roots if (paths := find_dashboards(root))), None)
        if found is None:
            print(
                f"no dashboards found (looked for {DASHBOARDS_DIR}/*.ipynb under {', '.join(map(str, roots))})"
            )
        elif server is not None:
            print(f"dashboards of the Jupyter server at {server['url']} (Voila renders them in JupyterLab):")
            for path in found[1]:
                print(f"  {Path(path).stem:<12} {voila_url(server['url'], path)}")
        else:
            print(
                f"dashboards in {found[0]} (no Jupyter server serves this folder; open them with Voila, "
                "with a token: a dashboard's kernel acts as your party):"
            )
            for path in found[1]:
                print(f"  {Path(path).stem:<12} voila --token {found[0] / path}")
        if importlib.util.find_spec("fedbench.cli.dashboards") is not None:
            print("standalone, outside JupyterLab: fedbench dashboards")


def _unreachable(peer: PeerStatus) -> str:
    """Why a peer did not answer, said once after its name ("not reachable: its node is stopped. Start it
    with ..."): the peer's error without its leading "<party> is not reachable"."""
    reason = peer.error or ""
    lead = f"{peer.party} is not reachable"
    if reason.startswith(lead):
        reason = reason[len(lead) :].lstrip(" :")
    return f"not reachable: {reason}" if reason else "not reachable"


def _no_extra(command: str, positional: list[str], named: dict[str, Any]) -> None:
    if positional or named:
        extra = positional + [f"{k}=" for k in named]
        raise UsageError(f"%fedbench {command} takes only home= and party=, not {', '.join(extra)}")


def _pick_project(wb: Workbench, name: Any) -> Project:
    """`project=` if given, else our only active project, else the sandbox's `demo`."""
    if name is not None:
        return wb.project(str(name))
    projects = wb.projects.list()
    active = [p for p in projects if p.state == "active"]
    if len(active) == 1:
        return active[0]
    if any(p.name == "demo" for p in active):
        return wb.project("demo")
    known = ", ".join(f"{p.name} ({p.state})" for p in projects) or "none"
    raise UsageError(f"say which project with project=NAME; this node's projects: {known}")


def _candidate_roots() -> list[Path]:
    """Where dashboards may be without a server: this folder, its parents, and the package's checkout."""
    here = Path.cwd().resolve()
    roots = [here, *here.parents]
    checkout = Path(__file__).resolve().parent.parent
    if checkout not in roots:
        roots.append(checkout)
    return roots


def register(ipython: object) -> None:
    """Register the `%fedbench` magics in an IPython shell (what `%load_ext fedbench` calls)."""
    if not isinstance(ipython, InteractiveShell):
        raise ConfigError(f"the fedbench magics need an IPython shell, not a {type(ipython).__name__}")
    ipython.register_magics(FedbenchMagics)
