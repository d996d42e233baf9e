#!/usr/bin/env bash
# Makes sure redis-server is installed: Debian's package when we can install it, else a one-line instruction.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing Debian's redis-server package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq redis-server >/dev/null
  exit 0
fi
echo "redis-server not found: install it (sudo apt-get install redis-server) or set REDIS_URL" >&2
exit 1
