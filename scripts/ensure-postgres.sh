#!/usr/bin/env bash
# Install (Debian package) and start a local PostgreSQL for the test suite, idempotently, and
# make sure the test role and database exist. With --url, print only the connection URL.
set -euo pipefail
URL="postgresql+psycopg://gpumarket:gpumarket@127.0.0.1:5432/gpumarket_test"
if [[ "${1:-}" == "--url" ]]; then echo "$URL"; exit 0; fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing postgresql (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
if [[ -z "$version" ]]; then
  echo "no PostgreSQL cluster found under /etc/postgresql" >&2; exit 1
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
  pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 50); do
  su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
  sleep 0.2
done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='gpumarket'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE gpumarket LOGIN PASSWORD 'gpumarket' CREATEDB\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='gpumarket_test'\"" | grep -q 1 \
  || su postgres -c "psql -qc 'CREATE DATABASE gpumarket_test OWNER gpumarket'"
echo "postgresql $version ready: $URL" >&2
