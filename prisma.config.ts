import { defineConfig } from "prisma/config";

// Only the CLI reads this file; the service takes DATABASE_URL from src/config.ts.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/replicate_usage_sync" },
});
