import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { EventRecorder } from "../src/events";

interface Sent {
  url: string;
  init: RequestInit;
  body: Record<string, unknown>;
}

function fakeFetch(statuses: number[] = []) {
  const sent: Sent[] = [];
  const impl = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    sent.push({ url: String(url), init: init ?? {}, body: JSON.parse(String(init?.body)) });
    const status = statuses.shift() ?? 202;
    return new Response(status === 202 ? '{"accepted":1,"duplicate":false}' : "{}", { status });
  });
  return { sent, impl: impl as unknown as typeof fetch };
}

function page() {
  const listeners = new Map<string, () => void>();
  const target = {
    addEventListener: (name: string, fn: () => void) => listeners.set(name, fn),
    removeEventListener: (name: string) => listeners.delete(name),
  };
  const doc = { visibilityState: "visible" as DocumentVisibilityState, ...target };
  return { listeners, target: target as never, doc: doc as never, state: doc };
}

const exposure = (user = "u1", variant = "green") => ({
  flag_key: "checkout-button", variant, user_key: user, reason: "SPLIT", flag_version: null, in_experiment: true,
});

describe("EventRecorder", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("deduplicates exposures per page session and batches them in one simple request", async () => {
    const { sent, impl } = fakeFetch();
    const p = page();
    const recorder = new EventRecorder({ baseUrl: "https://flags.example.com/", clientKey: "fsc_key", fetch: impl, target: p.target, document: p.doc });
    expect(recorder.exposure(exposure())).toBe(true);
    expect(recorder.exposure(exposure())).toBe(false); // re-render: same user, flag, variant
    expect(recorder.exposure(exposure("u1", "control"))).toBe(true);
    expect(recorder.exposure(exposure("u2"))).toBe(true);
    recorder.track("checkout", "u1");
    expect(sent).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(sent.map((s) => s.url)).toEqual(["https://flags.example.com/exposures", "https://flags.example.com/track"]);
    const [exposures, track] = sent;
    expect((exposures!.body.events as unknown[]).length).toBe(3);
    expect(exposures!.body.client_key).toBe("fsc_key");
    expect(typeof exposures!.body.batch_id).toBe("string");
    expect(exposures!.body.batch_id).not.toBe(track!.body.batch_id);
    // A CORS simple request: text/plain, no Authorization or other custom header.
    expect(exposures!.init.headers).toEqual({ "Content-Type": "text/plain;charset=UTF-8" });
    expect(exposures!.init.keepalive).toBe(true);
    expect(track!.body.events).toEqual([
      { metric: "checkout", user_key: "u1", value: null, timestamp: expect.any(String) },
    ]);
    expect(recorder.pending).toBe(0);
  });

  it("sends at once when a batch is full, and keeps events the server could not take", async () => {
    const { sent, impl } = fakeFetch([503, 202]);
    const p = page();
    const recorder = new EventRecorder({ baseUrl: "https://f", clientKey: "k", fetch: impl, maxBatch: 2, target: p.target, document: p.doc });
    recorder.track("a", "u1");
    recorder.track("b", "u1");
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toHaveLength(1); // full batch, refused with 503
    expect(recorder.pending).toBe(2);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(sent).toHaveLength(2);
    expect(recorder.pending).toBe(0);
    expect((sent[1]!.body.events as Array<{ metric: string }>).map((e) => e.metric)).toEqual(["a", "b"]);
  });

  it("drops a batch the server refuses for good and says why", async () => {
    const { impl } = fakeFetch([400]);
    const errors: string[] = [];
    const p = page();
    const recorder = new EventRecorder({ baseUrl: "https://f", clientKey: "k", fetch: impl, onError: (m) => errors.push(m), target: p.target, document: p.doc });
    recorder.track("bad metric!", "u1");
    await recorder.flush();
    expect(recorder.pending).toBe(0);
    expect(errors[0]).toContain("track batch refused (400)");
  });

  it("sends what waits with sendBeacon when the page is hidden", async () => {
    const { sent, impl } = fakeFetch();
    const beacons: Array<{ url: string; body: string; type: string }> = [];
    const p = page();
    const recorder = new EventRecorder({
      baseUrl: "https://f", clientKey: "k", fetch: impl, target: p.target, document: p.doc,
      sendBeacon: (url, data) => {
        const blob = data as Blob;
        const reader = new FileReader();
        reader.onload = () => beacons.push({ url, body: String(reader.result), type: blob.type });
        reader.readAsText(blob);
        return true;
      },
    });
    recorder.exposure(exposure(), "a".repeat(64));
    recorder.track("checkout", "u1");
    p.state.visibilityState = "hidden";
    p.listeners.get("visibilitychange")!();
    await vi.waitFor(() => expect(beacons).toHaveLength(2));
    expect(beacons.map((b) => b.url)).toEqual(["https://f/exposures", "https://f/track"]);
    expect(beacons[0]!.type).toBe("text/plain;charset=utf-8");
    const body = JSON.parse(beacons[0]!.body);
    expect(body.client_key).toBe("k");
    expect(body.secure_mode_hashes).toEqual({ u1: "a".repeat(64) });
    expect(recorder.pending).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sent).toHaveLength(0); // nothing sent twice
    recorder.track("later", "u1");
    p.listeners.get("pagehide")!();
    await vi.waitFor(() => expect(beacons).toHaveLength(3));
  });

  it("keeps at most maxQueue events while the server is away", async () => {
    const { impl } = fakeFetch([503, 503, 503]);
    const p = page();
    const recorder = new EventRecorder({ baseUrl: "https://f", clientKey: "k", fetch: impl, maxQueue: 3, maxBatch: 1000, target: p.target, document: p.doc });
    for (let i = 0; i < 5; i++) recorder.track(`m${i}`, "u1");
    expect(recorder.pending).toBe(3);
  });
});
