import type { UsagePage } from "../replicate/schemas.js";
import { windowId, type SyncWindow } from "../domain/checkpoint.js";

/** `scope` names the connection, the token the request is made with and the run. */
const keyOf = (scope: string, w: SyncWindow) => `${scope}|${windowId(w)}|${w.pagesDone}|${w.nextUrl ?? ""}`;

/**
 * The first page of a window's next slice, requested while the current slice writes its last pages,
 * for the next slice's job if it runs in this process. The key holds everything the request depends
 * on, so a response is reused only for exactly that request; an unused one is dropped after `capacity` newer ones.
 */
export class PagePrefetcher {
  private readonly pages = new Map<string, Promise<UsagePage>>();

  constructor(private readonly capacity: number) {}

  /** The page fetched ahead for window `w` as it is now. */
  take(scope: string, w: SyncWindow): Promise<UsagePage> | undefined {
    const key = keyOf(scope, w);
    const page = this.pages.get(key);
    this.pages.delete(key);
    return page;
  }

  /** Starts fetching the page after `from` (the window once the current slice is written). */
  ahead(scope: string, from: SyncWindow, fetch: (at: SyncWindow) => Promise<UsagePage>): void {
    const key = keyOf(scope, from);
    if (!from.nextUrl || from.done || this.pages.has(key)) return;
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
