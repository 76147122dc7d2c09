#!/usr/bin/env bash
# Set up fedbench on a fresh machine and start the sandbox federation (guest + host nodes, demo data).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
python3 -m fedbench sandbox up "$@"
cat <<'TXT'

The sandbox is up. In Python or a notebook:
    import fedbench
    wb = fedbench.connect()          # the guest party's node
    wb.peers()                       # host, reached live over mutual TLS
    wb.datasets.list()
Stop it with `fedbench sandbox down`.
TXT
