// Prisma CLI configuration (Prisma 7 reads no .env and wants the datasource URL here).
// `prisma generate` needs no database; migrations go through src/db/migrate.ts, which
// reads the same file so both agree on where the schema and the migrations live.
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env['DATABASE_URL'] ?? '' },
});
