#!/usr/bin/env bash
# Run walletsvc: the API and its worker (background jobs, events, e-mail, period close) together. With no
# DATABASE_URL it starts its own PostgreSQL in .walletsvc-data/. Production runs `walletsvc serve` and
# `walletsvc worker` as separate processes instead (docs/operations.md).
# Backgrounded (`bash scripts/serve.sh &`), follow it with `bash scripts/wait.sh $!`: it returns once the
# service answers, the first run's install into .venv included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -f .venv/.walletsvc-installed ]; then
  echo "serve.sh: first run: installing into .venv (a minute or two), then starting walletsvc" >&2
fi
source scripts/bootstrap.sh
exec .venv/bin/walletsvc serve --with-worker "$@"
