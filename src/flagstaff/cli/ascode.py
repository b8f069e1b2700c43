"""Flags as code: ``apply``, ``export``, ``validate`` and ``scan``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from flagstaff.cli.diff import render
from flagstaff.cli.errors import CliError, ExitCode
from flagstaff.cli.output import OutputOption, State, emit, esc, state, table
from flagstaff.cli.plan import Action, Plan
from flagstaff.cli.scan import scan
from flagstaff.cli.sync import execute, make_plan, normalise
from flagstaff.cli.sync_governance import exported_policies, exported_webhooks
from flagstaff.flagfile import (
    FlagFile,
    FlagFileError,
    dumps,
    environments_in_pipeline_order,
    load_file,
    pipeline_order,
)

# Below this many writes a progress bar is more flicker than help.
PROGRESS_FROM = 5

FileOption = Annotated[Path, typer.Option("--file", "-f", help="the flag file (YAML or JSON)")]
EnvOption = Annotated[
    str | None, typer.Option("--env", "-e", help="only this environment's configuration")
]


def _load(path: Path) -> FlagFile:
    try:
        return load_file(path)
    except FlagFileError as exc:
        raise CliError(str(exc)) from None


def apply(
    ctx: typer.Context,
    file: FileOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the changes, write nothing")
    ] = False,
    env: EnvOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="apply even when it turns on an environment that is off "
                     "(reverting a kill) or changes a running experiment"),
    ] = False,
    exit_code: Annotated[
        bool,
        typer.Option("--exit-code", help=f"with --dry-run: exit {int(ExitCode.DRIFT)} when the "
                     "server differs from the file (drift), 0 when it matches"),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Make the server match a flag file: create and update, print the diff.

    Never deletes; a second run reports "no changes". Updates use If-Match, so a flag edited
    meanwhile fails with a clear message instead of being overwritten. An update that turns on
    an environment that is off on the server (an incident kill) or changes a running experiment
    is shown with a WARNING and refused unless --force is given.

    Example: flagstaff apply -f flags.yaml --dry-run --exit-code
    """
    st = state(ctx)
    flag_file = _load(file)
    with st.client() as client:
        plan = make_plan(client, flag_file, environment=env)
        risky = [a for a in plan.actions if a.warnings]
        if risky and not dry_run and not force:
            for action in risky:
                _warn(st, action)
            raise CliError(
                f"nothing applied: {len(risky)} change(s) would revert deliberate state on the "
                "server (see the warnings above); check them, then run again with --force"
            )
        if plan.actions and not dry_run:
            with _progress(st, len(plan.actions)) as progress:
                task = progress.add_task("applying", total=len(plan.actions))
                execute(client, plan, step=lambda _: progress.advance(task))
    result: dict[str, object] = {
        "dry_run": dry_run,
        "changes": [a.to_json() for a in plan.actions],
        "unmanaged": plan.unmanaged,
    }
    if plan.unmanaged_webhooks is not None:
        result["unmanaged_webhooks"] = plan.unmanaged_webhooks
    emit(st, output, result, lambda c: _show_plan(c, plan, dry_run=dry_run, source=str(file)))
    if dry_run and exit_code and plan.actions:
        raise typer.Exit(int(ExitCode.DRIFT))


def _warn(st: State, action: Action) -> None:
    for warning in action.warnings:
        st.err.print(
            f"[bold red]WARNING:[/] {action.kind} {esc(action.key)} {esc(warning)}", highlight=False
        )


def _show_plan(console: Console, plan: Plan, *, dry_run: bool, source: str) -> None:
    for action in plan.actions:
        console.print(_headline(action), highlight=False)
        for warning in action.warnings:
            console.print(f"    [bold red]WARNING: {esc(warning)}[/]", highlight=False)
        for line in render(action.changes):
            console.print(line, highlight=False)
    count = len(plan.actions)
    if not count:
        console.print(f"no changes: the server already matches {esc(source)}")
    elif dry_run:
        console.print(f"dry run: {count} change(s) not applied")
    else:
        console.print(f"applied {count} change(s)")
    if plan.unmanaged:
        console.print(
            f"{len(plan.unmanaged)} flag(s) on the server are not in the file (left unchanged): "
            f"{esc(', '.join(plan.unmanaged))}"
        )
    if plan.unmanaged_webhooks:
        console.print(
            f"{len(plan.unmanaged_webhooks)} webhook subscription(s) on the server are not in the "
            f"file (left unchanged): {esc(', '.join(plan.unmanaged_webhooks))}"
        )


def _headline(action: Action) -> str:
    colour = {"create": "green", "update": "yellow", "restore": "cyan"}[action.op]
    sign = {"create": "+", "update": "~", "restore": "^"}[action.op]
    return f"[{colour}]{sign} {action.op} {action.kind} {esc(action.key)}[/]"


