import type { FastifyInstance } from "fastify";
import { buildServer } from "../../src/api/server.js";
import { API_TOKEN, createHarness, type Harness } from "./harness.js";

export const AUTH = { authorization: `Bearer ${API_TOKEN}` };

export interface Api {
  app: FastifyInstance;
  origin: string;
  /** Every response body, for leak checks. */
  responses: string[];
  call(
    method: "GET" | "POST" | "PUT" | "DELETE",
    url: string,
    payload?: object,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

/** The HTTP API of a harness on a loopback port, and a fetch helper that sends the API token. */
export async function startApi(h: Harness): Promise<Api> {
  const app = await buildServer(h.ctx);
  const origin = await app.listen({ host: "127.0.0.1", port: 0 });
  const responses: string[] = [];
  return {
    app,
    origin,
    responses,
    async call(method, url, payload, headers = AUTH) {
      const res = await fetch(origin + url, {
        method,
        headers: { ...headers, ...(payload ? { "content-type": "application/json" } : {}) },
        body: payload ? JSON.stringify(payload) : undefined,
      });
      const text = await res.text();
      responses.push(text);
      return { status: res.status, body: text ? (res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text) : null };
    },
    close: () => app.close(),
  };
}

/** Registers beforeAll/afterAll for a test file: a harness with running workers, and its HTTP API. */
export function withApi(env: Record<string, string> = {}): { h: Harness; api: Api } {
  const started = {} as { h: Harness; api: Api };
  beforeAll(async () => {
    started.h = await createHarness(env);
    started.api = await startApi(started.h);
  });
  afterAll(async () => {
    await started.api.close();
    await started.h.close();
  });
  return started;
}
