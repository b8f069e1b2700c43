/**
 * `@flagstaff/web`: what OpenFeature's stock web SDK and OFREP provider lack for Flagstaff.
 *
 * ```ts
 * import { OpenFeature } from "@openfeature/web-sdk";
 * import { FlagstaffProvider, readBootstrap } from "@flagstaff/web";
 *
 * const bootstrap = readBootstrap();           // first evaluations from the server, if any
 * await OpenFeature.setProviderAndWait(
 *   new FlagstaffProvider({ baseUrl: "https://flags.example.com", clientKey: "fsc_...", bootstrap }),
 *   bootstrap?.context ?? { targetingKey: user.id },
 * );
 * ```
 *
 * React hooks (`useABTest`, `useTrack`) are in `@flagstaff/web/react`.
 */

export { type Bootstrap, type OfrepFlag, readBootstrap, seedCache, storageKey } from "./bootstrap.js";
export { EventRecorder, type EventRecorderOptions, type ExposureEvent, type MetricEvent } from "./events.js";
export { exposureHook, FlagstaffProvider, type FlagstaffProviderOptions, SECURE_MODE_HASH } from "./provider.js";
