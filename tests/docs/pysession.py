"""The Python side of a document's session: runs its ``python`` blocks in one namespace.

Started once per document (``python pysession.py``); each request on stdin is one JSON line
``{"code", "filename", "first_line", "env", "cwd"}``; each answer on the file descriptor named by the argument is one
JSON line ``{"ok", "error"}``.  Blocks share globals, as a reader typing them into one
interpreter would; tracebacks name the document and its line numbers.  What the block prints
goes to this process's stdout/stderr, which the runner reads back per block.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any


def main() -> None:
    sys.path[0] = ""  # the working directory, as in an interactive interpreter
    answers = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8", buffering=1)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for raw in sys.stdin:
        request = json.loads(raw)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        # Pad so the code's line numbers are the document's, for tracebacks.
        source = "\n" * (request["first_line"] - 1) + request["code"]
        try:
            exec(compile(source, request["filename"], "exec"), namespace)
            answer: dict[str, Any] = {"ok": True, "error": ""}
        except BaseException:  # a SystemExit in a block is a failure too, reported as such
            answer = {"ok": False, "error": traceback.format_exc()}
        sys.stdout.flush()
        sys.stderr.flush()
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
