"""Start several nodes from one process that imported the node's modules once: how the sandbox starts its nodes.

A node started with `fedbench node start` spends about a second of CPU importing the package, SQLAlchemy,
pandas and gRPC, and its fork server (`fork_server.start_early`) a fifth of a second more for the rest of the
step workers' modules; a sandbox of three parties paid that three times, on a machine of two cores. Here
`python -m fedbench.sandbox_zygote HOME...` imports all of it once, then forks one child per node home while it
still runs one Python thread and holds no server, channel or database connection (as `start_early` does). Each
child becomes a session of its own, writes its output to its home's `node.log`, and runs `fedbench node start
--home HOME` from there: the same start, error handling and exit codes as a node started on its own.

This process prints each child's pid on a line as it forks it (the caller follows each node from its first
moment), then closes its standard output, and stays as the nodes' parent until the last one exits: it reaps each
and writes how it ended to its log, so an exited node is never left a zombie and a failed start says its exit
code. Its own start-up errors go to its standard error (the sandbox points that at the first node's log).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from fedbench.node.config import NodeHome
from fedbench.node.fork_server import name_this_process
from fedbench.node.worker_pool import WARM_MODULES

__all__ = ["NAME", "fork_nodes", "import_node_modules", "main"]

NAME = "fb-sandbox"
"""This process's name as `ps` and `top` show it; each node it forks is named `fb-node`."""


def main(homes: list[str]) -> int:
    """Fork a node for each home in `homes`, print their pids, then reap them; returns once all have exited."""
    name_this_process(NAME)
    import_node_modules()
    return fork_nodes(homes)


def import_node_modules() -> None:
    """Import what a node and its step workers' fork server need, so that each node forked afterwards has it."""
    importlib.import_module("fedbench.cli")
    for module in ("fedbench.node.server", *WARM_MODULES):
        importlib.import_module(module)


def fork_nodes(homes: Sequence[str]) -> int:
    """Fork a node for each home (the modules imported already), print their pids, close standard output, then
    reap the nodes; returns once all have exited."""
    from fedbench.cli import main as cli_main

    children: dict[int, Path] = {}
    for home in homes:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _become_node(Path(home), cli_main)
        children[pid] = Path(home)
        print(pid, flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)  # the caller reads our pids until end-of-file
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    while children:
        pid, status = os.wait()
        ended = children.pop(pid, None)
        if ended is not None:
            with open(NodeHome(ended).log_file, "a") as log:
                log.write(f"fedbench: the node's process {pid} {_how_it_ended(status)}\n")
    return 0


def _become_node(home: Path, cli_main: Callable[[Sequence[str]], int]) -> None:
    """In the forked child: detach, send output to the home's log, and run `fedbench node start` there."""
    code = 1
    try:
        os.setsid()
        os.chdir(home)
        name_this_process("fb-node")
        log = os.open(NodeHome(home).log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(devnull)
        code = cli_main(["node", "start", "--home", str(home)])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)


def _how_it_ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # as a node leaves: tearing down pandas, SQLAlchemy and gRPC would only cost CPU
