"""`fedbench SUBCOMMAND` imports only that sub-command's module: a `fedbench dashboards` (or any short CLI call)
does not load the database layer and pandas for nothing; `fedbench --help` still lists every sub-command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fedbench.cli import build_parser, main

HEAVY = ("sqlalchemy", "sqlmodel", "pandas")
COMMANDS = ("node", "sandbox", "certs", "users", "audit", "backup", "restore", "dashboards", "model")


def test_the_dashboards_command_does_not_import_the_database_layer_or_pandas() -> None:
    code = (
        "import sys\n"
        "from fedbench.cli import build_parser\n"
        "build_parser('dashboards').parse_args(['dashboards', '--party', 'host'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "[]", done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_parses_with_only_its_module(command: str) -> None:
    parser = build_parser(command)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([command, "--help"])
    assert exit_.value.code == 0


def test_help_and_an_unknown_command_list_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["no-such-command"])
    listed = capsys.readouterr().err
    for command in COMMANDS:
        assert f"'{command}'" in listed, (command, listed)
