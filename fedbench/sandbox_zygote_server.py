"""A long-lived `fedbench.sandbox_zygote`: one process that imports the node's modules once and forks the
starter of every sandbox asked of it, for a program that brings up many sandboxes (a test suite, a benchmark).

Each `sandbox.up` otherwise starts a fresh `python -m fedbench.sandbox_zygote`, which spends about three
quarters of a CPU second importing the node's modules before it forks the nodes. When `$FEDBENCH_SANDBOX_ZYGOTE`
names the socket of a running server (`start`), `sandbox.up` sends it the node homes, its own environment and
working directory instead; the server forks a child that takes them on, becomes a session of its own and does
exactly what `sandbox_zygote` does (forks the nodes, sends their pids back, reaps them and logs how they ended).
When the socket does not answer, or the caller runs another Python or fedbench, or `PYTHON*` settings that act
only as an interpreter starts, `sandbox.up` starts its own `sandbox_zygote` as before.

The server runs one Python thread and holds no channel or database connection, so every fork of it is as
clean as a fresh `sandbox_zygote`. The socket lives in a directory only its user can enter (whoever can connect
can run a node as that user). The server exits on SIGTERM, or once the process that started it has exited.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["ENV", "NAME", "request", "serve", "start"]

ENV = "FEDBENCH_SANDBOX_ZYGOTE"
"""The socket of a running server; `sandbox.up` forks its nodes through it when set."""
NAME = "fb-zygote"
"""The server's name as `ps` and `top` show it; the child it forks per sandbox is named `fb-sandbox`."""
_SOCKET = "zygote.sock"
_READY = "ready"


def start(directory: str | os.PathLike[str]) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a server whose socket is in `directory` (made private to this user); returns it and the socket's
    path once it accepts requests. Stop it with `terminate()`: the sandboxes it started keep running."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / _SOCKET
    server = subprocess.Popen(
        [sys.executable, "-m", "fedbench.sandbox_zygote_server", str(path), str(os.getpid())],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=folder,
    )
    assert server.stdout is not None
    with server.stdout:
        first = server.stdout.readline().decode().strip()
    if first != _READY:
        server.kill()
        server.wait()
        raise RuntimeError(f"the sandbox zygote server did not start (exit code {server.returncode})")
    return server, path


def request(path: str | os.PathLike[str], homes: list[str], cwd: Path, errors: Path) -> list[int] | None:
    """Ask the server at `path` to fork nodes for `homes`, run from `cwd` with this process's environment, its
    start-up errors appended to `errors`; their pids, or None when no server answers there."""
    message = {
        "homes": homes,
        "cwd": str(cwd),
        "errors": str(errors),
        "env": dict(os.environ),
        "python": _interpreter(),
    }
    try:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(60.0)
            connection.connect(str(path))
            connection.sendall(json.dumps(message).encode() + b"\n")
            answer = b""
            while chunk := connection.recv(4096):
                answer += chunk
    except OSError:
        return None
    return [int(line) for line in answer.decode().split() if line.isdigit()]


def serve(path: Path, starter: int) -> None:
    """Import the node's modules, then fork a sandbox starter per request until SIGTERM or `starter` exits."""
    from fedbench import sandbox_zygote
    from fedbench.node.fork_server import name_this_process

    name_this_process(NAME)
    sandbox_zygote.import_node_modules()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen()
        listener.settimeout(1.0)
        ours = _interpreter()
        print(_READY, flush=True)
        _close_stdout()
        while os.getppid() == starter:
            _reap()
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(10.0)
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # a malformed request
                    message = json.loads(_read_line(connection))
                    if message["python"] == ours and _same_interpreter_settings(message["env"]):
                        _fork_starter(listener, connection, message)


def _fork_starter(listener: socket.socket, connection: socket.socket, message: dict[str, Any]) -> None:
    """Fork the child that starts one sandbox's nodes (as `sandbox_zygote` does), its standard output the
    connection: the caller reads the nodes' pids from it until end-of-file."""
    from fedbench import sandbox_zygote
    from fedbench.node.fork_server import name_this_process

    if os.fork() != 0:
        return
    code = 1
    try:
        listener.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        name_this_process(sandbox_zygote.NAME)
        os.chdir(message["cwd"])
        _adopt_python_path(message["env"].get("PYTHONPATH", ""))
        os.environ.clear()
        os.environ.update(message["env"])
        errors = os.open(message["errors"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(errors, 2)
        os.close(errors)
        os.dup2(connection.fileno(), 1)
        connection.close()
        code = sandbox_zygote.fork_nodes(message["homes"])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _interpreter() -> list[str]:
    """This Python and the fedbench package it imports: a caller running another (a virtual environment, another
    checkout) gets no fork, its nodes would run our code."""
    import fedbench

    return [sys.executable, str(Path(fedbench.__file__).resolve().parent)]


def _same_interpreter_settings(env: dict[str, str]) -> bool:
    """Whether the caller's `PYTHON*` variables (but `PYTHONPATH`, which the starter adopts) are ours: the rest
    take effect only as an interpreter starts, so a caller with others gets no fork and starts its own zygote."""
    differ = {
        name
        for name in {*env, *os.environ}
        if name.startswith("PYTHON") and name != "PYTHONPATH" and env.get(name) != os.environ.get(name)
    }
    return not differ


def _adopt_python_path(python_path: str) -> None:
    """Make `sys.path` what a fresh interpreter started here (the working directory first) with `python_path`
    as its `$PYTHONPATH` would have: a sandbox's nodes import component modules from it."""
    ours = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    rest = [p for p in sys.path[1:] if p not in ours]
    theirs = [os.path.abspath(p) for p in python_path.split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *theirs, *rest]


def _read_line(connection: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        line += chunk
    return line


def _reap() -> None:
    """Reap the sandbox starters whose nodes have all exited."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def _close_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
