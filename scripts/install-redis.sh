#!/usr/bin/env bash
# Installs redis-server and redis-cli for the test suite when the machine
# lacks them (the cluster tests make their Redis Cluster with
# `redis-cli --cluster create`).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then exit 0; fi
echo "redis-server or redis-cli not found: installing them (tests start their own on free ports)" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install redis
else
  echo "please install redis-server and redis-cli (Redis >= 7.0) and put them on PATH" >&2
  exit 1
fi
command -v redis-server >/dev/null
command -v redis-cli >/dev/null
