#!/bin/sh
# Entry point of the local PostgreSQL image (scripts/build-compose-images.sh): the part of the
# official postgres image's contract that docker-compose.yml uses. POSTGRES_USER, _PASSWORD and
# _DB create the role and database the first time; the data folder is the volume.
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    as_postgres pg_ctl --wait --silent -o "-c listen_addresses=''" start
    as_postgres psql --quiet --username="$POSTGRES_USER" --dbname=postgres \
      --command="CREATE DATABASE \"$POSTGRES_DB\""
    as_postgres pg_ctl --wait --silent --mode=fast stop
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
  postgres -c listen_addresses='*' "$@"
