"""Every command block in docs/ and the README runs, in document order, against a real server.

One server process per document, on a fresh SQLite database with the demo flags; the blocks
see ``FLAGSTAFF_URL`` and ``FLAGSTAFF_TOKEN`` (an admin token), the checkout's ``.venv/bin``
first on ``PATH``, and a scratch working directory (with ``.venv`` linked in, so
``.venv/bin/flagstaff`` works as it does in a checkout) and home directory.  A failing block
fails the test naming the document, the line and the output.  The convention is in
``tests/docs/blocks.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.docs.blocks import load
from tests.docs.session import BlockFailed, DocSession
from tests.serverprocess import server_process

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOKEN = "fsm_docs_runner_admin_token_0123456789abcdef"

pytestmark = pytest.mark.slow


def block_env(url: str, home: Path) -> dict[str, str]:
    """The reader's shell: their environment without our own settings, plus the server's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTAFF_")}
    env.pop("XDG_CONFIG_HOME", None)
    bin_dir = Path(sys.prefix) / "bin"
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        FLAGSTAFF_URL=url,
        FLAGSTAFF_TOKEN=TOKEN,
    )
    return env


@pytest.mark.timeout(900)
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_document_blocks_run(document: Path, tmp_path: Path) -> None:
    _walk([document], tmp_path)


# A new user reads the README first, on the server its tour set up (a flag killed, an SDK key
# made), and then a guide: the guide must still hold on that server, not only on a fresh one.
AFTER_THE_README = [ROOT / "docs" / "sdk.md"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("document", AFTER_THE_README, ids=lambda p: str(p.relative_to(ROOT)))
def test_document_blocks_run_after_the_readme(document: Path, tmp_path: Path) -> None:
    _walk([ROOT / "README.md", document], tmp_path)


def _walk(documents: list[Path], tmp_path: Path) -> None:
    """Run the documents' blocks in order, in one shell session against one server."""
    blocks = [b for d in documents for b in load(d, ROOT) if b.runnable and b.skip is None]
    if not blocks:
        return  # nothing to run; load() above still checked the document's fences and markers
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    with (
        server_process(
            f"sqlite:///{tmp_path / 'flagstaff.db'}", tmp_path / "server.log", admin_token=TOKEN,
            FLAGSTAFF_DEMO="true", FLAGSTAFF_LOG_LEVEL="WARNING",
            # docs/governance.md runs a webhook receiver on this machine, as a reader would try it.
            FLAGSTAFF_WEBHOOK_ALLOW_LOOPBACK="true",
        ) as server,
        DocSession(block_env(server.url, home), work) as session,
    ):  # fmt: skip
        try:
            for block in blocks:
                try:
                    session.run(block)
                except BlockFailed as failed:
                    pytest.fail(str(failed), pytrace=False)
        finally:
            end_background_processes(work)


def end_background_processes(work: Path) -> None:
    """A block that starts a process in the background writes its pid to ``<name>.pid`` in the
    working directory (as the reader would, to stop it later): whatever a failed document left
    running is ended here, not left on the machine."""
    for pid_file in work.glob("*.pid"):
        text = pid_file.read_text().strip()
        if text.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(text), signal.SIGTERM)
