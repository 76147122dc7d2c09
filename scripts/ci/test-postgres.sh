#!/usr/bin/env bash
# Run the store and project tests against a real PostgreSQL server (the same tests that run on SQLite).
#
# Uses the server of $FEDBENCH_PG_URL (a base URL printed by scripts/ci/postgres.sh start); without it, starts
# a throwaway cluster with that script and stops it afterwards. Every node and test gets its own database,
# created by fedbench on first use; databases left by an earlier run (named fb_*) are dropped first.
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test,postgres]'

if [ -z "${FEDBENCH_PG_URL:-}" ]; then
    FEDBENCH_PG_URL="$(bash scripts/ci/postgres.sh start)"
    trap 'bash scripts/ci/postgres.sh stop' EXIT
fi
export FEDBENCH_PG_URL

python3 - <<'PY'
"""Drop the fb_* databases an earlier run left on the server."""
import os

from sqlalchemy import create_engine, text

engine = create_engine(os.environ["FEDBENCH_PG_URL"] + "/postgres", isolation_level="AUTOCOMMIT")
with engine.connect() as conn:
    names = conn.execute(text("select datname from pg_database where datname like 'fb\\_%'")).scalars().all()
    for name in names:
        conn.execute(text(f'drop database "{name}" with (force)'))
engine.dispose()
print(f"test-postgres.sh: dropped {len(names)} old test databases")
PY

export FEDBENCH_TEST_DATABASE_URL="$FEDBENCH_PG_URL/fb_{sandbox}_{party}"
python3 -m pytest -q -p no:cacheprovider \
    tests/test_store.py tests/test_dataset_registry.py tests/test_projects.py tests/test_node_lifecycle.py "$@"
