"""``flagstaff eval``: ask the server what a flag serves to a context, and why."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, compact, emit, esc, state, table


def evaluate(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="flag key")],
    context: Annotated[
        str, typer.Option("--context", "-c", help="evaluation context as JSON")
    ] = "{}",
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="environment (required with a management token)"),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Evaluate a flag for a context: value, variant and reason, for debugging targeting.

    Example: flagstaff eval new-checkout --env production --context '{"key": "user-1", "tenant": {"type": "enterprise"}}'
    """
    st = state(ctx)
    try:
        parsed: Any = json.loads(context)
    except json.JSONDecodeError as exc:
        raise CliError(f"--context is not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(parsed, dict):
        raise CliError('--context must be a JSON object, e.g. \'{"key": "user-1"}\'')
    body = {"flag": key, "context": parsed, **({"environment": env} if env else {})}
    with st.client() as client:
        detail = client.send("POST", "/evaluate", body, options={"environment": "--env"})

    def show(console: Console) -> None:
        rows = [(name, compact(detail.get(name)) if name == "value" else detail.get(name))
                for name in ("value", "variant", "reason", "rule_id", "prerequisite_key", "error_code", "error_message", "version")
                if name in ("value", "variant", "reason") or detail.get(name) is not None]  # fmt: skip
        console.print(table(esc(key), ["field", "value"], rows))

    emit(st, output, detail, show)
