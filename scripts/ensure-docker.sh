#!/usr/bin/env bash
# Install (Debian's docker.io) and start a Docker engine for the test suite, idempotently.
set -euo pipefail
if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd..." >&2
  setsid dockerd --host unix:///var/run/docker.sock >/tmp/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    docker info >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
echo "docker engine ready" >&2
