#!/usr/bin/env bash
# Build the JupyterLab sidebar from its sources (npm packages only, exactly those of package-lock.json), run its
# jest tests, and fail if the prebuilt copy committed in fedbench/labextension (what `pip install` ships) differs
# from what the sources build: a change to extensions/fedbench-sidebar must be committed with its build.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v npm >/dev/null || { echo "build-sidebar: npm is needed (Node.js 18 or later)" >&2; exit 1; }
(
    cd extensions/fedbench-sidebar
    npm ci --no-audit --no-fund --loglevel=error
    npm run --silent build >/dev/null
    npm test --silent
)
if command -v git >/dev/null && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    stale="$(git status --porcelain --untracked-files=all -- fedbench/labextension)"
    if [ -n "$stale" ]; then
        echo "build-sidebar: fedbench/labextension is stale; commit the rebuilt files:" >&2
        echo "$stale" >&2
        exit 1
    fi
fi
