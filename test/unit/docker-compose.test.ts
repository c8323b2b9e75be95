import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { shippedRuntime } from "../../bench/shipped.js";
import { CONFIG_VARIABLES } from "../../src/config.js";

// No Docker engine here: check the files' structure and that they agree with the service's config.

interface ComposeService {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
const compose = parse(readFileSync("docker-compose.yml", "utf8")) as { services: Record<string, ComposeService>; volumes: object };
const { postgres, redis, service } = compose.services;

test("three services, each with a healthcheck", () => {
  expect(Object.keys(compose.services).sort()).toEqual(["postgres", "redis", "service"]);
  for (const s of [postgres, redis, service]) expect(s?.healthcheck?.test.length).toBeGreaterThan(1);
});

test("Redis runs as BullMQ requires: noeviction, with AOF persistence on a volume", () => {
  const command = redis!.command!.join(" ");
  expect(command).toMatch(/--maxmemory-policy noeviction/);
  expect(command).toMatch(/--appendonly yes/);
  expect(compose.volumes).toHaveProperty("redisdata");
});

test("the service is built here, waits for healthy Postgres and Redis, and publishes its port", () => {
  expect(service!.build).toBe(".");
  expect(service!.depends_on).toEqual({ postgres: { condition: "service_healthy" }, redis: { condition: "service_healthy" } });
  expect(service!.ports).toContain("8080:8080");
  expect(service!.healthcheck!.test.join(" ")).toContain("/readyz");
});

test("its environment names only variables the service reads, including the required secrets", () => {
  const env = service!.environment!;
  expect(Object.keys(env).filter((k) => !CONFIG_VARIABLES.includes(k))).toEqual([]);
  expect(env.DATABASE_URL).toMatch(/@postgres:5432\//);
  expect(env.REDIS_URL).toBe("redis://redis:6379");
  expect(env.TOKEN_ENCRYPTION_KEYS).toMatch(/^\$\{TOKEN_ENCRYPTION_KEYS:\?/);
  expect(env.API_TOKEN).toMatch(/^\$\{API_TOKEN:\?/);
  expect(env.SUPPORT_TOKEN).toMatch(/^\$\{SUPPORT_TOKEN:\?/);
});

test("webhooks are passed through when set and stay off (empty) when not", () => {
  const env = service!.environment!;
  expect(env.WEBHOOK_URL).toBe("${WEBHOOK_URL:-}");
  expect(env.WEBHOOK_SECRET).toBe("${WEBHOOK_SECRET:-}");
});

test("the image runs the migrations, then the service, and listens on all interfaces", () => {
  const dockerfile = readFileSync("Dockerfile", "utf8");
  expect(dockerfile).toMatch(/^CMD .*node dist\/src\/cli\/migrate\.js && node (--\S+ )*dist\/src\/main\.js/m);
  expect(dockerfile).toMatch(/HOST=0\.0\.0\.0/);
  expect(dockerfile).toMatch(/RUN npm run build/);
});

test("the service runs with the heap setting the memory bench measures, in the image and in npm start, and compose keeps the image's command", () => {
  // V8's old generation grows to 1.5× what is live instead of up to 4×: the peak RSS of a backfill (bench/ANALYSIS.md, memory).
  const { nodeFlags } = shippedRuntime();
  expect(nodeFlags).toContain("--heap-growing-percent=50");
  const start = (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> }).scripts.start;
  expect(shippedRuntime(start).nodeFlags).toEqual(nodeFlags);
  expect(service!.command).toBeUndefined();
  expect(service).not.toHaveProperty("entrypoint");
});
