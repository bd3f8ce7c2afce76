#!/usr/bin/env bash
# Run the whole test suite on real PostgreSQL: the embedded one, or the server in TEST_DATABASE_URL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec .venv/bin/pytest "$@"
