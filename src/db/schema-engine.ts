import { readFile, readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { PrismaPg } from "@prisma/adapter-pg";
import { bindMigrationAwareSqlAdapterFactory } from "@prisma/driver-adapter-utils";
import * as bindings from "@prisma/schema-engine-wasm/schema_engine_bg";
import pg from "pg";
import type { SchemaEngine } from "@prisma/schema-engine-wasm";

// Prisma's CLI downloads a native schema engine, impossible offline; the wasm build talks to Postgres through the client's driver
// adapter and records migrations in `_prisma_migrations` exactly as `prisma migrate deploy` does.

export const SCHEMA_PATH = path.resolve("prisma/schema.prisma");
export const MIGRATIONS_DIR = path.resolve("prisma/migrations");
const LOCKFILE = "migration_lock.toml";
const NO_FILTERS = { externalTables: [], externalEnums: [] };

// adapter-pg's executeScript splits a script at every ";", which breaks function bodies. Postgres runs
// a multi-statement simple query itself, as one implicit transaction, so a migration applies whole or not at all.
// It also remembers its pools: the engine's free() does not close them.
class WholeScriptPg extends PrismaPg {
  readonly opened: { dispose(): Promise<void> }[] = [];

  override async connect() {
    const adapter = await super.connect();
    this.opened.push(adapter);
    adapter.executeScript = async (script: string) => {
      await adapter.underlyingDriver().query(script);
    };
    return adapter;
  }
}

let wasmReady: Promise<void> | undefined;

const loadWasm = () =>
  (wasmReady ??= (async () => {
    // The .wasm file is not in the package's exports map: find it beside the package's main file.
    const main = createRequire(import.meta.url).resolve("@prisma/schema-engine-wasm");
    const bytes = await readFile(path.join(path.dirname(main), "schema_engine_bg.wasm"));
    const { instance } = await WebAssembly.instantiate(bytes, { "./schema_engine_bg.js": bindings });
    const exports = instance.exports as { __wbindgen_start: () => void };
    bindings.__wbg_set_wasm(exports);
    exports.__wbindgen_start();
  })());

/** Runs `use` with a schema engine on the database, then releases the engine and its connections. */
async function withSchemaEngine<T>(databaseUrl: string, use: (engine: SchemaEngine) => Promise<T>, schemaText?: string): Promise<T> {
  await loadWasm();
  const datamodel = schemaText ?? (await readFile(SCHEMA_PATH, "utf8"));
  const factory = new WholeScriptPg({ connectionString: databaseUrl });
  const engine = await bindings.SchemaEngine.new(
    { datamodels: [[SCHEMA_PATH, datamodel]] },
    () => undefined,
    bindMigrationAwareSqlAdapterFactory(factory),
  );
  try {
    return await use(engine);
  } finally {
    engine.free();
    await Promise.all(factory.opened.map((adapter) => adapter.dispose()));
  }
}

/** Applies the pending migrations of `dir` (folders sort by name); returns the names applied (none on a second run). */
export async function applyMigrations(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<string[]> {
  const names = (await readdir(dir, { withFileTypes: true })).flatMap((e) => (e.isDirectory() ? [e.name] : [])).sort();
  const migrationDirectories = await Promise.all(
    names.map(async (name) => ({
      path: name,
      migrationFile: {
        path: "migration.sql",
        content: { tag: "ok" as const, value: await readFile(path.join(dir, name, "migration.sql"), "utf8") },
      },
    })),
  );
  const lockfile = { path: LOCKFILE, content: await readFile(path.join(dir, LOCKFILE), "utf8") };
  const migrationsList = { baseDir: dir, lockfile, shadowDbInitScript: "", migrationDirectories };
  return withSchemaEngine(databaseUrl, async (engine) => {
    const { appliedMigrationNames } = await engine.applyMigrations({ migrationsList, filters: NO_FILTERS });
    return appliedMigrationNames;
  });
}

/** SQL that takes a database from `fromSchema` (or empty) to `toSchema`; empty when nothing changed. */
export async function diffSchemas(databaseUrl: string, fromSchema: string | null, toSchema: string): Promise<string> {
  return withSchemaEngine(
    databaseUrl,
    async (engine) => {
      const result = await engine.diff({
        from: fromSchema === null ? { tag: "empty" } : { tag: "schemaDatamodel", files: [{ path: SCHEMA_PATH, content: fromSchema }] },
        to: { tag: "schemaDatamodel", files: [{ path: SCHEMA_PATH, content: toSchema }] },
        script: true,
        exitCode: null,
        filters: NO_FILTERS,
      });
      return result.stdout ?? "";
    },
    toSchema,
  );
}

/** Creates the database named in the URL when it does not exist yet (a fresh machine). Returns true when it did. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (rowCount) return false;
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    return true;
  } finally {
    await client.end();
  }
}
