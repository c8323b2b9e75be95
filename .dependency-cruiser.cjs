/**
 * The intended layers, checked by `npm run lint` and `npm test` (dependency-cruiser). Each layer
 * lists what it may import (an allow-list: anything else in src/ or jobs/ is an error), from the
 * bottom up:
 *
 *   domain → foundation (errors, redact, logger, config, vault) → db, repositories → replicate, queue
 *   → sync, pricing, webhooks → context, metrics → lifecycle → jobs, producer → api
 *   → the composition root (service.ts, main.ts, cli/), which builds every dependency and hands it down.
 */
const FOUNDATION = "^src/(errors|redact|logger|config|vault)\\.ts$";
const under = (...dirs) => `^src/(${dirs.join("|")})/`;
const files = (...names) => `^src/(${names.join("|")})\\.ts$`;

/** `from` may import, inside src/ and jobs/, only what `allowed` matches. */
const layer = (name, comment, from, ...allowed) => ({
  name,
  comment,
  severity: "error",
  from: { path: from },
  to: { path: "^(src|jobs)/", pathNot: allowed.join("|") },
});

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      from: { path: "^(src|jobs)/" },
      to: { circular: true },
    },
    {
      name: "library-not-tooling",
      comment: "src/ is the library: it never imports tests, development tooling, benchmarks or the demo",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|dev|bench|demo)/" },
    },
    {
      name: "only-the-root-registers-processors",
      comment: "processors in jobs/ use the library; only the composition root (src/service.ts) registers them",
      severity: "error",
      from: { path: "^src/", pathNot: files("service") },
      to: { path: "^jobs/" },
    },
    {
      name: "bullmq-behind-the-adapter",
      comment: "BullMQ is reached only through the queue adapter and its workers (src/queue/)",
      severity: "error",
      from: { path: "^(src|jobs)/", pathNot: under("queue") },
      to: { path: "^node_modules/bullmq/" },
    },
    layer("domain-is-pure", "pure models: nothing but generated types", under("domain"), under("domain", "generated")),
    layer("foundation", "errors, redaction, logging, configuration, the vault", FOUNDATION, under("domain", "generated"), FOUNDATION),
    layer("db", "the database client and migrations", under("db"), under("db", "domain", "generated"), FOUNDATION),
    layer(
      "repositories-are-data-access",
      "repositories own data access: rows in and out, the pure models and the input schemas they store; no API, queue, lifecycle or producer",
      under("repositories"),
      under("repositories", "db", "domain", "generated"),
      files("errors", "redact", "vault"),
      "^src/(replicate|pricing)/schemas\\.ts$",
    ),
    layer(
      "replicate-client",
      "the Replicate client knows no storage",
      under("replicate"),
      under("replicate", "domain", "generated"),
      FOUNDATION,
    ),
    layer(
      "queue-is-an-adapter",
      "the BullMQ adapter, its registry and workers: no lifecycle, context or repository (src/service.ts injects them)",
      under("queue"),
      under("queue", "domain", "generated"),
      FOUNDATION,
    ),
    layer(
      "engines",
      "the sync engine, pricing and webhooks: data access and the client, never the queue or what runs them",
      under("sync", "pricing", "webhooks"),
      under("sync", "pricing", "webhooks", "repositories", "replicate", "db", "domain", "generated"),
      FOUNDATION,
    ),
    layer(
      "context-holds-no-data-access",
      "the context is the types of what is handed down; it opens nothing and queries nothing",
      files("context"),
      under("queue", "replicate", "sync", "db", "domain", "generated"),
      files("metrics"),
      FOUNDATION,
    ),
    layer(
      "metrics",
      "reads queue depth and connection ages",
      files("metrics"),
      under("queue", "repositories", "db", "domain", "generated"),
      FOUNDATION,
    ),
    layer(
      "lifecycle",
      "what jobs call; it reaches the queue through the context, never src/queue/",
      under("lifecycle"),
      under("lifecycle", "sync", "pricing", "webhooks", "repositories", "replicate", "db", "domain", "generated"),
      files("context"),
      FOUNDATION,
    ),
    layer(
      "processors",
      "a processor never sees BullMQ: it calls the lifecycle with what the context hands it",
      "^jobs/",
      "^jobs/",
      under("lifecycle", "webhooks", "domain", "generated"),
      files("context"),
      FOUNDATION,
    ),
    layer(
      "producer",
      "the backend's API: the stores it opens, the lifecycle steps and data access, the answer schemas its results are typed by",
      files("producer"),
      under("lifecycle", "repositories", "queue", "db", "domain", "generated"),
      files("context", "api/schemas", "pricing/schemas"),
      FOUNDATION,
    ),
    layer(
      "answer-schemas",
      "the API's answer schemas are a contract the producer shares: pure zod over the domain and the price book's schemas",
      files("api/schemas"),
      under("domain", "generated"),
      "^src/pricing/schemas\\.ts$",
    ),
    layer(
      "api",
      "routes answer through the producer; they never reach repositories, the lifecycle, the sync engine or BullMQ",
      under("api"),
      under("api", "db", "domain", "generated"),
      "^src/pricing/schemas\\.ts$",
      files("producer", "context"),
      FOUNDATION,
    ),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/generated/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
