import { OpenFeature } from "@openfeature/web-sdk";
import { afterEach, describe, expect, it, vi } from "vitest";

import { FlagstaffProvider, type OfrepFlag, readBootstrap, storageKey } from "../src/index";

const FLAGS: OfrepFlag[] = [
  { key: "checkout-button", value: "green", reason: "SPLIT", variant: "green", metadata: { inExperiment: true } },
  { key: "new-nav", value: true, reason: "TARGETING_MATCH", variant: "true", metadata: {} },
];

/** An OFREP server in a function: answers the bulk endpoint, records every request. */
function ofrepServer(flags = FLAGS, { hold = false } = {}) {
  const requests: Request[] = [];
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => { release = resolve; });
  const impl = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(input, init);
    requests.push(request);
    if (hold) await held;
    return new Response(JSON.stringify({ flags }), {
      status: 200, headers: { "Content-Type": "application/json", ETag: '"tag-1"' },
    });
  };
  return { requests, impl: impl as typeof fetch, release };
}

function recorderFetch() {
  const bodies: Array<{ url: string; body: Record<string, unknown> }> = [];
  const impl = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    bodies.push({ url: String(url), body: JSON.parse(String(init?.body)) });
    return new Response("{}", { status: 202 });
  });
  return { bodies, impl: impl as unknown as typeof fetch };
}

afterEach(async () => {
  await OpenFeature.clearProviders();
  localStorage.clear();
});

describe("FlagstaffProvider", () => {
  it("is the stock OFREP provider with the key as Authorization and its defaults untouched", async () => {
    const server = ofrepServer();
    const provider = new FlagstaffProvider({ baseUrl: "https://flags.example.com", clientKey: "fsc_abc", fetchImplementation: server.impl, events: false });
    await OpenFeature.setProviderAndWait("defaults", provider, { targetingKey: "u1" });
    const client = OpenFeature.getClient("defaults");
    expect(client.getBooleanValue("new-nav", false)).toBe(true);
    const request = server.requests[0]!;
    expect(request.url).toBe("https://flags.example.com/ofrep/v1/evaluate/flags");
    expect(request.headers.get("authorization")).toBe("Bearer fsc_abc");
    expect(await request.json()).toEqual({ context: { targetingKey: "u1" } });
    // Polling stays off and SSE stays the change detection, as in the stock provider.
    const internals = provider as unknown as { _pollingInterval: number; _cacheMode: string };
    expect(internals._pollingInterval).toBe(0);
    expect(internals._cacheMode).toBe("local-cache-first");
  });

  it("records one exposure per user and variant when an experiment flag is read, and track() conversions", async () => {
    const server = ofrepServer();
    const events = recorderFetch();
    const provider = new FlagstaffProvider({
      baseUrl: "https://flags.example.com", clientKey: "fsc_abc", fetchImplementation: server.impl,
      events: { fetch: events.impl, flushIntervalMs: 60_000 },
    });
    await OpenFeature.setProviderAndWait("exp", provider, { targetingKey: "u1", secureModeHash: "f".repeat(64) });
    const client = OpenFeature.getClient("exp");
    for (let i = 0; i < 5; i++) expect(client.getStringValue("checkout-button", "control")).toBe("green");
    expect(client.getBooleanValue("new-nav", false)).toBe(true); // not an experiment: no exposure
    client.track("checkout");
    client.track("revenue", { value: 42.5 });
    expect(provider.recorder!.pending).toBe(3);
    await provider.recorder!.flush();
    const [exposures, track] = events.bodies;
    expect(exposures!.url).toBe("https://flags.example.com/exposures");
    expect(exposures!.body.events).toEqual([{
      flag_key: "checkout-button", variant: "green", user_key: "u1", reason: "SPLIT",
      flag_version: null, in_experiment: true, timestamp: expect.any(String),
    }]);
    expect(exposures!.body.secure_mode_hashes).toEqual({ u1: "f".repeat(64) });
    expect(track!.body.events).toEqual([
      { metric: "checkout", user_key: "u1", value: null, timestamp: expect.any(String) },
      { metric: "revenue", user_key: "u1", value: 42.5, timestamp: expect.any(String) },
    ]);
  });

  it("serves the server-rendered bootstrap before the network answers", async () => {
    document.body.innerHTML = `<script type="application/json" id="flagstaff-bootstrap">${JSON.stringify({
      context: { targetingKey: "u7" }, flags: FLAGS,
    })}</script>`;
    const bootstrap = readBootstrap();
    expect(bootstrap?.flags).toHaveLength(2);
    const server = ofrepServer(FLAGS, { hold: true });
    const provider = new FlagstaffProvider({ baseUrl: "https://flags.example.com", clientKey: "fsc_abc", fetchImplementation: server.impl, bootstrap, events: false });
    await OpenFeature.setProviderAndWait("boot", provider, bootstrap!.context);
    const client = OpenFeature.getClient("boot");
    // Ready and right while the network request is still outstanding.
    const detail = client.getStringDetails("checkout-button", "control");
    expect(detail.value).toBe("green");
    expect(detail.reason).toBe("CACHED");
    expect(server.requests).toHaveLength(1);
    server.release();
    await vi.waitFor(() => expect(client.getStringDetails("checkout-button", "control").reason).toBe("SPLIT"));
  });

  it("computes the storage key the stock provider uses", async () => {
    const server = ofrepServer();
    const provider = new FlagstaffProvider({ baseUrl: "https://flags.example.com", clientKey: "fsc_abc", fetchImplementation: server.impl, events: false });
    await OpenFeature.setProviderAndWait("keys", provider, { targetingKey: "u9" });
    await vi.waitFor(() => expect(localStorage.length).toBe(1));
    const { key } = await storageKey(
      { baseUrl: "https://flags.example.com", headers: [["Authorization", "Bearer fsc_abc"]], domain: "keys" },
      { targetingKey: "u9" },
    );
    expect(localStorage.key(0)).toBe(key);
    const stored = JSON.parse(localStorage.getItem(key)!);
    expect(stored.etag).toBe('"tag-1"');
    // A bootstrap with the same answers keeps the stored entry and its ETag (a 304 next time).
    const again = new FlagstaffProvider({
      baseUrl: "https://flags.example.com", clientKey: "fsc_abc", fetchImplementation: ofrepServer(FLAGS, { hold: true }).impl,
      events: false, bootstrap: { context: { targetingKey: "u9" }, flags: FLAGS },
    });
    await again.initialize({ targetingKey: "u9" }, "keys");
    expect(JSON.parse(localStorage.getItem(key)!).etag).toBe('"tag-1"');
    // A bootstrap for another user is ignored.
    const other = new FlagstaffProvider({
      baseUrl: "https://flags.example.com", clientKey: "fsc_abc", fetchImplementation: ofrepServer().impl,
      events: false, bootstrap: { context: { targetingKey: "someone-else" }, flags: [] },
    });
    await other.initialize({ targetingKey: "u9" }, "keys");
    expect(JSON.parse(localStorage.getItem(key)!).data["checkout-button"].value).toBe("green");
    await again.onClose();
    await other.onClose();
  });
});
