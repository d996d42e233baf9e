/**
 * setupFiles of the jest project `postgres`: the suites of this project open their ledgers on PostgreSQL (a
 * database of their own on the shared server of the global setup). See test/helpers/ledger.ts.
 */
process.env.TEST_LEDGER = 'postgres';
