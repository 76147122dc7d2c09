#!/usr/bin/env bash
# Set up what the tests need on a fresh machine (Debian's chromium and docker-compose, the JupyterLab sidebar's
# build and jest tests, the package with its test extras), then run the whole suite: ruff, mypy, pytest, and the
# store and project tests again against a real PostgreSQL (installed from Debian's packages and started on
# loopback for the run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ci/install-browser.sh
bash scripts/ci/install-compose.sh
# The JupyterLab sidebar: npm ci, build, jest; fails if the committed prebuilt copy (fedbench/labextension) is stale.
bash scripts/ci/build-sidebar.sh
python3 -m pip install --quiet --disable-pip-version-check -e '.[test,postgres,torch,dask]'
python3 -m ruff check fedbench tests benchmarks
python3 -m mypy
# Bytecode is written and compiled once, ahead: the suite starts hundreds of Python processes (nodes, kernels, Voila,
# CLI calls) that import the package, and with PYTHONDONTWRITEBYTECODE set (as on this machine) each compiled every
# module it imported from source again, and each pytest worker rewrote every test module's asserts again.
unset PYTHONDONTWRITEBYTECODE
python3 -m compileall -q fedbench tests benchmarks > /dev/null
# Three test processes (pytest-xdist) on the 2 cores: the suite's processes keep about two thirds of the cores busy
# (measured: its tests wait on nodes, Voila, JupyterLab, the browser and pip), so a third fills the gaps. Each module
# runs whole on one of them (tests/conftest.py makes it an xdist group, so its module-scoped sandbox is started
# once), slowest first.
python3 -m pytest -q --durations=25 -n 3 --dist loadgroup --no-loadscope-reorder "$@"
bash scripts/ci/test-postgres.sh
