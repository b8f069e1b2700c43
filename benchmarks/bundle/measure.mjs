// Bundles each browser SDK as an application would (esbuild: bundle, minify, ES2020, browser)
// and prints the minified and min+gzip sizes as JSON. Run by benchmarks/bench_bundle.py.
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import path from "node:path";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const OPENFEATURE = ["@openfeature/web-sdk", "@openfeature/ofrep-web-provider", "@openfeature/core"];

// What an application imports to evaluate flags, record exposures and send conversions.
const subjects = [
  {
    name: "@flagstaff/web (ours alone; the OpenFeature packages left out)",
    source: 'export { FlagstaffProvider, readBootstrap } from "@flagstaff/web";',
    external: OPENFEATURE,
  },
  {
    name: "@flagstaff/web + @openfeature/web-sdk + @openfeature/ofrep-web-provider",
    source: 'export { FlagstaffProvider, readBootstrap } from "@flagstaff/web";\n' +
            'export { OpenFeature } from "@openfeature/web-sdk";',
    external: [],
  },
  {
    name: "launchdarkly-js-client-sdk",
    source: 'export { initialize } from "launchdarkly-js-client-sdk";',
    external: [],
  },
  {
    name: "unleash-proxy-client",
    source: 'export { UnleashClient } from "unleash-proxy-client";',
    external: [],
  },
];

const versions = {};
for (const name of ["launchdarkly-js-client-sdk", "unleash-proxy-client", "esbuild"]) {
  versions[name] = (await import(path.join(here, "node_modules", name, "package.json"), { with: { type: "json" } })).default.version;
}
for (const name of ["@openfeature/web-sdk", "@openfeature/ofrep-web-provider"]) {
  versions[name] = (await import(path.join(root, "node_modules", name, "package.json"), { with: { type: "json" } })).default.version;
}
versions["@flagstaff/web"] = (await import(path.join(root, "clients", "web", "package.json"), { with: { type: "json" } })).default.version;

const results = [];
for (const subject of subjects) {
  const built = await esbuild.build({
    stdin: { contents: subject.source, resolveDir: root, loader: "js" },
    bundle: true, minify: true, format: "esm", platform: "browser", target: "es2020",
    external: subject.external, write: false, logLevel: "error", legalComments: "none",
    nodePaths: [path.join(here, "node_modules"), path.join(root, "node_modules")],
    define: { "process.env.NODE_ENV": '"production"' },
  });
  const code = built.outputFiles[0].contents;
  results.push({ name: subject.name, minified: code.length, gzip: gzipSync(code, { level: 9 }).length });
}
console.log(JSON.stringify({ versions, results }));
