/**
 * First evaluations handed over by the server that rendered the page, so the first paint
 * already shows the right values (no flash of defaults, no wait for the network).
 *
 * The back end evaluates the user's flags as it renders the page (the Python SDK's
 * `flagstaff.sdk.browser.browser_bootstrap`, or one `POST /ofrep/v1/evaluate/flags` with the
 * client-side key) and embeds the OFREP bulk answer in the page:
 *
 * ```html
 * <script type="application/json" id="flagstaff-bootstrap">{"context": {...}, "flags": [...]}</script>
 * ```
 *
 * {@link seedCache} writes it where the stock OFREP web provider looks first when it starts in
 * its default `local-cache-first` mode (ADR-0009: `localStorage`, one entry per cache key), so
 * `initialize()` resolves at once from these values and then refreshes from the network in the
 * background. It must compute the provider's storage key exactly as the provider does;
 * the tests check that against the real provider.
 */

import type { EvaluationContext } from "@openfeature/web-sdk";

/** One flag of an OFREP bulk answer. */
export interface OfrepFlag {
  key: string;
  value?: unknown;
  reason?: string;
  variant?: string;
  metadata?: Record<string, boolean | string | number>;
  errorCode?: string;
  errorDetails?: string;
}

/** What the server hands the page: the context it evaluated and the bulk answer. */
export interface Bootstrap {
  context: EvaluationContext;
  flags: OfrepFlag[];
}

/** The parts of the provider's options its storage key derives from. */
export interface CacheKeyOptions {
  baseUrl: string;
  headers?: [string, string][];
  domain?: string;
  cacheKeyGenerator?: (input: {
    url: string; auth?: string; domain?: string; targetingKey?: string; context: EvaluationContext;
  }) => string;
}

const STORAGE_PREFIX = "ofrep-web-provider:v2:";
const SCHEMA_VERSION = 2;
const AUTH_HEADERS = new Set(["authorization", "api-key", "x-api-key", "x-auth-token", "x-access-token"]);

/** The bootstrap a page embedded (`<script type="application/json" id="...">`), if any. */
export function readBootstrap(id = "flagstaff-bootstrap", doc: Document | undefined = globalThis.document): Bootstrap | undefined {
  const text = doc?.getElementById(id)?.textContent;
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<Bootstrap>;
    if (parsed && typeof parsed === "object" && Array.isArray(parsed.flags) && parsed.context) {
      return parsed as Bootstrap;
    }
  } catch {
    /* a broken bootstrap is no bootstrap: the provider fetches as usual */
  }
  return undefined;
}

function authMaterial(headers: [string, string][] | undefined): string | undefined {
  const auth = (headers ?? [])
    .filter(([name]) => AUTH_HEADERS.has(name.toLowerCase()))
    .map(([name, value]) => [name.toLowerCase(), value] as [string, string])
    .sort(([a], [b]) => a.localeCompare(b));
  return auth.length === 0 ? undefined : JSON.stringify(auth);
}

function fnvHash(input: string): string {
  const fnv1a32 = (text: string, offset: number): number => {
    let h = offset >>> 0;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h;
  };
  return fnv1a32(input, 0x811c9dc5).toString(16).padStart(8, "0") + fnv1a32(input, 0x27d4eb2f).toString(16).padStart(8, "0");
}

async function hash16(input: string): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return fnvHash(input);
  const digest = await subtle.digest("SHA-256", new TextEncoder().encode(input));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

/** The `localStorage` key the stock provider (0.4.x) keeps this context's evaluations under. */
export async function storageKey(options: CacheKeyOptions, context: EvaluationContext): Promise<{ key: string; hash: string }> {
  const input = {
    url: options.baseUrl,
    auth: authMaterial(options.headers),
    domain: options.domain || undefined,
    targetingKey: context.targetingKey,
    context,
  };
  const material = options.cacheKeyGenerator
    ? options.cacheKeyGenerator(input)
    : JSON.stringify([input.url, input.auth ?? "", input.domain ?? "", input.targetingKey ?? ""]);
  const hash = await hash16(material);
  return { key: STORAGE_PREFIX + hash, hash };
}

function sameFlags(a: unknown, b: Record<string, OfrepFlag>): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Put `bootstrap` where the provider starts from. An entry that already holds exactly these
 * answers is kept as it is (with its ETag, so the background refresh costs a 304). Returns
 * false when there is nothing to seed (no storage, or a bootstrap for another user).
 */
export async function seedCache(
  options: CacheKeyOptions, context: EvaluationContext, bootstrap: Bootstrap,
  storage: Storage | undefined = globalThis.localStorage,
): Promise<boolean> {
  if (!storage || (bootstrap.context.targetingKey ?? "") !== (context.targetingKey ?? "")) return false;
  const data: Record<string, OfrepFlag> = {};
  for (const flag of bootstrap.flags) if (flag && typeof flag.key === "string") data[flag.key] = flag;
  const { key, hash } = await storageKey(options, context);
  try {
    const existing = storage.getItem(key);
    if (existing) {
      const entry = JSON.parse(existing) as { version?: number; data?: unknown };
      if (entry.version === SCHEMA_VERSION && sameFlags(entry.data, data)) return true;
    }
    storage.setItem(key, JSON.stringify({
      version: SCHEMA_VERSION, cacheKeyHash: hash, etag: null, writtenAt: new Date().toISOString(), data,
    }));
    return true;
  } catch {
    return false; // storage full or forbidden: the provider fetches as usual
  }
}
