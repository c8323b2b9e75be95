import type { Db } from "../db/client.js";

/** A workspace never set has the defaults (no row, updatedAt null); a null timeZone is UTC. */
export async function readWorkspaceSettings(db: Db, workspaceId: string) {
  const row = await db.workspaceSettings.findUnique({ where: { workspaceId } });
  return row ?? { workspaceId, timeZone: null, updatedAt: null };
}

export async function writeWorkspaceSettings(db: Db, workspaceId: string, settings: { timeZone: string | null }) {
  return db.workspaceSettings.upsert({
    where: { workspaceId },
    create: { workspaceId, ...settings },
    update: { ...settings, updatedAt: new Date() },
  });
}

/** The default zone of a usage query's workspace (given, or the connection's); null when it has none. */
export async function defaultTimeZone(db: Db, scope: { workspaceId?: string; connectionId?: string }): Promise<string | null> {
  const [row] = await db.$queryRawUnsafe<{ time_zone: string | null }[]>(
    `SELECT s.time_zone FROM workspace_settings s
     WHERE s.workspace_id = coalesce($1::text, (SELECT c.workspace_id FROM connections c WHERE c.id = $2::uuid))`,
    scope.workspaceId ?? null,
    scope.connectionId ?? null,
  );
  return row?.time_zone ?? null;
}

const zoneNames = new WeakMap<Db, Promise<Set<string>>>();

/** The zone names Postgres knows (its IANA database), read once per client. */
export function postgresZones(db: Db): Promise<Set<string>> {
  let names = zoneNames.get(db);
  if (!names) {
    names = db.$queryRawUnsafe<{ name: string }[]>(`SELECT name FROM pg_timezone_names`).then((rows) => new Set(rows.map((r) => r.name)));
    names.catch(() => zoneNames.delete(db));
    zoneNames.set(db, names);
  }
  return names;
}
