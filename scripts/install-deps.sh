#!/usr/bin/env bash
# Install the Debian packages Postern's build needs, only those missing (idempotent).
#   libclang-dev: RocksDB's bindings (bindgen); pkg-config + libudev-dev: serial ports;
#   libwbxml2-utils: the WBXML differential test; kannel and prosody: peers of the HTTP provider and XMPP links; python3-venv: the smpplib interop test;
#   tzdata: time zones for scheduled sends (`send_at` in a named zone); postfix (its smtp-sink
#   and smtp-source, and a private Postfix for the email benchmark's anchor) and swaks: mail
#   peers of the email tests.
set -euo pipefail
want=(libclang-dev pkg-config libudev-dev tzdata)
if [ "${1:-}" = "--test" ]; then
  want+=(python3-venv libwbxml2-utils postfix swaks kannel prosody)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Postfix unconfigured: the tests run their own instances on loopback, none as a service.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
