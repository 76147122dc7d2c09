"""`fedbench dashboards`: serve the Voila dashboards of `notebooks/dashboards/` for one party.

Voila runs as a child process on 127.0.0.1 (by default) with the `fedbench` template, found through a
temporary `JUPYTER_PATH` entry that links `<tmp>/voila/templates/fedbench` to the repository's
`templates/voila/fedbench/`; a `voila.json` there (Voila reads the one in its working directory) gives the
template the party for the page header and turns on pre-heated kernels: Voila keeps one kernel per
dashboard that has already imported fedbench and built the page, so a page opens in about a second; the
template then asks the app to reload its data (see `DashboardApp`). `--preheat` names the dashboards that get
one (default: all five); the others start their kernel when opened (tests heat only the pages they open).
Each dashboard's kernel gets `FEDBENCH_HOME` and `FEDBENCH_PARTY`, so it talks to the chosen party's node.

Each page opened takes a kernel (about 235 MB): `DashboardKernelManager` shuts it down `--cull-closed` seconds
(default 30) after its page closed, and a page left open but idle for `--cull-idle` seconds (default 600) loses
its kernel too, so the dashboards can run for weeks. The root URL is the template's landing page (`tree-lab.html`
and `tree.html`): the five dashboards, a line each on what they are for.

A dashboard's kernel acts as the party, so Voila serves only who holds the token this command draws afresh at
each start (`secrets`, 256 bits) and prints in the URL; the token reaches Voila in that `voila.json` (0600,
in a 0700 folder), never on a command line, which every local user can read. Jupyter Server's request checks
are on: a `Host` that is not loopback or `localhost` is refused (DNS rebinding), as is a cross-origin
websocket or form post (no `allow_origin`, XSRF cookies). Voila listens on loopback unless `--ip` names
another address together with `--allow-remote`, which also lifts the Host check (the token still holds).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fedbench
from fedbench.errors import ConfigError
from fedbench.net.ports import free_port

__all__ = [
    "CLOSED_TIMEOUT_S",
    "DASHBOARDS",
    "preheat_names",
    "IDLE_TIMEOUT_S",
    "add_parser",
    "cull_interval",
    "is_loopback",
    "new_token",
    "voila_config",
    "dashboards_dir",
    "pipeline_templates_dir",
    "staging",
    "template_dir",
    "voila_command",
    "voila_environment",
]

DASHBOARDS = ("data", "projects", "psi", "modeling", "scoring")
_TEMPLATE = "fedbench"
IDLE_TIMEOUT_S = 600
"""Default seconds a page may stay open without being used before its kernel is shut down."""
CLOSED_TIMEOUT_S = 30
"""Default seconds after a page closed (no connection left) before its kernel is shut down."""
_KERNEL_MANAGER = "fedbench.cli.dashboard_kernels.DashboardKernelManager"


def _roots() -> list[Path]:
    """Where a fedbench checkout may be: next to the package, the current directory, or two levels up from
    it (a dashboard's kernel runs in `notebooks/dashboards/`, so a package installed without `-e` still finds
    the checkout's templates there)."""
    package = Path(fedbench.__file__).resolve().parent
    here = Path.cwd()
    return [package.parent, here, *list(here.parents)[:2]]


def dashboards_dir() -> Path:
    """The folder holding the dashboard notebooks (in the repository next to the package, or the cwd)."""
    for root in _roots():
        folder = root / "notebooks" / "dashboards"
        if all((folder / f"{name}.ipynb").exists() for name in DASHBOARDS):
            return folder
    raise ConfigError(
        "cannot find notebooks/dashboards/ next to the fedbench package or in the current directory; "
        "run this command from a fedbench checkout (pip install -e .)"
    )


def template_dir() -> Path:
    """The `fedbench` Voila template folder (`templates/voila/fedbench/` of the repository)."""
    for root in _roots():
        folder = root / "templates" / "voila" / _TEMPLATE
        if (folder / "index.html.j2").exists():
            return folder
    raise ConfigError(
        "cannot find templates/voila/fedbench/ next to the fedbench package or in the current directory"
    )


def pipeline_templates_dir() -> Path:
    """The pipeline templates folder (`templates/pipelines/` of the repository), found like the Voila template."""
    for root in _roots():
        folder = root / "templates" / "pipelines"
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    raise ConfigError(
        "cannot find templates/pipelines/ next to the fedbench package or in the current directory"
    )


def new_token() -> str:
    """A fresh random token for one start of the dashboards (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def is_loopback(ip: str) -> bool:
    """Whether `ip` (an address or `localhost`) only accepts connections from this machine."""
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _check_timeouts(idle_timeout: int, closed_timeout: int) -> None:
    """Refuse a timeout under one second (Jupyter reads 0 or less as "never", which would leak kernels)."""
    for option, seconds in (("--cull-idle", idle_timeout), ("--cull-closed", closed_timeout)):
        if seconds < 1:
            raise ConfigError(
                f"{option} {seconds}: give a number of seconds of at least 1, such as "
                f"{IDLE_TIMEOUT_S if option == '--cull-idle' else CLOSED_TIMEOUT_S} (the default)"
            )


def cull_interval(idle_timeout: int, closed_timeout: int) -> int:
    """How often (seconds) to look for kernels to free: a third of the shorter timeout, between 1 s and 60 s,
    so a kernel goes at most a third later than its timeout says."""
    return max(1, min(60, min(idle_timeout, closed_timeout) // 3))


def preheat_names(text: str) -> tuple[str, ...]:
    """The dashboards named in `--preheat` (comma-separated; `none` for none), checked against `DASHBOARDS`."""
    names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
    unknown = sorted(set(names) - set(DASHBOARDS))
    if unknown:
        raise ConfigError(
            f"--preheat {text}: no dashboard named {', '.join(unknown)}; name some of "
            f"{', '.join(DASHBOARDS)} (comma-separated), or none"
        )
    return names


def voila_config(
    party: str,
    *,
    token: str,
    allow_remote: bool = False,
    idle_timeout: int = IDLE_TIMEOUT_S,
    closed_timeout: int = CLOSED_TIMEOUT_S,
    preheat: tuple[str, ...] = DASHBOARDS,
) -> dict[str, Any]:
    """Voila's configuration: the template's party, pre-heated kernels (for the dashboards in `preheat`),
    kernels freed when their page closed or sat idle, the token and Jupyter's request checks.

    Kernels talk to Voila over Unix sockets in Voila's private (0700) connection folder, not TCP ports: a
    TCP kernel's ports are picked free, then bound by the kernel a moment later, and a port taken in between
    killed the kernel at start (five restarts on the same ports, then a page that never opened); any user of
    the host could also connect to a TCP kernel's ports.

    Voila hard-codes `allow_remote_access=True` (no Host check) and leaves XSRF cookies off; its
    `tornado_settings` are applied after, so they turn both back on.
    """
    if not token:
        raise ConfigError("the dashboards need a token; none was given")
    _check_timeouts(idle_timeout, closed_timeout)
    preheat_names(",".join(preheat))
    return {
        "VoilaConfiguration": {
            "resources": {"fedbench": {"party": party}},
            "preheat_kernel": True,
            "multi_kernel_manager_class": _KERNEL_MANAGER,
        },
        "VoilaKernelManager": {
            "preheat_denylist": [f"{name}.ipynb" for name in DASHBOARDS if name not in preheat],
        },
        "KernelManager": {"transport": "ipc"},
        "DashboardKernelManager": {
            "cull_idle_timeout": idle_timeout,
            "cull_connected": True,
            "cull_interval": cull_interval(idle_timeout, closed_timeout),
            "closed_timeout": closed_timeout,
        },
        "Voila": {
            "token": token,
            "tornado_settings": {
                "allow_remote_access": allow_remote,
                "local_hostnames": ["localhost"],
                "allow_origin": "",
                "xsrf_cookies": True,
            },
        },
    }


@contextlib.contextmanager
def staging(
    party: str,
    *,
    token: str,
    allow_remote: bool = False,
    idle_timeout: int = IDLE_TIMEOUT_S,
    closed_timeout: int = CLOSED_TIMEOUT_S,
    preheat: tuple[str, ...] = DASHBOARDS,
) -> Iterator[Path]:
    """A temporary folder (0700) for Voila to run in: a Jupyter data folder holding our template (as
    `voila/templates/fedbench`), and a `voila.json` (0600) with `voila_config`, the token included."""
    config = voila_config(
        party,
        token=token,
        allow_remote=allow_remote,
        idle_timeout=idle_timeout,
        closed_timeout=closed_timeout,
        preheat=preheat,
    )
    with tempfile.TemporaryDirectory(prefix="fedbench-voila-") as tmp:
        link = Path(tmp) / "voila" / "templates" / _TEMPLATE
        link.parent.mkdir(parents=True)
        link.symlink_to(template_dir(), target_is_directory=True)
        descriptor = os.open(Path(tmp) / "voila.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(config, out)
        yield Path(tmp)


def voila_command(folder: Path, *, port: int, ip: str) -> list[str]:
    """The Voila command line serving `folder` with our template (run it in the `staging` folder)."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(folder),
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={ip}",
        f"--template={_TEMPLATE}",
        "--strip_sources=True",
    ]


