/**
 * Exposures and conversions from a page to Flagstaff's `/exposures` and `/track`.
 *
 * Events are batched (one request per `flushIntervalMs`, or as soon as `maxBatch` are waiting),
 * exposures are deduplicated for the page session (the same user seeing the same variant of
 * the same flag is one exposure however often the component renders), and whatever is waiting
 * when the page is hidden or unloaded goes out with `navigator.sendBeacon`.
 *
 * Every request is a CORS "simple request": a `text/plain` body with the client-side key
 * inside it and no custom header, so the browser sends no preflight, and a beacon (which
 * cannot carry headers) works the same way. Batches carry a random `batch_id`: the server
 * counts a retried batch once.
 */

export interface ExposureEvent {
  flag_key: string;
  variant: string;
  user_key: string;
  timestamp: string;
  reason: string;
  flag_version: number | null;
  in_experiment: boolean;
}

export interface MetricEvent {
  metric: string;
  user_key: string;
  value: number | null;
  timestamp: string;
}

type Kind = "exposures" | "track";

export interface EventRecorderOptions {
  /** The Flagstaff server, as given to the OFREP provider (e.g. `https://flags.example.com`). */
  baseUrl: string;
  /** The environment's client-side key (`fsc_...`). */
  clientKey: string;
  /** Longest an event waits before it is sent (default 5 s). */
  flushIntervalMs?: number;
  /** Send as soon as this many events wait (default 100; the server takes up to 1,000). */
  maxBatch?: number;
  /** Events kept while the server is unreachable; the oldest are dropped beyond (default 1,000). */
  maxQueue?: number;
  /** Injected in tests; default the global `fetch`. */
  fetch?: typeof fetch;
  /** Injected in tests; default `navigator.sendBeacon`. */
  sendBeacon?: (url: string, data: BodyInit) => boolean;
  /** Where page-hide events are listened for (default the global `window`/`document`). */
  target?: Pick<Window, "addEventListener" | "removeEventListener"> | null;
  document?: Pick<Document, "visibilityState" | "addEventListener" | "removeEventListener"> | null;
  /** Called when a batch is refused for good (4xx other than 429); default `console.warn`. */
  onError?: (message: string) => void;
}

interface Queued {
  kind: Kind;
  event: ExposureEvent | MetricEvent;
}

