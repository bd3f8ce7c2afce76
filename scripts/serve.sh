#!/usr/bin/env bash
# Run walletsvc. With no DATABASE_URL it starts its own PostgreSQL in .walletsvc-data/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec .venv/bin/walletsvc serve "$@"
