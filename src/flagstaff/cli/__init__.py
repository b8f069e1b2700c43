"""The ``flagstaff`` command line: management over the HTTP API, flags as code, ``serve``.

Exit codes: 0 ok, 1 invalid input (bad options, an invalid file, a refused change), 2 server
or network error (unreachable, token rejected, server failure).  Every failure prints one line
that says what happened and what to do.  The server and its settings are in the configuration
docs of :mod:`flagstaff.cli.config`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from flagstaff.cli import (
    admin,
    ascode,
    audit,
    browser_access,  # noqa: F401  (its commands join flags and envs)
    evaluate,
    experiments,
    flags,
    relay,
    resources,
    serve,
)
from flagstaff.cli.errors import CliError, ExitCode
from flagstaff.cli.governance import changes, policies, schedules, triggers, webhooks
from flagstaff.cli.output import Output, State, esc

try:  # recent Typer releases vendor Click; older ones use the click package
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

app = typer.Typer(
    name="flagstaff",
    help=(
        "Flagstaff feature flags.  The server and token come from --url/--token, "
        "FLAGSTAFF_URL/FLAGSTAFF_TOKEN or a profile in ~/.config/flagstaff/config.toml "
        "(or $FLAGSTAFF_CONFIG).  Example: flagstaff --url http://127.0.0.1:8400 flags list"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="server URL (default http://127.0.0.1:8400)")
    ] = None,
    token: Annotated[str | None, typer.Option(help="API token (fsm_...)")] = None,
    profile: Annotated[str | None, typer.Option(help="profile in the config file")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table or json")] = Output.table,
) -> None:
    ctx.obj = State(url=url, token=token, profile=profile, output=output)


app.add_typer(flags.app, name="flags")
app.add_typer(resources.segments, name="segments")
app.add_typer(resources.envs, name="envs")
app.add_typer(resources.tokens, name="tokens")
app.add_typer(experiments.app, name="experiments")
app.add_typer(changes.app, name="changes")
app.add_typer(schedules.app, name="schedules")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(policies.app, name="policy")
app.add_typer(triggers.app, name="triggers")
app.add_typer(admin.app, name="admin")
app.command("audit")(audit.audit)
app.command("eval")(evaluate.evaluate)
app.command("apply")(ascode.apply)
app.command("export")(ascode.export)
app.command("validate")(ascode.validate)
app.command("scan")(ascode.scan_command)
app.command("serve")(serve.serve)
app.command("relay")(relay.relay)


def _plain_switches(command: Any) -> None:
    """Show on/off switches in help without a value type: ``--client-side``, not
    ``--client-side <bool>`` (Typer prints the annotation of every option)."""
    # --help is made on first use; make it now (cached on the command) to treat it alike.
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _plain_switches(sub)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (``main`` exits with it)."""
    command = typer.main.get_command(app)
    _plain_switches(command)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="flagstaff",
            standalone_mode=False,
        )
    except CliError as exc:
        State().err.print(f"[red]error:[/] {esc(exc.message)}", highlight=False)
        return int(exc.code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        return int(ExitCode.OK)
    except click_errors.ClickException as exc:
        # Usage errors are invalid input: exit 1, not click's 2 (2 means the server failed).
        exc.show()
        return int(ExitCode.INVALID)
    except typer.Abort:
        return int(ExitCode.INVALID)
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