function randomId(): string {
  const c = globalThis.crypto as Crypto | undefined;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

export class EventRecorder {
  private readonly url: Record<Kind, string>;
  private readonly options: Required<Pick<EventRecorderOptions, "flushIntervalMs" | "maxBatch" | "maxQueue">>;
  private readonly fetchImpl: typeof fetch | undefined;
  private readonly beacon: ((url: string, data: BodyInit) => boolean) | undefined;
  private readonly onError: (message: string) => void;
  private queue: Queued[] = [];
  private readonly seen = new Set<string>();
  private readonly hashes = new Map<string, string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sending: Promise<void> | undefined;
  private closed = false;
  private readonly target: EventRecorderOptions["target"];
  private readonly doc: EventRecorderOptions["document"];

  constructor(private readonly config: EventRecorderOptions) {
    const base = config.baseUrl.replace(/\/+$/, "");
    this.url = { exposures: `${base}/exposures`, track: `${base}/track` };
    this.options = {
      flushIntervalMs: config.flushIntervalMs ?? 5_000,
      maxBatch: Math.min(config.maxBatch ?? 100, 1_000),
      maxQueue: config.maxQueue ?? 1_000,
    };
    this.fetchImpl = config.fetch ?? (typeof fetch === "function" ? fetch.bind(globalThis) : undefined);
    const nav = typeof navigator === "undefined" ? undefined : navigator;
    this.beacon = config.sendBeacon ?? (nav && typeof nav.sendBeacon === "function" ? nav.sendBeacon.bind(nav) : undefined);
    this.onError = config.onError ?? ((message) => console.warn(`[flagstaff] ${message}`));
    this.target = config.target !== undefined ? config.target : typeof window === "undefined" ? null : window;
    this.doc = config.document !== undefined ? config.document : typeof document === "undefined" ? null : document;
    this.target?.addEventListener("pagehide", this.onHide);
    this.doc?.addEventListener("visibilitychange", this.onVisibility);
  }

  /**
   * Record that `user_key` was shown `variant` of `flag_key`; a repeat within the page session
   * is ignored. Returns whether it was recorded.
   */
  exposure(event: Omit<ExposureEvent, "timestamp"> & { timestamp?: string }, secureModeHash?: string): boolean {
    const key = `${event.flag_key}\u0000${event.variant}\u0000${event.user_key}`;
    if (this.closed || this.seen.has(key)) return false;
    this.seen.add(key);
    this.remember(event.user_key, secureModeHash);
    this.push("exposures", { ...event, timestamp: event.timestamp ?? new Date().toISOString() });
    return true;
  }

  /** Record a conversion (`value` absent or null) or a numeric metric for `userKey`. */
  track(metric: string, userKey: string, value?: number | null, secureModeHash?: string): void {
    if (this.closed) return;
    this.remember(userKey, secureModeHash);
    const numeric = typeof value === "number" && Number.isFinite(value) ? value : null;
    this.push("track", { metric, user_key: userKey, value: numeric, timestamp: new Date().toISOString() });
  }

  /** Events waiting to be sent (for tests and diagnostics). */
  get pending(): number {
    return this.queue.length;
  }

  /** Send everything waiting now; resolves when the requests are answered. */
  async flush(): Promise<void> {
    this.clearTimer();
    while (this.sending) await this.sending;
    if (this.queue.length === 0) return;
    this.sending = this.sendAll().finally(() => {
      this.sending = undefined;
    });
    await this.sending;
  }

  /** Send what waits with beacons and stop listening to the page (e.g. on sign-out). */
  close(): void {
    this.flushWithBeacon();
    this.closed = true;
    this.clearTimer();
    this.target?.removeEventListener("pagehide", this.onHide);
    this.doc?.removeEventListener("visibilitychange", this.onVisibility);
  }

  private remember(userKey: string, hash: string | undefined): void {
    if (hash) this.hashes.set(userKey, hash);
  }

  private push(kind: Kind, event: ExposureEvent | MetricEvent): void {
    this.queue.push({ kind, event });
    if (this.queue.length > this.options.maxQueue) this.queue.splice(0, this.queue.length - this.options.maxQueue);
    if (this.queue.length >= this.options.maxBatch) void this.flush();
    else if (this.timer === undefined) this.timer = setTimeout(() => void this.flush(), this.options.flushIntervalMs);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private take(kind: Kind): Array<ExposureEvent | MetricEvent> {
    const taken: Array<ExposureEvent | MetricEvent> = [];
    const rest: Queued[] = [];
    for (const item of this.queue) {
      if (item.kind === kind && taken.length < this.options.maxBatch) taken.push(item.event);
      else rest.push(item);
    }
    this.queue = rest;
    return taken;
  }

  private body(events: Array<ExposureEvent | MetricEvent>): string {
    const body: Record<string, unknown> = { batch_id: randomId(), client_key: this.config.clientKey, events };
    const hashes: Record<string, string> = {};
    for (const event of events) {
      const hash = this.hashes.get(event.user_key);
      if (hash) hashes[event.user_key] = hash;
    }
    if (Object.keys(hashes).length > 0) body.secure_mode_hashes = hashes;
    return JSON.stringify(body);
  }

  private async sendAll(): Promise<void> {
    for (const kind of ["exposures", "track"] as const) {
      for (let events = this.take(kind); events.length > 0; events = this.take(kind)) {
        if (!(await this.post(kind, events))) {
          // Unreachable or busy: keep them for the next flush (the batch id is new then, but
          // the server never stored this one).
          this.queue.unshift(...events.map((event) => ({ kind, event })));
          if (this.timer === undefined && !this.closed) {
            this.timer = setTimeout(() => void this.flush(), this.options.flushIntervalMs);
          }
          return;
        }
      }
    }
  }

  /** True when the batch is done with (stored, or refused for good). */
  private async post(kind: Kind, events: Array<ExposureEvent | MetricEvent>): Promise<boolean> {
    if (!this.fetchImpl) return true;
    let response: Response;
    try {
      response = await this.fetchImpl(this.url[kind], {
        method: "POST",
        body: this.body(events),
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        keepalive: true,
        credentials: "omit",
      });
    } catch {
      return false;
    }
    if (response.ok) return true;
    if (response.status === 429 || response.status >= 500) return false;
    let detail = "";
    try {
      detail = await response.text();
    } catch {
      /* the status says enough */
    }
    this.onError(`${kind} batch refused (${response.status}): ${detail.slice(0, 300)}`);
    return true;
  }

  private flushWithBeacon(): void {
    this.clearTimer();
    for (const kind of ["exposures", "track"] as const) {
      for (let events = this.take(kind); events.length > 0; events = this.take(kind)) {
        const body = this.body(events);
        const sent = this.beacon?.(this.url[kind], new Blob([body], { type: "text/plain;charset=UTF-8" }));
        if (!sent && this.fetchImpl) {
          // Over the beacon quota (64 KiB): a keepalive fetch outlives the page too.
          void this.fetchImpl(this.url[kind], {
            method: "POST", body, keepalive: true, credentials: "omit",
            headers: { "Content-Type": "text/plain;charset=UTF-8" },
          }).catch(() => undefined);
        }
      }
    }
  }

  private readonly onHide = (): void => this.flushWithBeacon();

  private readonly onVisibility = (): void => {
    if (this.doc?.visibilityState === "hidden") this.flushWithBeacon();
  };
}
