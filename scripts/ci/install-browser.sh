#!/usr/bin/env bash
# Install the browser of the dashboard tests (Debian's chromium and a font) when /usr/bin/chromium is missing.
#
# Idempotent: does nothing when chromium is there. The tests use the `playwright` Python package with
# executable_path=/usr/bin/chromium; `playwright install` is never run (it downloads a browser, which CI cannot).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "install-browser.sh: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) is installed" >&2
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-browser.sh: /usr/bin/chromium is missing; as root: apt-get install chromium fonts-dejavu-core" >&2
    exit 1
fi
echo "install-browser.sh: installing chromium and fonts-dejavu-core from Debian's packages" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >&2
/usr/bin/chromium --version >&2