def export(
    ctx: typer.Context,
    env: EnvOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
) -> None:
    """Write the server's flags, segments, environments, approval policies and webhook
    subscriptions (without secrets; admin tokens only) as a canonical flag file.

    The file round-trips exactly: applying it to the same server changes nothing.  Flags and
    segments are in key order and environments in pipeline order (development, staging,
    production, then the rest), so exporting again gives the same file and git diffs show
    only real changes.

    Example: flagstaff export --env production > flags.yaml
    """
    st = state(ctx)
    with st.client() as client:
        environments = pipeline_order(e["key"] for e in client.items("/environments"))
        segments = sorted(
            (normalise(s, segment=True) for s in client.items("/segments")), key=lambda s: s["key"]
        )
        raw = list(client.items("/flags", state="active"))
        flags = []
        with _progress(st, len(raw)) as progress:
            task = progress.add_task("exporting", total=len(raw))
            for flag in raw:
                flags.append(environments_in_pipeline_order(_only(normalise(flag), env)))
                progress.advance(task)
        flags.sort(key=lambda f: str(f["key"]))
        if env is not None:
            if env not in environments:
                raise CliError(
                    f"no environment {env!r} on the server (environments: {', '.join(environments)})"
                )
            environments = [env]
        policies = exported_policies(client, environments)
        # Subscriptions span environments: an --env export leaves them out.
        hooks = exported_webhooks(client) if env is None else None
    if env is None and hooks is None:
        st.err.print("webhook subscriptions left out: only an admin token may read them")
    for left_out in hooks.left_out if hooks else []:
        st.err.print(f"webhook {left_out} left out: an earlier subscription sends to its URL "
                     "(a flag file holds one per URL)")
    text = dumps(flags, segments, environments, policies=policies,
                 webhooks=hooks.hooks if hooks else ())
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        st.err.print(f"wrote {len(flags)} flag(s) and {len(segments)} segment(s) to {esc(out)}")


def _only(flag: dict[str, object], env: str | None) -> dict[str, object]:
    if env is None:
        return flag
    envs = flag.get("environments")
    kept = {env: envs[env]} if isinstance(envs, dict) and env in envs else {}
    return normalise({**flag, "environments": kept})


def validate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the flag file to check")],
    output: OutputOption = None,
) -> None:
    """Check a flag file offline; errors name the file line.

    Example: flagstaff validate flags.yaml
    """
    st = state(ctx)
    flag_file = _load(file)
    summary: dict[str, object] = {
        "file": str(file),
        "flags": [f["key"] for f in flag_file.flags],
        "segments": [s["key"] for s in flag_file.segments],
        "environments": flag_file.environments,
    }
    if flag_file.policies is not None:
        summary["policies"] = list(flag_file.policies)
    if flag_file.webhooks is not None:
        summary["webhooks"] = [w["url"] for w in flag_file.webhooks]
    emit(st, output, summary, lambda c: c.print(
        f"[green]ok[/] {esc(file)}: {len(flag_file.flags)} flag(s), {len(flag_file.segments)} segment(s), "
        f"environments {esc(', '.join(flag_file.environments) or '-')}", highlight=False))  # fmt: skip


def scan_command(
    ctx: typer.Context,
    root: Annotated[Path, typer.Argument(help="directory or file to scan")] = Path("."),
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="known flags from this flag file instead of the server"),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 1 when code references unknown flags")
    ] = False,
    report: Annotated[
        bool,
        typer.Option("--report", help="send the references to the server for this repository "
                     "(replaces its last report; shown on flag pages and when archiving)"),
    ] = False,
    repository: Annotated[
        str | None,
        typer.Option("--repository", help="with --report: the repository's name, e.g. "
                     "github.com/acme/shop"),
    ] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="with --report: what was scanned, e.g. a commit")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Find flag keys used in code; report unused flags and references to unknown flags.

    With --report --repository NAME the references (key, file, line) go to the server, which
    keeps the last report of each repository.

    Example: flagstaff scan src/ --report --repository github.com/acme/shop
    """
    st = state(ctx)
    if not root.exists():
        raise CliError(f"{root}: no such file or directory")
    if report and not repository:
        raise CliError("--report needs --repository NAME: the name the server keeps these references under")
    if not report and (repository or revision):
        raise CliError("--repository and --revision go with --report")
    if file is not None:
        known = [f["key"] for f in _load(file).flags]
    else:
        with st.client() as client:
            known = [f["key"] for f in client.items("/flags", state="active")]
    result = scan(root, known)
    stored = None
    if report:
        references = [
            {"key": r.key, "file": r.file, "line": r.line, "kind": r.kind} for r in result.references
        ]
        with st.client() as client:
            stored = client.send("POST", "/code-references", {
                "repository": repository, "revision": revision, "references": references,
            })

    def show(console: Console) -> None:
        counts: dict[str, int] = {}
        for ref in result.references:
            counts[ref.key] = counts.get(ref.key, 0) + 1
        console.print(table("flag references", ["flag", "references"], sorted(counts.items())))
        if result.unknown:
            rows = [(r.key, f"{r.file}:{r.line}") for r in result.unknown]
            console.print(
                table("[red]references to flags that do not exist[/]", ["key", "where"], rows)
            )
        if result.unused:
            console.print(
                f"[yellow]flags never referenced ({len(result.unused)}):[/] {esc(', '.join(result.unused))}"
            )
        else:
            console.print("every flag is referenced")
        if stored is not None:
            console.print(
                f"reported {stored['reference_count']} reference(s) to {stored['flag_count']} "
                f"flag key(s) as repository {esc(stored['repository'])}", highlight=False,
            )

    emit(st, output, result.to_json() | ({"report": stored} if stored is not None else {}), show)
    if strict and result.unknown:
        raise typer.Exit(1)


def _progress(st: State, total: int) -> Progress:
    return Progress(
        console=st.err, transient=True, disable=total < PROGRESS_FROM or not st.err.is_terminal
    )
