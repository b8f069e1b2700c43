"""Fenced code blocks of a Markdown document, and which of them the documentation tests run.

The convention (TEAM.md, "Docs are executed"): blocks tagged ``bash``, ``sh``, ``shell`` or
``console`` and ``python`` are run in document order; a block preceded by
``<!-- doc-test: skip (the reason) -->`` is not, and the reason may not be empty; a block that
shows output or a file is tagged with its format (``text``, ``json``, ``yaml``...).  Every
fence carries a tag, so a command block cannot escape the tests by having none.  In a
``console`` block only the ``$ ``-prompted lines (with their backslash continuations) run; the
other lines are the output the reader should expect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHELL = frozenset({"bash", "sh", "shell", "console"})
PYTHON = frozenset({"python", "py"})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*doc-test:(?P<body>.*?)-->\s*$")
_SKIP = re.compile(r"^\s*skip\s*\((?P<reason>.*)\)\s*$")


class DocFormatError(ValueError):
    """A document breaks the convention (untagged fence, empty skip reason, stray marker)."""


@dataclass(frozen=True)
class Block:
    doc: str
    line: int  # 1-based line of the opening fence
    language: str
    body: str
    skip: str | None = None

    @property
    def runnable(self) -> bool:
        return self.language in SHELL or self.language in PYTHON

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def script(self) -> str:
        """What runs: the body, or a console block's prompted commands."""
        if self.language != "console":
            return self.body
        commands: list[str] = []
        continuing = False
        for line in self.body.splitlines():
            if continuing:
                commands.append(line)
            elif line.startswith("$ "):
                commands.append(line[2:])
            else:
                continue
            continuing = line.rstrip().endswith("\\")
        return "\n".join(commands) + "\n" if commands else self.body


def parse(text: str, doc: str) -> list[Block]:
    """Every fenced block of ``text`` in order; raises DocFormatError naming ``doc:line``."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: tuple[int, str] | None = None  # (line, reason) of a skip marker awaiting its block
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        if marker:
            if pending is not None:
                raise DocFormatError(f"{doc}:{pending[0]}: doc-test marker not followed by a block")
            pending = (i + 1, _skip_reason(marker.group("body"), f"{doc}:{i + 1}"))
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if pending is not None and line.strip():
                raise DocFormatError(
                    f"{doc}:{pending[0]}: a doc-test marker must come right before a code block"
                )
            i += 1
            continue
        indent, opening = fence.group("indent"), fence.group("fence")
        language = fence.group("info").strip().split(" ")[0].lower()
        if not language:
            raise DocFormatError(
                f"{doc}:{i + 1}: fenced block without a language; tag commands bash/sh/console "
                "or python (they are run), anything else text, json, yaml, ..."
            )
        closing = re.compile(rf"^[ \t]*{re.escape(opening[0])}{{{len(opening)},}}\s*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise DocFormatError(f"{doc}:{i + 1}: code block never closed")
        block = Block(doc, i + 1, language, "\n".join(body) + "\n", pending[1] if pending else None)
        if pending is not None and not block.runnable:
            raise DocFormatError(
                f"{doc}:{pending[0]}: doc-test skip before a {language} block, which is never run"
            )
        blocks.append(block)
        pending = None
        i = j + 1
    if pending is not None:
        raise DocFormatError(f"{doc}:{pending[0]}: doc-test marker not followed by a block")
    return blocks


def _skip_reason(body: str, where: str) -> str:
    skip = _SKIP.match(body)
    if not skip:
        raise DocFormatError(
            f"{where}: unknown doc-test marker {body.strip()!r}; write <!-- doc-test: skip (why) -->"
        )
    reason = skip.group("reason").strip()
    if not reason:
        raise DocFormatError(f"{where}: doc-test skip needs a reason: <!-- doc-test: skip (why) -->")
    return reason


def load(path: Path, root: Path) -> list[Block]:
    return parse(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
