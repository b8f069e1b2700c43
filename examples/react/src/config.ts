/**
 * Where the page finds its flag server, its client-side key and its user.
 *
 * A back end that renders the page writes `<script type="application/json"
 * id="flagstaff-config">{"baseUrl": ..., "clientKey": ...}</script>` next to the bootstrap;
 * a page served as static files reads the same from its query string
 * (`?server=http://127.0.0.1:8000&key=fsc_...&user=alice&hash=...`).
 */

import type { EvaluationContext } from "@openfeature/web-sdk";
import { type Bootstrap, SECURE_MODE_HASH } from "@flagstaff/web";

export interface PageConfig {
  baseUrl: string;
  clientKey: string;
  context: EvaluationContext;
}

export function pageConfig(bootstrap: Bootstrap | undefined, doc: Document = document): PageConfig {
  const query = new URLSearchParams(doc.location.search);
  let rendered: Partial<PageConfig> = {};
  const text = doc.getElementById("flagstaff-config")?.textContent;
  if (text) rendered = JSON.parse(text) as Partial<PageConfig>;
  const user = query.get("user") ?? "anonymous";
  const hash = query.get("hash");
  const context: EvaluationContext = bootstrap?.context ?? {
    targetingKey: user,
    ...(hash ? { [SECURE_MODE_HASH]: hash } : {}),
  };
  return {
    baseUrl: rendered.baseUrl ?? query.get("server") ?? "http://127.0.0.1:8000",
    clientKey: rendered.clientKey ?? query.get("key") ?? "",
    context,
  };
}
