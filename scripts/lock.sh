#!/usr/bin/env bash
# Regenerate requirements.lock from pyproject.toml ([project.dependencies] and the dev extra): every
# package pinned `==` with its hashes, resolved for Python 3.11 (CI's). bootstrap.sh installs from it.
#   bash scripts/lock.sh             after editing pyproject.toml: keeps every pin that still fits
#   bash scripts/lock.sh --upgrade   upgrade everything to the newest versions pyproject.toml allows
#   bash scripts/lock.sh -P fastapi  upgrade one package (and what it needs)
# Then `bash scripts/test.sh` re-installs .venv from the new lock and runs the suite; commit both files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PIP_TOOLS_VERSION=7.6.2
python=${PYTHON:-python3.11}
if ! command -v "$python" >/dev/null 2>&1 || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "lock.sh needs Python 3.11, which the lock is for (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

# pip-tools lives in a throwaway venv: it is not a dependency of walletsvc and never enters .venv.
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet "pip-tools==$PIP_TOOLS_VERSION"

CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$tools/bin/pip-compile" --quiet \
  --extra dev --strip-extras --generate-hashes --allow-unsafe \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file requirements.lock "$@" pyproject.toml
echo "requirements.lock: $(grep -c '==' requirements.lock) packages pinned" >&2
