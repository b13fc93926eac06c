#!/usr/bin/env bash
# Build the images docker-compose.yml needs on a machine that reaches no image registry, and
# install docker-compose; the compose test (tests/e2e/test_compose_stack.py) and
# docs/operator.md use them:
#   gpumarket-local/debian:12        Debian minbase + Python 3.11, pip, PostgreSQL 15, this
#                                    machine's CA certificates (~90 s): BASE_IMAGE
#   gpumarket-local/postgres:15      that base with an entry point like the postgres image's
#   gpumarket-local/foundry:1.7.1    that base with anvil and cast from contracts/node_modules
# It prints the settings that pick them:
#   eval "$(bash scripts/build-compose-images.sh)" && docker-compose up --build
# Idempotent: an image that exists is kept. Needs the Docker engine and `make contracts`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || { apt-get update -qq >/dev/null; apt-get install -y -qq "$1" >/dev/null; }; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker-compose >/dev/null || need_pkg docker-compose

base=gpumarket-local/debian:12
if ! have "$base"; then
  need_pkg debootstrap
  mirror=$(bash scripts/debian-mirror.sh)
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase \
    --include=python3,python3-pip,python-is-python3,passwd,ca-certificates,postgresql-15 \
    bookworm "$root" "$mirror" >/tmp/debootstrap-compose.log 2>&1 \
    || { tail -n 20 /tmp/debootstrap-compose.log >&2; exit 1; }
  # pip inside builds reaches PyPI through whatever TLS this machine trusts
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  # Debian marks its Python as externally managed; an image's Python is the image's own
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    -c 'CMD ["python3"]' - "$base" >/dev/null
  rm -rf "$root"
  trap - EXIT
  echo "built $base" >&2
fi

if ! have gpumarket-local/postgres:15; then
  docker build -q -t gpumarket-local/postgres:15 --build-arg BASE_IMAGE="$base" \
    -f deploy/local/postgres.Dockerfile deploy/local >/dev/null
  echo "built gpumarket-local/postgres:15" >&2
fi

if ! have gpumarket-local/foundry:1.7.1; then
  ctx=$(mktemp -d)
  cp contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil \
     contracts/node_modules/@foundry-rs/cast-linux-amd64/bin/cast "$ctx/"
  docker build -q -t gpumarket-local/foundry:1.7.1 --build-arg BASE_IMAGE="$base" \
    -f deploy/local/foundry.Dockerfile "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "built gpumarket-local/foundry:1.7.1" >&2
fi

# for `eval "$(bash scripts/build-compose-images.sh)"` before `docker-compose up --build`
echo "export BASE_IMAGE=$base POSTGRES_IMAGE=gpumarket-local/postgres:15 FOUNDRY_IMAGE=gpumarket-local/foundry:1.7.1"
