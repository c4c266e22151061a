#!/bin/sh
# docker-entrypoint-initdb.d hook for the official postgres image: runs init.sql
# with the ledger's password passed as a psql variable (not written to disk).
set -eu
: "${LEDGER_DB_PASSWORD:?set LEDGER_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v ledger_password="$LEDGER_DB_PASSWORD" -f /ledger-init/init.sql
