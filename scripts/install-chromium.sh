#!/usr/bin/env bash
# Installs headless Chromium (Debian's chromium package) for the
# dashboard's browser test (pkg/dashboard) when the machine lacks it.
# Locally the test skips without a browser; in CI (CI=true) it fails.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
echo "chromium not found: installing it (the dashboard's browser test drives it headless)" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
else
  echo "please install Chromium and put it on PATH as chromium" >&2
  exit 1
fi
command -v chromium >/dev/null
