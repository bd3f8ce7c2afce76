#!/usr/bin/env bash
# Wait until walletsvc answers /readyz, for `bash scripts/serve.sh &` in the same folder: first for
# serve.sh's install into .venv (a minute or two on a first run), then for the server itself.
#   bash scripts/serve.sh & bash scripts/wait.sh $!
# With the PID of the backgrounded serve.sh it gives up as soon as that process ends. Other arguments go
# to `walletsvc wait` (--url URL, --timeout SECONDS). Exit 0 when it answers, 1 when it never does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pid=""
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then pid=$1; shift; fi

install_deadline=$(( SECONDS + ${WALLETSVC_INSTALL_TIMEOUT:-900} ))
# bootstrap.sh writes its stamp once the install has finished.
until [ -f .venv/.walletsvc-installed ] && [ -x .venv/bin/walletsvc ]; do
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    echo "error: serve.sh (pid $pid) stopped before it finished installing; see its output" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$install_deadline" ]; then
    echo "error: .venv is still not installed after ${WALLETSVC_INSTALL_TIMEOUT:-900} s; is serve.sh running?" >&2
    exit 1
  fi
  sleep 1
done
exec .venv/bin/walletsvc wait --timeout "${WALLETSVC_WAIT_TIMEOUT:-180}" ${pid:+--pid "$pid"} "$@"
