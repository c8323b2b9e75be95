import { WindowReader } from "../../src/sync/run.js";
import type { UsagePage } from "../../src/replicate/schemas.js";

/** One request the reader made: the test says when it goes out and how it ends. */
interface Request {
  url: string | null;
  sent: () => void;
  resolve: (page: UsagePage) => void;
  reject: (err: Error) => void;
}

function reader() {
  const requests: Request[] = [];
  const read = new WindowReader(
    (url, sent) => new Promise<UsagePage>((resolve, reject) => requests.push({ url, sent, resolve, reject })),
    null,
    () => 0,
    4,
  );
  return { read, requests };
}
// One prediction each: an empty page would end the window.
const page = (next: string | null) => ({ next, results: [{ created_at: new Date() }] }) as unknown as UsagePage;
// Every callback already due has run (no timing involved: one turn of the event loop).
const settle = () => new Promise((resolve) => setImmediate(resolve));

test("pages reach the writer once the next page's request has gone out, so writing them cannot hold that request back", async () => {
  const { read, requests } = reader();
  requests[0]!.sent();
  requests[0]!.resolve(page("/v1/predictions?cursor=2"));
  let taken: UsagePage[] | undefined;
  const take = read.take().then((pages) => (taken = pages));
  await settle();
  expect(requests.map((r) => r.url)).toEqual([null, "/v1/predictions?cursor=2"]);
  expect(taken).toBeUndefined();

  requests[1]!.sent();
  await take;
  expect(taken).toHaveLength(1);
});

test("a next request that fails before it goes out (its slot refused) releases the pages, and its error reaches the writer", async () => {
  const { read, requests } = reader();
  requests[0]!.resolve(page("/v1/predictions?cursor=2"));
  const take = read.take();
  await settle();
  requests[1]!.reject(new Error("local request cap reached"));
  expect(await take).toHaveLength(1);
  await expect(read.take()).rejects.toThrow("local request cap reached");
});

test("the last page is handed on at once: no request follows it", async () => {
  const { read, requests } = reader();
  requests[0]!.resolve(page(null));
  expect(await read.take()).toHaveLength(1);
  expect(requests).toHaveLength(1);
  expect(await read.take()).toEqual([]);
});