def voila_environment(root: Path, *, home: str | None, party: str) -> dict[str, str]:
    """Our environment plus the template's Jupyter path and the node the kernels connect to."""
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(root), env.get("JUPYTER_PATH", "")) if p)
    env["FEDBENCH_PARTY"] = party
    if home is not None:
        env["FEDBENCH_HOME"] = str(Path(home).expanduser().resolve())
    return env


def add_parser(sub: Any) -> None:
    """Register `fedbench dashboards`."""
    parser = sub.add_parser(
        "dashboards",
        help="serve the data, projects, PSI, modeling and scoring dashboards (Voila) of one party",
    )
    parser.add_argument(
        "--port", type=int, default=8866, help="port to listen on (default 8866; 0: any free port)"
    )
    parser.add_argument(
        "--ip",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: only this machine can open them); "
        "any other address needs --allow-remote",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="let --ip be a non-loopback address and accept any Host name: anyone who reaches the port "
        "and holds the printed token acts as the party (put TLS in front: the token travels in the URL)",
    )
    parser.add_argument("--home", default=None, help="a node home or a sandbox home (default: the sandbox)")
    parser.add_argument(
        "--party", default=None, help="the party to act as (default: the node's, or the sandbox's first)"
    )
    parser.add_argument(
        "--cull-idle",
        type=int,
        default=IDLE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"free the kernel (memory) of a page left open but unused this long (default {IDLE_TIMEOUT_S}: "
        "10 minutes); the page then asks to be reloaded",
    )
    parser.add_argument(
        "--cull-closed",
        type=int,
        default=CLOSED_TIMEOUT_S,
        metavar="SECONDS",
        help=f"free the kernel of a closed page this long after it closed (default {CLOSED_TIMEOUT_S})",
    )
    parser.add_argument(
        "--preheat",
        default=",".join(DASHBOARDS),
        metavar="NAMES",
        help="the dashboards whose kernel is started ahead, so they open in about a second (comma-separated; "
        "default all: " + ",".join(DASHBOARDS) + "; none: every page starts its kernel when opened)",
    )
    parser.set_defaults(func=_serve)


