/** The intended layers, checked by `npm run lint` and `npm test` (dependency-cruiser). */
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
      name: "library-not-processors",
      comment: "processors in jobs/ use the library; only the entry point (src/main.ts) registers them",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/main\\.ts$" },
      to: { path: "^jobs/" },
    },
    {
      name: "processors-not-queue",
      comment: "a processor never sees BullMQ: the queue adapter calls it",
      severity: "error",
      from: { path: "^jobs/" },
      to: { path: "^src/queue/|^node_modules/bullmq/" },
    },
    {
      name: "repositories-are-the-bottom",
      comment: "repositories own data access and know nothing of the API, the queue, the lifecycle or the producer",
      severity: "error",
      from: { path: "^src/repositories/" },
      to: { path: "^src/(api|queue|lifecycle|producer|main|context)" },
    },
    {
      name: "domain-is-pure",
      comment: "the status vocabulary and the state machine depend on nothing but generated types",
      severity: "error",
      from: { path: "^src/domain/" },
      to: { path: "^src/", pathNot: "^src/(domain|generated)/" },
    },
    {
      name: "api-not-queue-internals",
      comment: "routes reach jobs only through the producer and the queue adapter on the context",
      severity: "error",
      from: { path: "^src/api/" },
      to: { path: "^src/(lifecycle|sync)/|^node_modules/bullmq/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/generated/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
