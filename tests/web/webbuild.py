"""The JavaScript side, built as a developer would: ``npm ci`` from the committed lockfile, then
``npm run build`` of ``@flagstaff/web`` and of the React example, each only when out of date.

Shared by the browser tests, the vitest run and the bundle-size benchmark.  One build at a time
(an exclusive lock file), so test workers that start together do not build over each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "clients" / "web"
EXAMPLE = ROOT / "examples" / "react"
EXAMPLE_DIST = EXAMPLE / "dist"
LOCK = ROOT / "build" / ".web-build.lock"


def node_missing() -> str | None:
    """Why the JavaScript side cannot be built here, or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"needs Node.js: {tool} is not on PATH"
    return None


def _newest(paths: Iterable[Path]) -> float:
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def npm_environment() -> dict[str, str]:
    """The environment npm runs in: ours, without colour codes in its output."""
    return {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}


def _run(*args: str, timeout: float = 900) -> None:
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=npm_environment())
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _installed_is_current() -> bool:
    marker = ROOT / "node_modules" / ".package-lock.json"
    if not marker.is_file():
        return False
    manifests = [ROOT / "package-lock.json", ROOT / "package.json", WEB / "package.json",
                 EXAMPLE / "package.json"]
    return marker.stat().st_mtime >= _newest(manifests)


def install() -> None:
    """``npm ci`` unless ``node_modules`` already holds what the lockfile says."""
    with _exclusive():
        if not _installed_is_current():
            _run("npm", "ci", "--no-audit", "--no-fund")


def build() -> Path:
    """Install, then build the package and the example when their sources are newer than their
    output; returns the example's ``dist`` directory."""
    install()
    with _exclusive():
        web_sources = _newest(_files(WEB / "src", WEB / "package.json", WEB / "tsconfig.json",
                                     WEB / "tsconfig.build.json", ROOT / "node_modules" / ".package-lock.json"))
        if _newest([WEB / "dist" / "index.js", WEB / "dist" / "react.js"]) < web_sources or \
                not (WEB / "dist" / "react.js").is_file():
            _run("npm", "run", "build", "-w", "clients/web")
        example_sources = _newest(_files(EXAMPLE / "src", EXAMPLE / "index.html", EXAMPLE / "package.json",
                                         EXAMPLE / "vite.config.ts", EXAMPLE / "tsconfig.json",
                                         WEB / "dist"))
        index = EXAMPLE_DIST / "index.html"
        if not index.is_file() or index.stat().st_mtime < example_sources:
            _run("npm", "run", "build", "-w", "examples/react")
    return EXAMPLE_DIST
