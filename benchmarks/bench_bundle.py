"""Bundle size of the browser side against LaunchDarkly's and Unleash's browser SDKs.

    .venv/bin/python benchmarks/bench_bundle.py

Installs the project's JavaScript from the committed lockfile (``npm ci``) and the competitors
and esbuild from ``benchmarks/bundle/package-lock.json``, builds ``@flagstaff/web``, then bundles
each SDK as an application would import it (esbuild: bundle, minify, ES2020, browser; see
``benchmarks/bundle/measure.mjs``) and gzips the result (level 9).  Two rows for ours: the
package alone (it adds to OpenFeature's web SDK and the stock OFREP provider, which an
OpenFeature app already has) and with them, which is what a page that uses nothing else ships,
the figure to compare with the competitors' self-contained SDKs.  Results go to
``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks" / "bundle"


def npm(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"npm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main() -> None:
    npm("ci", "--no-audit", "--no-fund")
    npm("ci", "--no-audit", "--no-fund", cwd=HERE)
    npm("run", "build", "-w", "clients/web")
    done = subprocess.run(["node", str(HERE / "measure.mjs")], capture_output=True, text=True,
                          timeout=300, check=True)
    report = json.loads(done.stdout)
    versions = report["versions"]
    rows = [[r["name"], f"{r['minified'] / 1024:.1f}", f"{r['gzip'] / 1024:.1f}"]
            for r in report["results"]]
    text = table(["bundle", "minified (KiB)", "min+gzip (KiB)"], rows)
    print(text)
    stated = ", ".join(f"{k} {v}" for k, v in versions.items())
    write_section("bundle", f"""
### Browser bundle size (min+gzip)

`benchmarks/bench_bundle.py`: each SDK bundled as an application imports it, with esbuild
(bundle, minify, ES2020, browser) and gzip level 9. Versions: {stated}.

{text}

`@flagstaff/web` adds exposures on read, `track()` conversions and the server-rendered
bootstrap to OpenFeature's web SDK and the stock OFREP provider (which fetch, cache and follow
the OFREP event stream); the second row is everything a page needs for flags with it, to set
against the competitors' self-contained SDKs. React bindings are not included in any row.
""")


if __name__ == "__main__":
    main()
