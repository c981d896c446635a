#!/usr/bin/env bash
# Installs what the DKIM signer's fast path and its cross-check need, when
# missing: OpenSSL's libcrypto headers (libssl-dev; `make build`/`make test`
# then build with -tags openssl) and dkimpy (python3-dkim, with python3-nacl
# for Ed25519), the independent verifier pkg/dkim's tests run. Without them
# everything still builds and passes with Go's crypto/rsa; CI installs them
# so the libcrypto signer is built, tested and checked against dkimpy.
set -euo pipefail
need=()
if ! echo 'int main(void){return 0;}' | cc -include openssl/evp.h -x c - -lcrypto -o /dev/null 2>/dev/null; then
  need+=(libssl-dev)
fi
if ! /usr/bin/python3 -c 'import dkim, nacl' 2>/dev/null; then
  need+=(python3-dkim python3-nacl)
fi
if [ ${#need[@]} = 0 ]; then exit 0; fi
echo "installing ${need[*]} (DKIM: libcrypto signer and dkimpy cross-check)" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "please install OpenSSL's development files and dkimpy (python3 -m pip install dkimpy pynacl)" >&2
  exit 1
fi