class _Stop(Exception):
    """SIGTERM arrived: stop Voila and leave."""


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise _Stop()


def _wait_ready(url: str, child: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if child.poll() is not None:
            raise ConfigError(
                f"Voila exited with code {child.returncode} before serving; see its messages above"
            )
        with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(url, timeout=2):
            return
        time.sleep(0.3)
    raise ConfigError(f"Voila did not answer at {url} within {timeout:g} s")


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _check_address(ip: str, allow_remote: bool) -> None:
    """Refuse a non-loopback address unless `--allow-remote` says so (before anything starts)."""
    if not is_loopback(ip) and not allow_remote:
        raise ConfigError(
            f"--ip {ip} would let other machines reach the dashboards, whose kernels act as this party; "
            "keep the default 127.0.0.1 (reach it remotely through an SSH tunnel), or add --allow-remote"
        )


def _serve(args: argparse.Namespace) -> int:
    _check_address(args.ip, args.allow_remote)
    _check_timeouts(args.cull_idle, args.cull_closed)
    preheat = preheat_names(args.preheat)
    workbench = fedbench.connect(args.party, args.home)
    party = workbench.party
    workbench.close()
    port = args.port or free_port()
    folder = dashboards_dir()
    host = "127.0.0.1" if args.ip in ("127.0.0.1", "0.0.0.0", "::", "") else args.ip
    host = f"[{host}]" if ":" in host else host
    if not is_loopback(args.ip):
        print(
            f"fedbench: warning: the dashboards listen on {args.ip} with no Host check: anyone who reaches "
            f"it and holds the token acts as {party}"
        )
    token = new_token()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with staging(
            party,
            token=token,
            allow_remote=args.allow_remote,
            idle_timeout=args.cull_idle,
            closed_timeout=args.cull_closed,
            preheat=preheat,
        ) as root:
            child = subprocess.Popen(
                voila_command(folder, port=port, ip=args.ip),
                env=voila_environment(root, home=args.home, party=party),
                cwd=root,
            )
            try:
                base = f"http://{host}:{port}/"
                _wait_ready(base, child)
                query = f"?token={token}"
                lines = [f"fedbench dashboards of party {party}: {base}{query}"]
                lines += [f"  {name:<9} {base}voila/render/{name}.ipynb{query}" for name in DASHBOARDS]
                lines.append("The token is new at each start; keep it to yourself. Stop with Ctrl-C.")
                # one write: Voila shares this output, and its log lines must not land inside a URL
                sys.stdout.flush()
                os.write(sys.stdout.fileno(), ("\n".join(lines) + "\n").encode())
                code = child.wait()
            except (KeyboardInterrupt, _Stop):
                code = 0
            finally:
                _stop(child)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code
