#!/usr/bin/env bash
# The whole suite: lint, types, tests. Installs into .venv when needed, and makes sure a
# PostgreSQL server answers: ENDURO_TEST_DATABASE_URL, else 127.0.0.1:5432, else a throwaway
# server started here from the PostgreSQL binaries on the machine. Never skips Postgres tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import enduro, pytest, mypy, ruff" 2>/dev/null || [ "${ENDURO_REINSTALL:-}" = 1 ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
fi

pg_ok() { .venv/bin/python - "$1" <<'PYEOF'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=3).close()
except Exception as exc:
    print(f"  {sys.argv[1]}: {exc}".splitlines()[0], file=sys.stderr)
    sys.exit(1)
PYEOF
}

if [ -z "${ENDURO_TEST_DATABASE_URL:-}" ]; then
  if pg_ok "postgresql://postgres@127.0.0.1:5432/test"; then
    export ENDURO_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/test"
  else
    echo "no PostgreSQL at 127.0.0.1:5432; starting a throwaway server" >&2
    bash scripts/throwaway-postgres.sh start
    export ENDURO_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:54329/postgres"
    trap 'bash scripts/throwaway-postgres.sh stop' EXIT
  fi
fi
if ! pg_ok "$ENDURO_TEST_DATABASE_URL"; then
  echo "FATAL: PostgreSQL at $ENDURO_TEST_DATABASE_URL does not answer; Postgres tests are never skipped." >&2
  exit 1
fi

echo "== ruff" >&2
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy --strict src/ tests/" >&2
.venv/bin/mypy
# The tests too (same strict config; mypy_path finds their helpers: fakellm, receiver, ...).
.venv/bin/mypy tests
echo "== pytest (Postgres: $ENDURO_TEST_DATABASE_URL)" >&2
.venv/bin/python -m pytest -q "$@"
