#!/usr/bin/env bash
# Set up enduro in .venv and run one goal on the embedded SQLite default (.enduro/enduro.sqlite).
# The model endpoint is OPENAI_BASE_URL (any OpenAI-compatible server) or OpenAI itself with
# OPENAI_API_KEY. With neither set, it starts the test suite's scripted OpenAI-compatible
# server on loopback so a first run works on a machine with no model at all, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
GOAL=${1:-"Research what makes long-running AI agents reliable and write a short report"}
shift || true

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import enduro" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
fi

if [ -z "${OPENAI_BASE_URL:-}" ] && [ -z "${OPENAI_API_KEY:-}" ]; then
  port=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  .venv/bin/python tests/fakellm.py --port "$port" --tool-use --latency 0.3 >/dev/null 2>&1 &
  fake=$!
  trap 'kill $fake 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/models')" 2>/dev/null && break
    sleep 0.1
  done
  export OPENAI_BASE_URL="http://127.0.0.1:$port/v1"
  echo "No OPENAI_BASE_URL or OPENAI_API_KEY set: using the scripted test model at $OPENAI_BASE_URL." >&2
  echo "Point it at a real model with e.g. OPENAI_BASE_URL=http://127.0.0.1:11434/v1 ENDURO_MODEL=llama3.1" >&2
fi

set +e
.venv/bin/enduro run "$GOAL" "$@"
code=$?
set -e
echo "exit code $code; inspect with: .venv/bin/enduro list   (resume a paused run with .venv/bin/enduro resume THREAD_ID)" >&2
exit "$code"
