"""docker compose deployment: the compose files validate with the real compose client (`config` needs no
engine), the Dockerfile copies what exists, and the containers' start-up script runs two parties and a
JupyterLab outside containers, as the containers would."""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from fedbench.client.control import NodeClient
from fedbench.client.workbench import Workbench
from fedbench.net import certs
from fedbench.net.ports import free_port, free_ports
from fedbench.node.config import NodeHome

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
SHIPPED_CONFIG = ROOT / "extensions" / "jupyter-config" / "jupyter_server_config.d" / "fedbench.json"
"""What installing the package enables; the image's `pip install` puts it in the environment's config path."""
TOKEN = "compose-test-token"
_COMPOSE_VARS = (
    "FEDBENCH_PARTY",
    "FEDBENCH_PEERS",
    "JUPYTER_TOKEN",
    "FEDBENCH_IMAGE",
    "FEDBENCH_DATABASE_URL",
)


@functools.cache
def _compose_command() -> list[str]:
    """`docker compose` if the client has the plugin, else the standalone `docker-compose`; never a skip."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no docker compose on this machine: run scripts/ci/install-compose.sh")


def _config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _COMPOSE_VARS}
    return subprocess.run(
        [*_compose_command(), *args, "config"],
        capture_output=True,
        text=True,
        cwd=DEPLOY,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


def _parsed(*args: str) -> dict:
    done = _config(*args)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _mounts(service: dict) -> dict[str, str]:
    """target -> 'source[:ro]', whatever syntax the compose version prints."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found[target] = source + (":ro" if mode and mode[0] == "ro" else "")
        else:
            found[volume["target"]] = volume["source"] + (":ro" if volume.get("read_only") else "")
    return found


def _ports(service: dict) -> dict[int, int]:
    """container port -> published port, whatever syntax the compose version prints."""
    ports = {}
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports[int(port["target"])] = int(port["published"])
        else:
            published, target = str(port).rsplit(":", 2)[-2:]
            ports[int(target)] = int(published)
    return ports


def test_party_compose_file_validates_with_its_env_file() -> None:
    config = _parsed("-f", "compose.yaml", "--env-file", ".env.example")
    services = config["services"]
    assert {"node", "lab"} <= set(services) and not services["node"].get("profiles")
    assert not services["lab"].get("profiles"), "the node and JupyterLab always run; the rest are profiles"
    node, lab = services["node"], services["lab"]
    assert node["command"] == ["node"] and lab["command"] == ["lab"]
    assert _env(node)["FEDBENCH_PARTY"] == "bank-a" and "bank-b=" in _env(node)["FEDBENCH_PEERS"]
    assert _env(node)["FEDBENCH_HEALTH_PORT"] == "8080" and "8080/healthz" in " ".join(
        node["healthcheck"]["test"]
    )
    assert _ports(node) == {50051: 50051, 8888: 8888, 8866: 8866}
    assert _mounts(node) == {
        "/data/home": "home",
        "/data/home/artifacts": "artifacts",
        "/data/home/tls": "certs",
        "/data/compute-tls": "compute-certs:ro",
    }
    assert _env(node)["FEDBENCH_DASK_SCHEDULER"] == "", (
        "without the dask profile, heavy work stays on the node"
    )
    assert lab["network_mode"] == "service:node", "JupyterLab reaches the control API on the node's loopback"
    assert _mounts(lab)["/data/home"] == "home:ro" and "/data/home/tls" not in _mounts(lab)
    assert _env(lab)["FEDBENCH_START_NODE"] == "0" and _env(lab)["JUPYTER_TOKEN"]
    assert lab["depends_on"]["node"]["condition"] == "service_healthy"
    assert {"home", "artifacts", "certs", "work", "pgdata"} <= set(config["volumes"])


