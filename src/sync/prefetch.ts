import type { PredictionPage } from "../replicate/schemas.js";
import type { Checkpoint } from "./checkpoint.js";

/**
 * Pages requested ahead of the writes: while a worker writes page N, pages N+1… are already being
 * fetched, each as soon as the link to it is known, so fetching never waits for the database. The
 * job for a page takes its response when it runs in the same process (otherwise it fetches as
 * usual). The key holds everything the request depends on, so a response is only reused for exactly
 * the same request; an unused one is dropped after `capacity` newer ones.
 */
export class PagePrefetcher {
  private readonly pages = new Map<string, Promise<PredictionPage>>();

  constructor(
    private readonly capacity: number,
    private readonly depth = 3,
  ) {}

  /** `scope` names the connection and the token the request is made with. */
  static key(scope: string, checkpoint: Checkpoint): string {
    return `${scope}|${checkpoint.runId}|${checkpoint.pagesDone}|${checkpoint.nextUrl ?? ""}`;
  }

  take(key: string): Promise<PredictionPage> | undefined {
    const page = this.pages.get(key);
    this.pages.delete(key);
    return page;
  }

  /** Starts fetching the pages after `from` (the checkpoint once the current page is written), up to `depth` ahead. */
  ahead(scope: string, from: Checkpoint, fetch: (at: Checkpoint) => Promise<PredictionPage>, depth = this.depth): void {
    if (depth <= 0 || !from.nextUrl) return;
    const key = PagePrefetcher.key(scope, from);
    let page = this.pages.get(key);
    if (!page) {
      page = fetch(from);
      this.pages.set(key, page);
      for (const oldest of this.pages.keys()) {
        if (this.pages.size <= this.capacity) break;
        this.pages.delete(oldest);
      }
    }
    // A failed fetch stops the read-ahead; its error reaches the job that takes it (never unhandled).
    page.then(
      (fetched) => this.ahead(scope, { ...from, pagesDone: from.pagesDone + 1, nextUrl: fetched.next }, fetch, depth - 1),
      () => undefined,
    );
  }
}
