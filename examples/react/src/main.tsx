/**
 * The example's entry point: OpenFeature's web SDK with Flagstaff's provider (the stock OFREP
 * web provider with its default options, plus exposures, track() and the bootstrap).
 *
 * With a server-rendered bootstrap the provider is ready from it before the first render, so the
 * first paint already shows the user's values; the network refresh follows in the background.
 * Without one the flag components wait (React Suspense) for the first answer instead of
 * painting defaults that would flip a moment later.
 */

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { OpenFeature, OpenFeatureProvider } from "@openfeature/react-sdk";
import { FlagstaffProvider, readBootstrap } from "@flagstaff/web";

import { App } from "./App";
import { pageConfig } from "./config";

async function start(): Promise<void> {
  const bootstrap = readBootstrap();
  const config = pageConfig(bootstrap);
  const provider = new FlagstaffProvider({
    baseUrl: config.baseUrl,
    clientKey: config.clientKey,
    bootstrap,
    // Conversions and exposures leave at least once a second (and on page hide, as beacons).
    events: { flushIntervalMs: 1_000 },
  });
  // The browser tests look at what the page did through this handle.
  (window as unknown as { flagstaff: unknown }).flagstaff = { provider, client: OpenFeature.getClient() };
  if (bootstrap) {
    // Resolves from the seeded local cache at once (the stock provider's local-cache-first start).
    await OpenFeature.setProviderAndWait(provider, config.context).catch(() => undefined);
  } else {
    void OpenFeature.setProviderAndWait(provider, config.context).catch(() => undefined);
  }
  createRoot(document.getElementById("root")!).render(
    <StrictMode>
      <OpenFeatureProvider suspendUntilReady>
        <App user={String(config.context.targetingKey ?? "")} />
      </OpenFeatureProvider>
    </StrictMode>,
  );
}

void start();
