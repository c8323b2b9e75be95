import type { PredictionPage } from "../replicate/schemas.js";
import type { Checkpoint } from "./checkpoint.js";

/**
 * The next page, requested while this one is written: the job for page N starts fetching page N+1
 * as soon as it has page N's link, and the job for N+1 takes that response when it runs in the same
 * process (otherwise it fetches as usual). Only one page ahead: fetching further measured no faster
 * (bench/ANALYSIS.md), and after a disconnect at most that one request is still in flight. The key
 * holds everything the request depends on, so a response is reused only for exactly that request;
 * an unused one is dropped after `capacity` newer ones.
 */
export class PagePrefetcher {
  private readonly pages = new Map<string, Promise<PredictionPage>>();

  constructor(private readonly capacity: number) {}

  /** `scope` names the connection and the token the request is made with. */
  static key(scope: string, checkpoint: Checkpoint): string {
    return `${scope}|${checkpoint.runId}|${checkpoint.pagesDone}|${checkpoint.nextUrl ?? ""}`;
  }

  take(key: string): Promise<PredictionPage> | undefined {
    const page = this.pages.get(key);
    this.pages.delete(key);
    return page;
  }

  /** Starts fetching the page after `from` (the checkpoint once the current page is written). */
  ahead(scope: string, from: Checkpoint, fetch: (at: Checkpoint) => Promise<PredictionPage>): void {
    const key = PagePrefetcher.key(scope, from);
    if (!from.nextUrl || this.pages.has(key)) return;
    const page = fetch(from);
    // Its error reaches the job that takes it; one nobody takes must not be an unhandled rejection.
    page.catch(() => undefined);
    this.pages.set(key, page);
    for (const oldest of this.pages.keys()) {
      if (this.pages.size <= this.capacity) break;
      this.pages.delete(oldest);
    }
  }
}
