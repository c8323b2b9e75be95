import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from "fastify";
import { z } from "zod";

/** Routes without query parameters still refuse unknown ones. */
const noQuery = z.strictObject({});
type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

/** One documented route (no querystring: unknown parameters are a 400); the handler returns its success body, or the reply. */
export interface Operation<P = unknown, Q = unknown, B = unknown, H = unknown> {
  route: `${HTTPMethods} /${string}`;
  operationId: string;
  summary: string;
  description?: string;
  params?: P;
  querystring?: Q;
  body?: B;
  headers?: H;
  security?: [];
  response: Record<string | number, unknown>;
  preValidation?: (request: FastifyRequest) => Promise<void>;
  handler: (request: { params: Out<P>; query: Out<Q>; body: Out<B>; headers: Out<H> }, reply: FastifyReply) => Promise<unknown>;
}

/** Types one operation's handler from its schemas. */
export const op = <P, Q, B, H>(operation: Operation<P, Q, B, H>) => operation as Operation;

export function mount(app: FastifyInstance, tags: string[], operations: Operation[]): void {
  for (const { route, handler, preValidation, response, ...schema } of operations) {
    const [method, url] = route.split(" ") as [HTTPMethods, string];
    const status = Number(Object.keys(response)[0]);
    app.route({
      method,
      url,
      preValidation,
      schema: { tags, querystring: noQuery, response, ...schema },
      handler: async (request, reply) => {
        const body = await handler(request as never, reply);
        return body === reply ? reply : reply.code(status).send(body);
      },
    });
  }
}
