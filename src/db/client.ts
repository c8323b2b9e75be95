import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../generated/prisma/client.js";

export type Db = PrismaClient;

/** The Prisma 7 client over node-postgres: no native engine binary needed. */
export function createDb(databaseUrl: string, poolSize = 10): Db {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: poolSize }) });
}

/** Readiness: resolves when the database answers a trivial query. */
export async function ping(db: Db): Promise<void> {
  await db.$queryRawUnsafe("SELECT 1");
}
