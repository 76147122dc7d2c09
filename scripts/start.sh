#!/usr/bin/env bash
# Set up fedbench on a fresh machine, start the sandbox federation (guest + host nodes over mutual TLS, demo
# data, an accepted demo project), then serve the business dashboards with Voila until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
python3 -m fedbench sandbox up "$@"
cat <<'TXT'

The sandbox is up. In Python or a notebook:
    import fedbench
    wb = fedbench.connect()          # the guest party's node
    wb.peers()                       # host, reached live over mutual TLS
    wb.project("demo").run("psi", data="credit").wait()
Stop the nodes with `fedbench sandbox down`.

The dashboards follow: open the URL printed below. It carries a token drawn for this start, which is what
lets your browser in (the dashboards act as the guest party); anyone else on this machine is refused.
TXT
exec python3 -m fedbench dashboards
