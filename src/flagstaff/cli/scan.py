"""Finding flag keys in a code base: the cleanup aid for stale flags.

Two kinds of reference are found, line by line:

- SDK calls whose first argument is a string literal: ``client.bool("key"``,
  ``.detail("key"``, OpenFeature's ``get_boolean_value("key"`` / ``getBooleanValue("key"`` and
  similar.  The key of such a call is reported even when no flag has it (a typo, or a flag
  that was deleted).
- Any other string literal equal to a known flag key (keys passed through constants).

Directories that never hold the project's own code (``.git``, ``.venv``, ``node_modules`` and
friends) are skipped, as are binary and very large files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", ".tox", "dist", "build", ".hypothesis"}
)  # fmt: skip
MAX_FILE_BYTES = 2 * 1024 * 1024

_SDK_METHODS = (
    r"bool|boolean|string|number|int|float|json|object|detail|details|variation|variant"
    r"|is_enabled|isEnabled|enabled"
    r"|get_(?:boolean|string|integer|float|object|number)_(?:value|details)"
    r"|get(?:Boolean|String|Integer|Float|Number|Object)(?:Value|Details)"
)
SDK_CALL = re.compile(rf"\.(?:{_SDK_METHODS})\(\s*(?P<q>[\"'`])(?P<key>[^\"'`\n]{{1,128}})(?P=q)")
LITERAL = re.compile(r"(?P<q>[\"'`])(?P<key>[a-z0-9][a-z0-9._-]{0,127})(?P=q)")


@dataclass(frozen=True)
class Reference:
    file: str
    line: int
    key: str
    kind: str  # "sdk-call" | "literal"


@dataclass
class ScanResult:
    references: list[Reference]
    unknown: list[Reference]  # SDK calls naming keys that are not flags
    unused: list[str]  # known flags referenced nowhere

    def to_json(self) -> dict[str, object]:
        return {
            "references": [asdict(r) for r in self.references],
            "unknown": [asdict(r) for r in self.unknown],
            "unused": self.unused,
        }


def scan(root: Path, known: Iterable[str]) -> ScanResult:
    keys = set(known)
    references: list[Reference] = []
    for file in iter_files(root):
        references.extend(
            scan_text(_read(file), keys, str(file.relative_to(root) if root.is_dir() else file))
        )
    used = {r.key for r in references}
    return ScanResult(
        references=references,
        unknown=[r for r in references if r.key not in keys],
        unused=sorted(keys - used),
    )


def scan_text(text: str, known: set[str], name: str) -> Iterator[Reference]:
    for number, line in enumerate(text.splitlines(), start=1):
        seen: set[str] = set()
        for match in SDK_CALL.finditer(line):
            seen.add(match.group("key"))
            yield Reference(name, number, match.group("key"), "sdk-call")
        for match in LITERAL.finditer(line):
            key = match.group("key")
            if key in known and key not in seen:
                seen.add(key)
                yield Reference(name, number, key, "literal")


def iter_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            path = Path(directory, name)
            try:
                if path.is_file() and path.stat().st_size <= MAX_FILE_BYTES:
                    yield path
            except OSError:
                continue


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if b"\0" in data[:8192]:
        return ""  # binary
    return data.decode("utf-8", errors="replace")
