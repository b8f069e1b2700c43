"""The document session: blocks share a shell environment and one interpreter; failures say where."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.docs.blocks import parse
from tests.docs.session import BlockFailed, DocSession


def _session(tmp_path: Path) -> DocSession:
    return DocSession({"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, tmp_path)


def test_exports_and_directory_carry_over_to_later_blocks(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    blocks = parse(
        "```bash\nexport GREETING=hello\ncd sub\n```\n"
        "```sh\necho \"$GREETING from $(basename \"$PWD\")\"\n```\n"
        "```python\nimport os\nprint(os.environ['GREETING'], os.getcwd())\nx = 41\n```\n"
        "```python\nprint(x + 1)\n```\n",
        "doc.md",
    )
    with _session(tmp_path) as session:
        outputs = [session.run(b) for b in blocks]
    assert outputs[1] == "hello from sub\n"
    assert outputs[2] == f"hello {tmp_path / 'sub'}\n"
    assert outputs[3] == "42\n"  # one interpreter: names defined earlier are still there


def test_a_failing_shell_block_names_document_line_and_output(tmp_path: Path) -> None:
    blocks = parse("text\n\n```bash\necho before\nfalse\necho never\n```\n", "docs/x.md")
    with _session(tmp_path) as session, pytest.raises(BlockFailed) as failed:
        session.run(blocks[0])
    message = str(failed.value)
    assert message.startswith("docs/x.md:3: bash block exited 1")
    assert "before" in message and "never\n" not in message.split("--- output ---")[1]


def test_a_failed_pipeline_fails_the_block(tmp_path: Path) -> None:
    blocks = parse("```bash\nfalse | cat\n```\n", "doc.md")
    with _session(tmp_path) as session, pytest.raises(BlockFailed, match="exited 1"):
        session.run(blocks[0])


def test_a_python_error_reports_the_document_line(tmp_path: Path) -> None:
    blocks = parse("# t\n\n```python\nprint('ok')\nraise ValueError('boom')\n```\n", "docs/y.md")
    with _session(tmp_path) as session, pytest.raises(BlockFailed) as failed:
        session.run(blocks[0])
    message = str(failed.value)
    assert message.startswith("docs/y.md:3: python block raised")
    assert 'File "docs/y.md", line 5' in message and "ValueError: boom" in message
    assert "ok" in message
