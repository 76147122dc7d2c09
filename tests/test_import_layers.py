"""Imports point down the layers: what a node runs never imports the kernel's client or the dashboards, and the
protocol cores import neither components nor nodes nor clients.

Read from the source with `ast` (every import, also those inside functions), so a wrong-way import fails here
before it ties the layers together at run time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fedbench

PACKAGE = Path(fedbench.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every fedbench module a source file imports (`from fedbench import x` counts as `fedbench.x`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "fedbench":
                found.update(f"fedbench.{alias.name}" for alias in node.names)
    return {name for name in found if name == "fedbench" or name.startswith("fedbench.")}


def wrong_way(layers: tuple[str, ...], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """Per source file under `layers`, the imported modules that fall under `forbidden`."""
    found = {}
    for layer in layers:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            bad = sorted(
                name
                for name in imported_modules(path)
                if any(name == f"fedbench.{f}" or name.startswith(f"fedbench.{f}.") for f in forbidden)
            )
            if bad:
                found[str(path.relative_to(PACKAGE))] = bad
    return found


def test_node_and_net_import_neither_the_client_nor_the_dashboards():
    assert wrong_way(("node", "net"), ("client", "ui")) == {}


def test_net_does_not_import_the_node():
    assert wrong_way(("net",), ("node",)) == {}


def test_psi_imports_no_component_node_or_client():
    assert wrong_way(("psi",), ("components", "node", "client", "ui")) == {}


def test_ml_imports_no_component_node_or_client():
    assert wrong_way(("ml",), ("components", "node", "client", "ui")) == {}


def test_the_kernels_client_does_not_import_the_nodes_control_service():
    assert "fedbench.node.control" not in imported_modules(PACKAGE / "client" / "control.py")


def test_the_masking_processes_fork_server_imports_neither_pandas_nor_the_protocol():
    """A warm worker starts a fork server per step that preloads the PSI group code: pulling in pandas and the
    federation layer there cost about half a second of CPU on every step, PSI or not."""
    code = "import sys, fedbench.psi.group; print(sorted({'pandas', 'fedbench.psi.protocol'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_compute_sits_below_the_protocols_and_the_engine():
    assert wrong_way(("compute",), ("psi", "ml", "crypto", "components", "node", "client", "ui")) == {}
