import { readFileSync } from "node:fs";
import { CONFIG_VARIABLES } from "../src/config.js";

/** What the image runs the service with besides its configuration: node flags and runtime environment (allocator settings). */
export interface Runtime {
  nodeFlags: string[];
  env: Record<string, string>;
}

/**
 * The runtime settings the Dockerfile ships, read from it so the memory bench runs the service the
 * way it is deployed: the flags of its `node … dist/src/main.js` and its ENV variables that are not
 * the service's configuration.
 */
export function shippedRuntime(dockerfile = readFileSync(new URL("../Dockerfile", import.meta.url), "utf8")): Runtime {
  const flags = /node ((?:--\S+ )*)dist\/src\/main\.js/.exec(dockerfile)?.[1] ?? "";
  const env: Record<string, string> = {};
  for (const line of dockerfile.matchAll(/^ENV (.+)$/gm)) {
    for (const [, name, value] of line[1]!.matchAll(/(\w+)=(\S+)/g)) if (!CONFIG_VARIABLES.includes(name!)) env[name!] = value!;
  }
  return { nodeFlags: flags.split(" ").filter(Boolean), env };
}
