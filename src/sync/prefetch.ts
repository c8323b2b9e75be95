import type { UsagePage } from "../replicate/schemas.js";
import { windowId, type SyncWindow } from "../domain/checkpoint.js";

/**
 * The first page of a window's next slice, requested while the current slice writes its last pages:
 * the job for the next slice takes that response when it runs in the same process (otherwise it
 * fetches as usual). The key holds everything the request depends on, so a response is reused only
 * for exactly that request; an unused one is dropped after `capacity` newer ones.
 */
export class PagePrefetcher {
  private readonly pages = new Map<string, Promise<UsagePage>>();

  constructor(private readonly capacity: number) {}

  /** `scope` names the connection and the token the request is made with. */
  static key(scope: string, at: { runId: string; window: SyncWindow }): string {
    return `${scope}|${at.runId}|${windowId(at.window)}|${at.window.pagesDone}|${at.window.nextUrl ?? ""}`;
  }

  take(key: string): Promise<UsagePage> | undefined {
    const page = this.pages.get(key);
    this.pages.delete(key);
    return page;
  }

  /** Starts fetching the page after `from` (the window once the current slice is written). */
  ahead(scope: string, from: { runId: string; window: SyncWindow }, fetch: (at: SyncWindow) => Promise<UsagePage>): void {
    const key = PagePrefetcher.key(scope, from);
    if (!from.window.nextUrl || from.window.done || this.pages.has(key)) return;
    const page = fetch(from.window);
    // Its error reaches the job that takes it; one nobody takes must not be an unhandled rejection.
    page.catch(() => undefined);
    this.pages.set(key, page);
    for (const oldest of this.pages.keys()) {
      if (this.pages.size <= this.capacity) break;
      this.pages.delete(oldest);
    }
  }
}
