import { OpenFeatureProvider } from "@openfeature/react-sdk";
import { OpenFeature } from "@openfeature/web-sdk";
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { FlagstaffProvider } from "../src/index";
import { useABTest } from "../src/react";

function Checkout() {
  const { variant, inExperiment, track } = useABTest("checkout-button", "control");
  return (
    <button type="button" data-in-experiment={String(inExperiment)} onClick={() => track("checkout")}>
      {variant === "green" ? "Buy now" : "Checkout"}
    </button>
  );
}

afterEach(async () => {
  cleanup();
  await OpenFeature.clearProviders();
  localStorage.clear();
});

describe("useABTest", () => {
  it("renders the assigned variant, records the exposure on read and the conversion on track", async () => {
    let variant = "green";
    const ofrep = (async () => new Response(JSON.stringify({ flags: [{
      key: "checkout-button", value: variant, variant, reason: "SPLIT", metadata: { inExperiment: true },
    }] }), { headers: { "Content-Type": "application/json" } })) as typeof fetch;
    const sent: Array<{ url: string; body: { events: Array<Record<string, unknown>> } }> = [];
    const events = (async (url: RequestInfo | URL, init?: RequestInit) => {
      sent.push({ url: String(url), body: JSON.parse(String(init?.body)) });
      return new Response("{}", { status: 202 });
    }) as typeof fetch;
    const provider = new FlagstaffProvider({
      baseUrl: "https://flags.example.com", clientKey: "fsc_k", fetchImplementation: ofrep,
      events: { fetch: events, flushIntervalMs: 60_000 },
    });
    await OpenFeature.setProviderAndWait("ab", provider, { targetingKey: "u1" });
    render(<OpenFeatureProvider domain="ab"><Checkout /></OpenFeatureProvider>);
    const button = await screen.findByRole("button", { name: "Buy now" });
    expect(button.dataset.inExperiment).toBe("true");
    fireEvent.click(button);
    await provider.recorder!.flush();
    expect(sent.map((s) => s.url)).toEqual(["https://flags.example.com/exposures", "https://flags.example.com/track"]);
    expect(sent[0]!.body.events.map((e) => [e.flag_key, e.variant, e.user_key])).toEqual([["checkout-button", "green", "u1"]]);
    expect(sent[1]!.body.events.map((e) => [e.metric, e.user_key])).toEqual([["checkout", "u1"]]);
    // A configuration change re-renders with the new variant.
    variant = "control";
    await act(async () => {
      await OpenFeature.setContext("ab", { targetingKey: "u1", plan: "x" });
    });
    await vi.waitFor(() => expect(screen.getByRole("button").textContent).toBe("Checkout"));
  });
});
