#!/usr/bin/env bash
# Installs redis-server for the test suite when the machine lacks it.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
echo "redis-server not found: installing it (tests start their own on a free port)" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install redis
else
  echo "please install redis-server (Redis >= 6.2) and put it on PATH" >&2
  exit 1
fi
command -v redis-server >/dev/null
