#!/usr/bin/env bash
# Installs the real SMTP sink the notification tests deliver email to, idempotently:
# Debian's python3-aiosmtpd (run as `/usr/bin/python3 -m aiosmtpd`, writing a Maildir).
set -euo pipefail

if /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "setup-smtp: aiosmtpd already installed"
  exit 0
fi
echo "setup-smtp: installing python3-aiosmtpd"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq python3-aiosmtpd
/usr/bin/python3 -c 'import aiosmtpd' || { echo "setup-smtp: aiosmtpd is still missing" >&2; exit 1; }
