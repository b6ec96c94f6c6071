#!/usr/bin/env bash
# Accuracy harness for tollgate's guardrail detectors (PII, secrets, prompt
# injection) against Presidio's pattern recognizers and detect-secrets.
#
#   bash bench/guardrails/run.sh [run.py options, e.g. --details or --only injection]
#
# Builds nothing: expects the gateway binary (TOLLGATE_BIN, default
# target/release/tollgate). Creates a venv in bench/guardrails/.venv with
# the pinned references, regenerates the corpus into bench/guardrails/corpus
# and prints the Markdown report.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${TOLLGATE_BIN:-$root/target/release/tollgate}"
if [[ ! -x "$bin" ]]; then
    echo "no tollgate binary at $bin" >&2
    echo "build it first: cargo build --release -p tollgate   (or set TOLLGATE_BIN)" >&2
    exit 1
fi
python="${PYTHON:-python3}"
if [[ ! -x "$here/.venv/bin/python" ]]; then
    "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$here/.venv/bin/python" "$here/gen_corpus.py" --out "$here/corpus"
TOLLGATE_BIN="$bin" "$here/.venv/bin/python" "$here/run.py" --corpus "$here/corpus" "$@"
