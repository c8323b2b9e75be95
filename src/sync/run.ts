import type { Config } from "../config.js";
import type { Db } from "../db/client.js";
import type { ReplicateClient } from "../replicate/client.js";
import type { UsagePage } from "../replicate/schemas.js";
import { startRun, type RunStart } from "../repositories/runs.js";
import { tokenFingerprint } from "../vault.js";
import { newCheckpoint, type Checkpoint, type SyncWindow } from "../domain/checkpoint.js";
import { applyPages, type Slice, type SliceResult } from "./engine.js";
import type { PagePrefetcher } from "./prefetch.js";

/**
 * Pages read ahead of the writer in a slice. They are written together in one statement (one commit
 * for several pages) whenever the write is the slower half; a few bound what a disconnect discards.
 */
const READ_AHEAD_PAGES = 4;

/** Starts a run over the window the settings give (with its sync_started event), or returns the current one; null unless connected. */
export function beginRun(
  db: Db,
  connectionId: string,
  settings: Pick<Config["sync"], "backfillDays" | "lookbackHours">,
  now = new Date(),
  jobId?: string,
): Promise<RunStart | null> {
  return startRun(
    db,
    connectionId,
    now,
    (read) => newCheckpoint({ ...read, ...settings, now }),
    (started) => ({
      jobId,
      kind: "sync_started",
      message: `sync started for predictions and trainings created from ${started.windowStart} to ${started.windowEnd}`,
      detail: { runId: started.runId, windowStart: started.windowStart, windowEnd: started.windowEnd },
    }),
  );
}

/**
 * A window's pages, fetched one after another up to `max` ahead of the writer, until its last page,
 * an empty page, a page reaching below its start (read as the page arrives: a split moves it; this
 * is what ends the trainings' paging), or stop().
 */
export class WindowReader {
  private readonly queue: { page: Promise<UsagePage>; sent: Promise<void>; value?: UsagePage }[] = [];
  /** Nothing more is requested: the window ended, a request failed, or the reader was stopped. */
  private finished = false;

  constructor(
    private readonly fetch: (url: string | null, onSent: () => void) => Promise<UsagePage>,
    private url: string | null,
    private readonly start: () => number,
    private readonly max: number,
    first?: Promise<UsagePage>,
  ) {
    this.pump(first);
  }

  /**
   * Every page that has arrived (at least one, waiting for it), oldest first; [] once nothing more comes.
   * Returns once the next page's request has gone out: writing the pages holds the event loop for
   * milliseconds, and a request waiting for its rate-cap slot's answer would wait that long too. A
   * paced token's slot may hold them back up to a second or two; its pace bounds that window anyway.
   */
  async take(): Promise<UsagePage[]> {
    const head = this.queue[0];
    if (!head) return [];
    await head.page;
    const pages: UsagePage[] = [];
    while (this.queue[0]?.value) pages.push(this.queue.shift()!.value!);
    this.pump();
    await this.queue.at(-1)?.sent;
    return pages;
  }

  /** No request is started after this; the one in flight (if any) is still taken. */
  stop(): void {
    this.finished = true;
  }

  private pump(first?: Promise<UsagePage>): void {
    // One request at a time (each link is in the previous page): the last entry has no value while it is in flight.
    const last = this.queue.at(-1);
    if (this.finished || (last && !last.value) || this.queue.length >= this.max) return;
    let markSent!: () => void;
    const sent = new Promise<void>((resolve) => (markSent = resolve));
    const page = first ?? this.fetch(this.url, markSent);
    // A request that fails before it is sent (its slot refused) settles its page instead.
    page.then(markSent, markSent);
    const entry: (typeof this.queue)[number] = { page, sent };
    this.queue.push(entry);
    entry.page.then(
      (page) => {
        entry.value = page;
        this.url = page.next;
        const below = page.results.some((p) => p.created_at.getTime() < this.start());
        this.finished ||= !page.next || page.results.length === 0 || below;
        this.pump();
      },
      // The error reaches the writer through take(); here it only ends the reading.
      () => (this.finished = true),
    );
  }
}

/**
 * Reads and writes one window for about `sliceMs`, or until a write splits it, fetching ahead while
 * earlier pages are written; what has arrived is written together in one fenced statement. With a
 * prefetcher, the first page comes from the previous slice and the next slice's first page is
 * requested before returning.
 */
export async function runSlice(
  db: Db,
  client: ReplicateClient,
  token: string,
  connectionId: string,
  checkpoint: Checkpoint,
  id: string,
  settings: Pick<Config["sync"], "sliceMs" | "parallelism"> & { prefetcher?: PagePrefetcher; deferClose?: boolean },
): Promise<SliceResult> {
  const { prefetcher } = settings;
  // A response fetched with a token that has since been replaced, or for another run, is never reused.
  const scope = `${connectionId}|${tokenFingerprint(token)}|${checkpoint.runId}`;
  const deadline = Date.now() + settings.sliceMs;
  // A window's next page: its filtered first page (the newest trainings for the trainings window), then the `next` links.
  const fetchAt = (w: SyncWindow, onSent?: () => void): Promise<UsagePage> =>
    w.kind === "training"
      ? client.listTrainings(token, { connectionId, cursorUrl: w.nextUrl, onSent })
      : client.listPredictions(token, {
          connectionId,
          onSent,
          cursorUrl: w.nextUrl,
          createdAfter: new Date(w.start),
          createdBefore: new Date(w.end),
        });
  const throttled = async () => {
    const rate = await client.learnedRate(token);
    return rate !== null && rate.requestsPerSecond < rate.configuredPerSecond;
  };
  let current = checkpoint;
  const window = () => current.windows[id]!;
  const first = window();
  const reader = new WindowReader(
    (url, onSent) => fetchAt({ ...window(), nextUrl: url }, onSent),
    first.nextUrl,
    () => Date.parse(window().start),
    READ_AHEAD_PAGES,
    prefetcher?.take(scope, first),
  );
  let done: Slice = { applied: true, windowId: id, checkpoint, pages: 0, predictions: 0, rejected: [], newWindows: [] };
  for (let pages = await reader.take(); pages.length > 0; pages = await reader.take()) {
    if (Date.now() >= deadline) reader.stop();
    const written = await applyPages(db, connectionId, current, id, pages, { ...settings, throttled });
    if (!written.applied) {
      reader.stop();
      return written;
    }
    current = written.checkpoint;
    done = {
      ...written,
      pages: done.pages + written.pages,
      predictions: done.predictions + written.predictions,
      rejected: [...done.rejected, ...written.rejected],
      newWindows: [...done.newWindows, ...written.newWindows],
    };
    if (written.closes || window().done) return done;
    // Windows split off are read by jobs of their own, started when this slice hands them on: it ends
    // once the pages already requested are written (none is dropped, nor its error).
    if (written.newWindows.length > 0) reader.stop();
  }
  prefetcher?.ahead(scope, window(), fetchAt);
  return done;
}
