import { defineConfig } from 'drizzle-kit';

/** PostgreSQL ledger migrations, beside the SQLite ones (drizzle.config.ts writes drizzle/, this drizzle/pg/). */
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/ledger/pg-schema.ts',
  out: './drizzle/pg',
});
