#!/usr/bin/env bash
# Install (Debian's chromium) the headless browser the dashboard's browser test drives through
# Playwright (never `playwright install`: Debian's build is used as is), idempotently.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
echo "chromium ready: $(command -v chromium)" >&2
