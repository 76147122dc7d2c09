#!/usr/bin/env bash
# Make a Docker Compose command available for validating deploy/compose*.yaml (`config` needs no engine).
#
# Uses the `docker compose` plugin when the docker client has it; otherwise installs Debian's docker-compose
# package (the standalone `docker-compose`; Debian bookworm ships no compose v2 plugin). Prints the command.
set -euo pipefail

if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
    exit 0
fi
if ! command -v docker-compose >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-compose.sh: no docker compose here; as root: apt-get install docker-compose" >&2
        exit 1
    fi
    echo "install-compose.sh: installing docker-compose from Debian's packages" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >&2
fi
docker-compose version >&2
echo "docker-compose"
