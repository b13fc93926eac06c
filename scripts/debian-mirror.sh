#!/usr/bin/env bash
# Print the Debian mirror this machine's apt already uses (on a machine that reaches only its
# package registries, the one debootstrap can reach); deb.debian.org when none is configured.
set -euo pipefail
mirror=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list 2>/dev/null || true) \
         | grep -oE '^(deb|URIs:) +https?://[^ ]+' | grep -v security | grep -E '/debian/?$' \
         | head -n 1 | sed -E 's/^(deb|URIs:) +//' || true)
echo "${mirror:-http://deb.debian.org/debian}"
