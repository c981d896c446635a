#!/usr/bin/env bash
# Installs Postfix's smtp-sink and smtp-source for `make bench` when the
# machine lacks them: the raw smtp-source → smtp-sink rate on loopback is
# what issue 17's throughput targets are a ratio of (bench/rawsink_test.go).
# Debian ships both in the postfix package; it is installed with "No
# configuration", so no mail server is set up or started.
set -euo pipefail
for d in "" /usr/sbin/; do
  if command -v "${d}smtp-sink" >/dev/null 2>&1 && command -v "${d}smtp-source" >/dev/null 2>&1; then exit 0; fi
done
echo "smtp-sink/smtp-source not found: installing postfix (not configured, not started)" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if command -v apt-get >/dev/null 2>&1; then
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postfix >/dev/null
else
  echo "please install Postfix's smtp-sink and smtp-source (package postfix)" >&2
  exit 1
fi
command -v /usr/sbin/smtp-sink >/dev/null
