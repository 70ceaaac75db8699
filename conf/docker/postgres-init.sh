#!/bin/bash
# First start of the postgres container only (docker-entrypoint-initdb.d): one database and role for the Hive
# metastore, one for luigid's task history, and luigi_reader, which may read that task history and nothing else
# (the dashboard's Pipeline & SLA page). No other role may connect to either database. Passwords come from this
# container's environment (.env); docs/cluster.md has the same statements for a stack created before them.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
     -v hive_pw="$HIVE_DB_PASSWORD" -v luigi_pw="$LUIGI_DB_PASSWORD" -v reader_pw="$DASHBOARD_DB_PASSWORD" <<'SQL'
CREATE ROLE hive LOGIN PASSWORD :'hive_pw';
CREATE DATABASE metastore OWNER hive;
CREATE ROLE luigi LOGIN PASSWORD :'luigi_pw';
CREATE DATABASE luigi OWNER luigi;
CREATE ROLE luigi_reader LOGIN PASSWORD :'reader_pw';
REVOKE ALL ON DATABASE metastore FROM PUBLIC;
REVOKE ALL ON DATABASE luigi FROM PUBLIC;
GRANT CONNECT ON DATABASE luigi TO luigi_reader;
\connect luigi
-- luigid creates its tables (as luigi) on its first start, after this
ALTER DEFAULT PRIVILEGES FOR ROLE luigi IN SCHEMA public GRANT SELECT ON TABLES TO luigi_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO luigi_reader;
SQL
