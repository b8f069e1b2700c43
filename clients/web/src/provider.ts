/**
 * {@link FlagstaffProvider}: OpenFeature's stock OFREP web provider, plus what it lacks.
 *
 * Everything about fetching, caching, polling and live updates is the stock provider's
 * (`@openfeature/ofrep-web-provider`, with its own defaults: Server-Sent Events when the server
 * offers them, `local-cache-first` start, visibility refresh). This subclass only adds:
 *
 * - the client-side key as the `Authorization` header;
 * - an exposure each time the application reads a flag the server marked `inExperiment`
 *   (an OpenFeature provider hook, so `useFlag`, `client.getStringValue` and the rest all
 *   count), batched and deduplicated per page session by {@link EventRecorder};
 * - OpenFeature `track()`, which the stock provider ignores: conversions and numeric metrics to
 *   Flagstaff's `/track`;
 * - `bootstrap`: the first evaluations from the server-rendered page ({@link seedCache}).
 */

import type { EvaluationContext, EvaluationDetails, FlagValue, Hook, HookContext, TrackingEventDetails } from "@openfeature/web-sdk";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
import type { OFREPWebProviderOptions } from "@openfeature/ofrep-web-provider";

import { type Bootstrap, seedCache } from "./bootstrap.js";
import { EventRecorder, type EventRecorderOptions } from "./events.js";

/** The context attribute carrying the secure-mode hash of the targeting key. */
export const SECURE_MODE_HASH = "secureModeHash";

export type FlagstaffProviderOptions = Omit<OFREPWebProviderOptions, "headers" | "headersFactory"> & {
  /** The environment's client-side key (`fsc_...`). */
  clientKey: string;
  /** First evaluations from the server-rendered page (see `readBootstrap`). */
  bootstrap?: Bootstrap;
  /** Batching options for exposures and conversions; `false` records nothing. */
  events?: Omit<EventRecorderOptions, "baseUrl" | "clientKey"> | false;
};

function hashOf(context: EvaluationContext): string | undefined {
  const hash = context[SECURE_MODE_HASH];
  return typeof hash === "string" ? hash : undefined;
}

export class FlagstaffProvider extends OFREPWebProvider {
  /** The recorder behind exposures and `track()` (undefined with `events: false`). */
  readonly recorder: EventRecorder | undefined;
  override readonly hooks: Hook[];
  private readonly keyOptions: { baseUrl: string; headers: [string, string][]; cacheKeyGenerator?: OFREPWebProviderOptions["cacheKeyGenerator"] };
  private readonly bootstrap: Bootstrap | undefined;
  private readonly seeds: boolean;

  constructor(options: FlagstaffProviderOptions) {
    const { clientKey, bootstrap, events, ...stock } = options;
    const headers: [string, string][] = [["Authorization", `Bearer ${clientKey}`]];
    super({ ...stock, headers });
    this.keyOptions = { baseUrl: stock.baseUrl, headers, cacheKeyGenerator: stock.cacheKeyGenerator };
    this.bootstrap = bootstrap;
    // Only the default start reads the local cache first; the other modes block on the network.
    this.seeds = (stock.cacheMode ?? "local-cache-first") === "local-cache-first";
    this.recorder = events === false ? undefined : new EventRecorder({ ...events, baseUrl: stock.baseUrl, clientKey });
    this.hooks = this.recorder ? [exposureHook(this.recorder)] : [];
  }

  override async initialize(context?: EvaluationContext, domain?: string): Promise<void> {
    if (this.bootstrap && context && this.seeds) {
      await seedCache({ ...this.keyOptions, domain }, context, this.bootstrap);
    }
    return super.initialize(context, domain);
  }

  /** OpenFeature `client.track(name, {value})`: a conversion (no value) or a numeric metric. */
  track(trackingEventName: string, context: EvaluationContext, details?: TrackingEventDetails): void {
    const user = context.targetingKey;
    if (!this.recorder || !user) return;
    this.recorder.track(trackingEventName, user, details?.value ?? null, hashOf(context));
  }

  override async onClose(): Promise<void> {
    this.recorder?.close();
    await super.onClose?.();
  }
}

/** Records an exposure when an experiment flag is evaluated for a user. */
export function exposureHook(recorder: EventRecorder): Hook {
  return {
    after(hookContext: Readonly<HookContext>, details: EvaluationDetails<FlagValue>): void {
      const user = hookContext.context.targetingKey;
      if (details.flagMetadata?.inExperiment !== true || !details.variant || !user) return;
      recorder.exposure({
        flag_key: details.flagKey,
        variant: details.variant,
        user_key: user,
        reason: (details.reason ?? "SPLIT").slice(0, 32),
        flag_version: null,
        in_experiment: true,
      }, hashOf(hookContext.context));
    },
  };
}
