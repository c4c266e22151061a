-- Role and database for the ledger's read models. Run once as a superuser:
--   psql -v ON_ERROR_STOP=1 -v ledger_password="$LEDGER_DB_PASSWORD" -f init.sql
-- The password is a psql variable, never a literal in this file. Safe to re-run.
\set ON_ERROR_STOP on
\if :{?ledger_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'init.sql: pass the password with -v ledger_password=...'; END $$;
\endif

SELECT format('CREATE ROLE ledger LOGIN PASSWORD %L', :'ledger_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger')
\gexec

SELECT 'CREATE DATABASE ledger OWNER ledger ENCODING ''UTF8'' TEMPLATE template0'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ledger')
\gexec

REVOKE ALL ON DATABASE ledger FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE ledger TO ledger;

-- As the database owner, `ledger` owns schema public too (PostgreSQL 15+), which
-- is where the read-model migrations create their tables.
