"""The documentation convention: which blocks run, skip markers, and what is refused."""

from __future__ import annotations

import pytest

from tests.docs.blocks import DocFormatError, parse


def test_blocks_in_order_with_language_line_and_dedented_body() -> None:
    text = (
        "# Title\n"
        "1. a step:\n"
        "   ```bash\n"
        "   flagstaff flags list\n"
        "     --indented continuation\n"
        "   ```\n"
        "```json\n"
        '{"a": 1}\n'
        "```\n"
        "```python\n"
        "print(1)\n"
        "```\n"
    )
    blocks = parse(text, "doc.md")
    assert [(b.language, b.line, b.runnable) for b in blocks] == [
        ("bash", 3, True), ("json", 7, False), ("python", 10, True),
    ]  # fmt: skip
    assert blocks[0].body == "flagstaff flags list\n  --indented continuation\n"
    assert blocks[0].where == "doc.md:3"


def test_skip_marker_records_its_reason() -> None:
    text = "<!-- doc-test: skip (runs the server until interrupted) -->\n```bash\nflagstaff serve\n```\n"
    (block,) = parse(text, "doc.md")
    assert block.skip == "runs the server until interrupted"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- doc-test: skip () -->\n```bash\nx\n```\n", "doc.md:1: doc-test skip needs a reason"),
        ("<!-- doc-test: skip -->\n```bash\nx\n```\n", "doc.md:1: unknown doc-test marker"),
        ("<!-- doc-test: skp (why) -->\n```bash\nx\n```\n", "doc.md:1: unknown doc-test marker"),
        ("```\nplain\n```\n", "doc.md:1: fenced block without a language"),
        ("<!-- doc-test: skip (why) -->\ntext between\n```bash\nx\n```\n", "must come right before"),
        ("<!-- doc-test: skip (why) -->\n", "doc.md:1: doc-test marker not followed by a block"),
        ("<!-- doc-test: skip (why) -->\n```text\nx\n```\n", "before a text block, which is never run"),
        ("```bash\nnever closed\n", "doc.md:1: code block never closed"),
    ],
)
def test_convention_breaches_are_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(DocFormatError, match=message):
        parse(text, "doc.md")


def test_console_block_runs_only_prompted_commands_with_continuations() -> None:
    text = (
        "```console\n"
        "$ flagstaff flags kill x \\\n"
        "    --env production\n"
        "killed flag x in production\n"
        "$ flagstaff flags list\n"
        "```\n"
    )
    (block,) = parse(text, "doc.md")
    assert block.script() == "flagstaff flags kill x \\\n    --env production\nflagstaff flags list\n"


def test_a_longer_fence_holds_a_shorter_one() -> None:
    text = "````text\n```bash\nnot a block\n```\n````\n"
    (block,) = parse(text, "doc.md")
    assert block.language == "text" and "not a block" in block.body
