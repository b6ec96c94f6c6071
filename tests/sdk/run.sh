#!/usr/bin/env bash
# Runs the SDK suites (Python openai, anthropic, mcp; npm @modelcontextprotocol/sdk)
# against the built binaries.
#
#   tests/sdk/run.sh [pytest args...]
#
# VENV chooses the virtualenv (default <repo>/.venv); TOLLGATE_BIN and
# MOCK_UPSTREAM_BIN choose the binaries (default <repo>/target/debug/...).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${VENV:-$repo/.venv}"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$repo/tests/sdk/requirements.txt"
# The npm MCP SDK client (versions pinned by package-lock.json).
(cd "$repo/tests/sdk/js" && npm ci --no-audit --no-fund --loglevel=error)

cd "$repo"
# exec: pytest's exit status is the script's.
exec "$venv/bin/python" -m pytest tests/sdk -q "$@"