def test_profiles_add_voila_and_postgresql() -> None:
    config = _parsed(
        "-f", "compose.yaml", "--env-file", ".env.example", "--profile", "dashboards", "--profile", "postgres"
    )
    services = config["services"]
    # some compose versions print every service whatever the profiles asked: the dask profile's are there too
    assert set(services) - {"dask-scheduler", "dask-worker"} == {"node", "lab", "voila", "postgres"}
    assert services["voila"]["profiles"] == ["dashboards"] and services["postgres"]["profiles"] == [
        "postgres"
    ]
    assert services["voila"]["network_mode"] == "service:node" and services["voila"]["command"] == ["voila"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert _mounts(services["postgres"])["/var/lib/postgresql/data"] == "pgdata"


def test_profile_dask_adds_the_partys_scheduler_and_workers_on_its_own_ca() -> None:
    config = _parsed("-f", "compose.yaml", "--env-file", ".env.example", "--profile", "dask")
    services = config["services"]
    scheduler, worker, node = services["dask-scheduler"], services["dask-worker"], services["node"]
    assert scheduler["profiles"] == worker["profiles"] == ["dask"]
    assert scheduler["command"] == ["dask-scheduler"] and worker["command"] == ["dask-worker"]
    assert _env(worker)["FEDBENCH_DASK_SCHEDULER"] == "tls://dask-scheduler:8786"
    assert _env(node)["FEDBENCH_DASK_TLS_DIR"] == "/data/compute-tls"
    assert _mounts(worker) == {"/data/compute-tls": "compute-certs:ro"}
    assert _mounts(scheduler) == {"/data/compute-tls": "compute-certs", "/data/compute-ca": "compute-ca"}
    assert "/data/compute-ca" not in _mounts(node), "the compute CA's key stays with the scheduler"
    (dashboard,) = scheduler["ports"]
    published = dashboard if isinstance(dashboard, dict) else {"host_ip": str(dashboard).split(":")[0]}
    assert published["host_ip"] == "127.0.0.1", "only the dashboard is published, on loopback"


def test_missing_party_setting_is_refused_by_compose(tmp_path: Path) -> None:
    (tmp_path / "empty.env").write_text("# nothing set\n")
    done = _config(
        "-f", "compose.yaml", "--env-file", str(tmp_path / "empty.env"), env={"JUPYTER_TOKEN": "x"}
    )
    assert done.returncode != 0 and "FEDBENCH_PARTY" in done.stderr


def test_demo_compose_file_runs_two_parties_that_name_each_other() -> None:
    services = _parsed("-f", "compose.demo.yaml")["services"]
    assert set(services) == {"certs", "guest-node", "host-node", "guest-lab", "host-lab"}
    for party, other in (("guest", "host"), ("host", "guest")):
        node = services[f"{party}-node"]
        assert _env(node)["FEDBENCH_PARTY"] == party
        assert _env(node)["FEDBENCH_PEERS"] == f"{other}={other}-node:50051"
        assert node["depends_on"]["certs"]["condition"] == "service_completed_successfully"
        assert _mounts(node)["/data/home/tls"] == f"{party}-certs"
        assert services[f"{party}-lab"]["network_mode"] == f"service:{party}-node"
    published = [p for name in ("guest-node", "host-node") for p in _ports(services[name]).values()]
    assert sorted(published) == [8888, 8889, 50051, 50061], "the two parties publish different ports"


def test_dockerfile_copies_only_what_the_repository_has() -> None:
    lines = [line.split() for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.strip()]
    copies = [words[1:-1] for words in lines if words[0] == "COPY"]
    assert copies, "the Dockerfile copies the project"
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository (the build context)"
    assert ["ENTRYPOINT", '["fedbench-entrypoint"]'] in lines and os.access(ENTRYPOINT, os.X_OK)


# --- the containers' start-up commands, outside containers -------------------------------------------------


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


class Started:
    """Processes started through deploy/entrypoint.sh, stopped with SIGTERM like `docker compose down`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.processes: list[subprocess.Popen[str]] = []

    def entrypoint(self, command: str, **env: str) -> subprocess.Popen[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FEDBENCH_")}
        with open(self.tmp / f"{command}-{len(self.processes)}.log", "w") as log:
            process = subprocess.Popen(
                ["bash", str(ENTRYPOINT), command],
                env={**base, "FEDBENCH_PYTHON": sys.executable, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.processes.append(process)
        return process

    def until(self, process: subprocess.Popen[str], check: Callable[[], Any], timeout: float = 90.0) -> Any:
        """Poll `check` until it returns something true, failing if the process exits or time runs out."""
        give_up = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"{process.args} exited with {process.returncode}"
            try:
                result = check()
                if result:
                    return result
            except OSError:
                pass
            assert time.monotonic() < give_up, f"{process.args} did not become ready"
            time.sleep(0.3)

    def stop(self, process: subprocess.Popen[str]) -> int:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=30)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    runner = Started(tmp_path)
    yield runner
    for process in runner.processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _node_env(tmp: Path, party: str, ports: dict[str, dict[str, int]], other: str) -> dict[str, str]:
    return {
        "FEDBENCH_HOME": str(tmp / party),
        "FEDBENCH_PARTY": party,
        "FEDBENCH_PEERS": f"{other}=127.0.0.1:{ports[other]['federation']}",
        "FEDBENCH_FEDERATION_HOST": "127.0.0.1",
        "FEDBENCH_FEDERATION_PORT": str(ports[party]["federation"]),
        "FEDBENCH_CONTROL_PORT": str(ports[party]["control"]),
        "FEDBENCH_HEALTH_PORT": str(ports[party]["health"]),
    }


def test_entrypoint_starts_two_parties_and_a_lab_like_the_containers(
    tmp_path: Path, started: Started
) -> None:
    ca = tmp_path / "ca"
    certs.init_ca(ca)  # what `fedbench certs init-ca` and `issue` do (their CLI: test_certs.py), in process
    for party in ("guest", "host"):
        certs.issue_party(ca, tmp_path / party / "tls", party)
    picked = iter(free_ports(6))
    ports = {p: {k: next(picked) for k in ("federation", "control", "health")} for p in ("guest", "host")}
    nodes = {
        party: started.entrypoint("node", **_node_env(tmp_path, party, ports, other))
        for party, other in (("guest", "host"), ("host", "guest"))
    }
    for party, process in nodes.items():
        url = f"http://127.0.0.1:{ports[party]['health']}/healthz"
        body = started.until(process, lambda url=url: _get(url)[1])
        assert body["ok"] and body["party"] == party
    config = NodeHome(tmp_path / "guest").load_config()
    assert (config.party, config.peers) == ("guest", {"host": f"127.0.0.1:{ports['host']['federation']}"})
    assert config.health_port == ports["guest"]["health"] and config.control_host == "127.0.0.1"

    guest = Workbench(NodeClient.for_home(tmp_path / "guest"))
    assert [(p.party, p.reachable) for p in guest.peers()] == [("host", True)]
    guest.close()

    lab_port = free_port()
    config_dir = tmp_path / "jupyter-config" / "jupyter_server_config.d"
    config_dir.mkdir(parents=True)
    shutil.copy(SHIPPED_CONFIG, config_dir)
    lab = started.entrypoint(
        "lab",
        JUPYTER_CONFIG_DIR=str(config_dir.parent),
        FEDBENCH_HOME=str(tmp_path / "guest"),
        FEDBENCH_START_NODE="0",
        JUPYTER_TOKEN=TOKEN,
        FEDBENCH_WORK_DIR=str(tmp_path / "work"),
        FEDBENCH_NOTEBOOKS=str(ROOT / "notebooks"),
        FEDBENCH_LAB_IP="127.0.0.1",
        FEDBENCH_LAB_PORT=str(lab_port),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    status_url = f"http://127.0.0.1:{lab_port}/fedbench/status"

    def healthy_status() -> dict | None:
        code, body = _get(status_url, TOKEN)
        return body if code == 200 and body["node"]["ok"] and body["peers"] else None

    body = started.until(lab, healthy_status)
    assert (body["mode"], body["party"]) == ("node", "guest")
    assert [(p["party"], p["reachable"]) for p in body["peers"]] == [("host", True)]
    assert _get(f"http://127.0.0.1:{lab_port}/api/status", TOKEN)[0] == 200
    assert (tmp_path / "work" / "notebooks" / "rerun_one_stage.ipynb").exists()
    assert started.stop(lab) == 0

    assert started.stop(nodes["guest"]) == 0
    logs = (tmp_path / "node-0.log").read_text().splitlines()
    assert json.loads(logs[-1])["message"].startswith("node guest stopping")
    again = started.entrypoint(
        "node", **{**_node_env(tmp_path, "guest", ports, "host"), "FEDBENCH_PARTY": "renamed"}
    )
    body = started.until(again, lambda: _get(f"http://127.0.0.1:{ports['guest']['health']}/healthz")[1])
    assert body["party"] == "guest", (
        "an existing node.json is kept: the environment only seeds the first start"
    )
    assert started.stop(again) == 0 and started.stop(nodes["host"]) == 0


def test_entrypoint_runs_the_partys_dask_cluster_on_its_own_ca(tmp_path: Path, started: Started) -> None:
    import dask

    from fedbench.compute import DaskBackend
    from fedbench.compute.cluster import MESSAGE_LOG_LENGTH, PROFILE_INTERVAL, TICK_INTERVAL
    from fedbench.psi import group

    env = {
        "FEDBENCH_PARTY": "bank-a",
        "FEDBENCH_DASK_CA_DIR": str(tmp_path / "compute-ca"),
        "FEDBENCH_DASK_TLS_DIR": str(tmp_path / "compute-tls"),
    }
    assert started.entrypoint("compute-certs", **env).wait(timeout=60) == 0
    assert (tmp_path / "compute-tls" / "party.pem").exists()
    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    scheduler = started.entrypoint(
        "dask-scheduler",
        **env,
        FEDBENCH_DASK_HOST="127.0.0.1",
        FEDBENCH_DASK_PORT=str(port),
        FEDBENCH_DASK_DASHBOARD=str(free_port()),
    )
    started.entrypoint(
        "dask-worker", **env, FEDBENCH_DASK_SCHEDULER=address, FEDBENCH_DASK_WORKER_PROCESSES="1"
    )
    backend = DaskBackend(address, tls_dir=tmp_path / "compute-tls", connect_timeout=60)
    try:
        started.until(scheduler, lambda: backend.client.wait_for_workers(1, timeout=60) is None)
        secret = group.new_secret()
        with group.MaskingPool(secret, b"key", backend=backend) as pool:
            remote = pool.hash_mask(["a", "b", "c"]).result()
        assert remote == group.Masker(secret, b"key").hash_mask(["a", "b", "c"])
        # the containers keep Dask's per-connection message log short and its monitors quiet, as the
        # sandbox's cluster does
        for setting, value in (
            ("distributed.admin.low-level-log-length", MESSAGE_LOG_LENGTH),
            ("distributed.worker.profile.interval", PROFILE_INTERVAL),
            ("distributed.admin.tick.interval", TICK_INTERVAL),
        ):
            assert backend.client.run_on_scheduler(dask.config.get, setting) == value
            assert set(backend.client.run(dask.config.get, setting).values()) == {value}
    finally:
        backend.close()


def test_entrypoint_without_a_party_says_what_to_set(tmp_path: Path, started: Started) -> None:
    process = started.entrypoint("node", FEDBENCH_HOME=str(tmp_path / "empty"))
    assert process.wait(timeout=30) == 2
    assert "FEDBENCH_PARTY is not set" in (tmp_path / "node-0.log").read_text()


def test_entrypoint_serves_voila_only_with_the_token_kept_off_the_command_line(
    tmp_path: Path, started: Started
) -> None:
    port = free_port()
    voila = started.entrypoint(
        "voila",
        JUPYTER_TOKEN=TOKEN,
        FEDBENCH_DASHBOARDS=str(ROOT / "notebooks" / "dashboards"),
        FEDBENCH_LAB_IP="127.0.0.1",
        FEDBENCH_VOILA_PORT=str(port),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )

    def answer(path: str, token: str | None = None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", path, headers={"Authorization": f"token {token}"} if token else {})
            return connection.getresponse().status
        finally:
            connection.close()

    assert started.until(voila, lambda: answer("/", TOKEN) == 200)
    assert answer("/") in (302, 403) and answer("/", "wrong") in (302, 403), "no dashboard without the token"
    command_lines = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in [voila.pid, *_children(voila.pid)]]
    assert all(TOKEN.encode() not in line for line in command_lines), (
        "the token reaches Voila from the environment, not the command line (readable by every local user)"
    )
    started.stop(voila)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_pyarrow_requirement_excludes_releases_with_cve_2023_47248() -> None:
    listed = re.findall(r'^\s*"(pyarrow\b[^"]*)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert len(listed) == 1, listed
    pyarrow = Requirement(listed[0])
    assert not pyarrow.specifier.contains("14.0.0"), "pyarrow 14.0.0 runs code from a crafted parquet file"
    assert pyarrow.specifier.contains("14.0.1") and pyarrow.specifier.contains(version("pyarrow"))
