#!/usr/bin/env bash
# Set up what the tests need on a fresh machine, then run the whole suite: ruff, mypy and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
python3 -m ruff check fedbench tests benchmarks
python3 -m mypy
python3 -m pytest -q "$@"
