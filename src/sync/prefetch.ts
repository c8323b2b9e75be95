import type { PredictionPage } from "../replicate/schemas.js";
import type { Checkpoint } from "./checkpoint.js";

/**
 * Pages requested ahead: while a worker writes page N it already fetches page N+1, and the job for
 * N+1 takes that response when it runs in the same process (otherwise it fetches as usual). The key
 * holds everything the request depends on, so a page is only reused for exactly the same request.
 */
export class PagePrefetcher {
  private readonly pages = new Map<string, Promise<PredictionPage>>();

  constructor(private readonly capacity: number) {}

  static key(connectionId: string, checkpoint: Checkpoint): string {
    return `${connectionId}|${checkpoint.runId}|${checkpoint.pagesDone}|${checkpoint.nextUrl ?? ""}`;
  }

  start(key: string, fetch: () => Promise<PredictionPage>): void {
    const page = fetch();
    // Its error reaches the job that takes it; one nobody takes must not be an unhandled rejection.
    page.catch(() => undefined);
    this.pages.set(key, page);
    // A page whose job ran in another process is never taken: keep only the newest few.
    for (const oldest of this.pages.keys()) {
      if (this.pages.size <= this.capacity) break;
      this.pages.delete(oldest);
    }
  }

  take(key: string): Promise<PredictionPage> | undefined {
    const page = this.pages.get(key);
    this.pages.delete(key);
    return page;
  }
}
