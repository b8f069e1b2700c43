"""Flags as code: ``apply``, ``export``, ``validate`` and ``scan``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from flagstaff.cli.diff import render
from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, State, emit, state, table
from flagstaff.cli.scan import scan
from flagstaff.cli.sync import Action, Plan, execute, make_plan, normalise
from flagstaff.flagfile import FlagFile, FlagFileError, dumps, load_file

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
    output: OutputOption = None,
) -> None:
    """Make the server match a flag file: create and update, print the diff.

    Never deletes; a second run reports "no changes". Updates use If-Match, so a flag edited
    meanwhile fails with a clear message instead of being overwritten.

    Example: flagstaff apply -f flags.yaml --dry-run
    """
    st = state(ctx)
    flag_file = _load(file)
    with st.client() as client:
        plan = make_plan(client, flag_file, environment=env)
        if plan.actions and not dry_run:
            with _progress(st, len(plan.actions)) as progress:
                task = progress.add_task("applying", total=len(plan.actions))
                execute(client, plan, step=lambda _: progress.advance(task))
    result = {
        "dry_run": dry_run,
        "changes": [a.to_json() for a in plan.actions],
        "unmanaged": plan.unmanaged,
    }
    emit(st, output, result, lambda c: _show_plan(c, plan, dry_run=dry_run, source=str(file)))


def _show_plan(console: Console, plan: Plan, *, dry_run: bool, source: str) -> None:
    for action in plan.actions:
        console.print(_headline(action), highlight=False)
        for line in render(action.changes):
            console.print(line, highlight=False)
    count = len(plan.actions)
    if not count:
        console.print(f"no changes: the server already matches {source}")
    elif dry_run:
        console.print(f"dry run: {count} change(s) not applied")
    else:
        console.print(f"applied {count} change(s)")
    if plan.unmanaged:
        console.print(
            f"{len(plan.unmanaged)} flag(s) on the server are not in the file (left unchanged): {', '.join(plan.unmanaged)}"
        )


def _headline(action: Action) -> str:
    colour = {"create": "green", "update": "yellow", "restore": "cyan"}[action.op]
    sign = {"create": "+", "update": "~", "restore": "^"}[action.op]
    return f"[{colour}]{sign} {action.op} {action.kind} {action.key}[/]"


def export(
    ctx: typer.Context,
    env: EnvOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
) -> None:
    """Write the server's flags, segments and environments as a canonical flag file.

    The file round-trips exactly: applying it to the same server changes nothing.

    Example: flagstaff export --env production > flags.yaml
    """
    st = state(ctx)
    with st.client() as client:
        environments = [e["key"] for e in client.items("/environments")]
        segments = [normalise(s, segment=True) for s in client.items("/segments")]
        raw = list(client.items("/flags", state="active"))
        flags = []
        with _progress(st, len(raw)) as progress:
            task = progress.add_task("exporting", total=len(raw))
            for flag in raw:
                flags.append(_only(normalise(flag), env))
                progress.advance(task)
    if env is not None:
        if env not in environments:
            raise CliError(
                f"no environment {env!r} on the server (environments: {', '.join(environments)})"
            )
        environments = [env]
    text = dumps(flags, segments, environments)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        st.err.print(f"wrote {len(flags)} flag(s) and {len(segments)} segment(s) to {out}")


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
    summary = {
        "file": str(file),
        "flags": [f["key"] for f in flag_file.flags],
        "segments": [s["key"] for s in flag_file.segments],
        "environments": flag_file.environments,
    }
    emit(st, output, summary, lambda c: c.print(
        f"[green]ok[/] {file}: {len(flag_file.flags)} flag(s), {len(flag_file.segments)} segment(s), "
        f"environments {', '.join(flag_file.environments) or '-'}", highlight=False))  # fmt: skip


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
    output: OutputOption = None,
) -> None:
    """Find flag keys used in code; report unused flags and references to unknown flags.

    Example: flagstaff scan src/ -f flags.yaml
    """
    st = state(ctx)
    if not root.exists():
        raise CliError(f"{root}: no such file or directory")
    if file is not None:
        known = [f["key"] for f in _load(file).flags]
    else:
        with st.client() as client:
            known = [f["key"] for f in client.items("/flags", state="active")]
    result = scan(root, known)

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
                f"[yellow]flags never referenced ({len(result.unused)}):[/] {', '.join(result.unused)}"
            )
        else:
            console.print("every flag is referenced")

    emit(st, output, result.to_json(), show)
    if strict and result.unknown:
        raise typer.Exit(1)


def _progress(st: State, total: int) -> Progress:
    return Progress(
        console=st.err, transient=True, disable=total < PROGRESS_FROM or not st.err.is_terminal
    )
