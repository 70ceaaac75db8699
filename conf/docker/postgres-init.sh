#!/bin/bash
# First start of the postgres container only (docker-entrypoint-initdb.d): one database and role for the Hive
# metastore, one for luigid's task history. Passwords come from the container's environment (.env).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
     -v hive_pw="$HIVE_DB_PASSWORD" -v luigi_pw="$LUIGI_DB_PASSWORD" <<'SQL'
CREATE ROLE hive LOGIN PASSWORD :'hive_pw';
CREATE DATABASE metastore OWNER hive;
CREATE ROLE luigi LOGIN PASSWORD :'luigi_pw';
CREATE DATABASE luigi OWNER luigi;
SQL
