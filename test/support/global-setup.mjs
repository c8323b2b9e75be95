// Jest loads global set-up outside its transform pipeline; tsx loads the TypeScript it needs.
import { tsImport } from "tsx/esm/api";

export default async function globalSetup() {
  const { migrateTemplateDatabase } = await tsImport("./template-database.ts", import.meta.url);
  await migrateTemplateDatabase();
}
