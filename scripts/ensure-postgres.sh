#!/usr/bin/env bash
# Makes sure a PostgreSQL server (postgres and initdb) is installed for the tests, benchmarks and CI: Debian's
# package when we can install it, else a one-line instruction. src/local/postgres.ts runs it in a temporary data
# directory; the package's own cluster and service are not used.
set -euo pipefail
[ -n "${TEST_POSTGRES_URL:-}" ] && exit 0
[ -n "${POSTGRES_BIN_DIR:-}" ] && [ -x "$POSTGRES_BIN_DIR/postgres" ] && exit 0
for bin in /usr/lib/postgresql/*/bin/postgres; do
  [ -x "$bin" ] && exit 0
done
command -v postgres >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "postgres not found: installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  exit 0
fi
echo "postgres not found: install it (sudo apt-get install postgresql) or set TEST_POSTGRES_URL" >&2
exit 1
