"""``flagstaff flags ...``: list, inspect, create, toggle, serve, kill, archive, restore, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from flagstaff.cli.client import ApiClient, path
from flagstaff.cli.diff import render
from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, emit, esc, state, table
from flagstaff.flagfile import FlagFileError, load_file

app = typer.Typer(
    help="Manage flags.  Example: flagstaff flags list --tag checkout", no_args_is_help=True
)

KeyArg = Annotated[str, typer.Argument(help="flag key")]
EnvOption = Annotated[str, typer.Option("--env", "-e", help="environment key, e.g. production")]


@app.command("list")
def list_flags(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option(help="only flags with this tag")] = None,
    flag_state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="active, archived, or stale (active flags unused lately or serving one variant)",
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", "-s", help="only flags whose key, name or description has this"),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="show whether each flag is on here")
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            help="key (default), name, kind, tags, created, updated or status:ENV (on first); "
            "-FIELD reverses, e.g. -updated",
        ),
    ] = None,
    output: OutputOption = None,
) -> None:
    """List flags.

    Example: flagstaff flags list --search checkout --env production --sort -updated
    """
    st = state(ctx)
    if flag_state is not None and flag_state not in ("active", "archived", "stale"):
        raise CliError(f"--state {flag_state!r}: expected active, archived or stale")
    if flag_state == "stale" and (tag or search):
        raise CliError("--state stale lists every stale flag; it cannot be combined with --tag or --search")
    with st.client() as client:
        if env is not None:
            require_environment(client, env)
        flags = list(client.items("/flags", tag=tag, state=flag_state, q=search, sort=sort))

    def show(console: Console) -> None:
        env_column = f"on in {env}" if env else "on in"
        rows = []
        for f in flags:
            envs = f.get("environments", {})
            on = (
                envs.get(env, {}).get("enabled", False)
                if env
                else [e for e, c in envs.items() if c.get("enabled")]
            )
            rows.append(
                (f["key"], f.get("type"), f.get("state"), on, f.get("tags", []), f.get("version"))
            )
        console.print(table(None, ["key", "type", "state", env_column, "tags", "version"], rows))
        console.print(f"{len(flags)} flag(s)" + (f" matching {esc(repr(search))}" if search else ""))

    emit(st, output, flags, show)


def require_environment(client: ApiClient, env: str) -> None:
    """Refuse an environment the server does not have (a typo must not read as "all off")."""
    known = [e["key"] for e in client.items("/environments")]
    if env not in known:
        raise CliError(f"no environment {env!r} on the server (environments: {', '.join(known)})")


@app.command("get")
def get_flag(ctx: typer.Context, key: KeyArg, output: OutputOption = None) -> None:
    """Show one flag's full definition.

    Example: flagstaff flags get new-checkout -o json
    """
    st = state(ctx)
    with st.client() as client:
        flag = client.get(path("flags", key))
    emit(
        st,
        output,
        flag,
        lambda c: c.print(
            yaml.safe_dump(flag, sort_keys=False, allow_unicode=True), markup=False, highlight=False
        ),
    )


@app.command("create")
def create_flag(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="flag key (not with -f)")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="create every flag in this flag file")
    ] = None,
    name: Annotated[str | None, typer.Option(help="display name (default: the key)")] = None,
    flag_type: Annotated[
        str, typer.Option("--type", help="boolean | string | number | json")
    ] = "boolean",
    description: Annotated[str, typer.Option(help="what the flag is for")] = "",
    kind: Annotated[
        str, typer.Option(help="release | experiment | operational | kill-switch | permission")
    ] = "release",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeatable)")] = None,
    owner: Annotated[str, typer.Option(help="owning team or person")] = "",
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="NAME=JSON-VALUE (repeatable; non-boolean flags)"),
    ] = None,
    off_variant: Annotated[
        str | None, typer.Option(help="variant served when off (default: the first)")
    ] = None,
    client_side: Annotated[
        bool, typer.Option("--client-side", help="available to client-side SDK keys (browsers)")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Create a flag from options, or every flag in a file.

    Examples: flagstaff flags create dark-mode --tag ui ;
    flagstaff flags create limit --type number --variant low=4 --variant high=15 ;
    flagstaff flags create -f flags.yaml
    """
    st = state(ctx)
    if file is not None:
        if key is not None:
            raise CliError("give either a KEY with options or -f FILE, not both")
        try:
            bodies = load_file(file).flags
        except FlagFileError as exc:
            raise CliError(str(exc)) from None
    elif key is None:
        raise CliError("give a flag KEY, or -f FILE to create the flags of a flag file")
    else:
        bodies = [
            _definition(
                key,
                name,
                flag_type,
                description,
                kind,
                tag or [],
                owner,
                variant or [],
                off_variant,
            )
            | ({"client_side": True} if client_side else {})
        ]
    created = []
    with st.client() as client:
        for body in bodies:
            created.append(client.send("POST", "/flags", body))
    emit(
        st,
        output,
        created,
        lambda c: c.print(
            "\n".join(
                f"[green]created[/] flag {esc(f['key'])} (version {f.get('version')})" for f in created
            )
        ),
    )


def _definition(
    key: str, name: str | None, flag_type: str, description: str, kind: str,
    tags: list[str], owner: str, variants: list[str], off_variant: str | None,
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "key": key,
        "type": flag_type,
        "description": description,
        "kind": kind,
        "tags": tags,
        "owner": owner,
    }
    if name:
        body["name"] = name
    if variants:
        parsed: dict[str, Any] = {}
        for item in variants:
            label, sep, raw = item.partition("=")
            if not sep or not label:
                raise CliError(
                    f"--variant {item!r}: expected NAME=VALUE, e.g. high=15 or on='\"blue\"'"
                )
            try:
                parsed[label] = json.loads(raw)
            except json.JSONDecodeError:
                parsed[label] = raw  # a bare word is a string value
        body["variants"] = parsed
        body["off_variant"] = off_variant or next(iter(parsed))
    elif off_variant:
        body["off_variant"] = off_variant
    return body


@app.command("toggle")
def toggle(
    ctx: typer.Context,
    key: KeyArg,
    env: EnvOption,
    on: Annotated[
        bool | None, typer.Option("--on/--off", help="turn on or off (default: flip)")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Turn a flag on or off in one environment.

    Example: flagstaff flags toggle new-checkout --on --env production
    """
    st = state(ctx)
    with st.client() as client:
        version = None
        if on is None:
            current = client.get(path("flags", key))
            on = not current.get("environments", {}).get(env, {}).get("enabled", False)
            version = current.get("version")
        flag = client.send(
            "PATCH", path("flags", key, "environments", env), {"enabled": on}, if_match=version
        )
    word = "[green]on[/]" if on else "[red]off[/]"

    def show(console: Console) -> None:
        console.print(f"flag {esc(key)} is now {word} in {esc(env)} (version {flag.get('version')})")
        served = serves_only_off(flag, env)
        if on and served is not None:
            st.err.print(
                f"[yellow]note:[/] it still serves its off variant {esc(repr(served))} to everyone "
                f"in {esc(env)} (reason DEFAULT): no rule or default rollout serves anything "
                f"else. Choose what it serves: flagstaff flags serve {esc(key)} --env {esc(env)} "
                f"{esc(serve_example(flag))}",
                highlight=False,
            )

    emit(st, output, flag, show)


def serves_only_off(flag: dict[str, Any], env: str) -> str | None:
    """The off variant when an enabled environment can serve nothing else, otherwise None."""
    off = flag.get("off_variant")
    config = (flag.get("environments") or {}).get(env) or {}
    if not config.get("enabled") or config.get("rules") or config.get("targets"):
        return None
    if (config.get("experiment") or {}).get("status") == "running":
        return None
    fallthrough = config.get("fallthrough")
    if fallthrough is None or fallthrough == {"variant": off}:
        return str(off)
    return None


def serve_example(flag: dict[str, Any]) -> str:
    others = [v for v in flag.get("variants") or {} if v != flag.get("off_variant")]
    if flag.get("type") == "boolean":
        return "--percent 100 (everyone) or --percent 10 (a 10 % rollout)"
    return f"--variant {others[0]}" if others else "--variant NAME"


@app.command("serve")
def serve_default(
    ctx: typer.Context,
    key: KeyArg,
    env: EnvOption,
    variant: Annotated[
        str | None, typer.Option("--variant", help="serve this variant to everyone")
    ] = None,
    percent: Annotated[
        float | None,
        typer.Option(
            "--percent", min=0, max=100,
            help="boolean flags: serve true to this percent of users, false to the rest",
        ),
    ] = None,
    rollout: Annotated[
        list[str] | None,
        typer.Option("--rollout", help="VARIANT=PERCENT (repeatable; the percents sum to 100)"),
    ] = None,
    bucket_by: Annotated[
        str | None,
        typer.Option(help="attribute that buckets a rollout (default: the targeting key)"),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Set what a flag serves in one environment when no target or rule matches (its default
    rule): one variant, or a percentage rollout.

    Examples: flagstaff flags serve new-checkout --env staging --percent 100 ;
    flagstaff flags serve new-checkout --env production --percent 10 ;
    flagstaff flags serve banner --env production --rollout blue=50 --rollout green=50
    """
    st = state(ctx)
    chosen = [name for name, value in
              (("--variant", variant), ("--percent", percent), ("--rollout", rollout)) if value]  # fmt: skip
    if percent == 0:
        chosen.append("--percent")
    if len(chosen) != 1:
        raise CliError("give exactly one of --variant, --percent or --rollout")
    with st.client() as client:
        current = client.get(path("flags", key))
        fallthrough = _fallthrough(current, variant, percent, rollout or [], bucket_by)
        # A merge patch: null clears the other form; a rollout keeps its bucketing (bucket_by,
        # salt) unless told, so ramping 10 % -> 50 % keeps the first 10 % in.
        patch = {"variant": None, "rollout": None} | fallthrough
        flag = client.send(
            "PATCH", path("flags", key), {"environments": {env: {"fallthrough": patch}}},
            if_match=current.get("version"),
        )
    config = (flag.get("environments") or {}).get(env) or {}

    def show(console: Console) -> None:
        console.print(
            f"flag {esc(key)} now serves {esc(describe_serve(fallthrough))} by default in "
            f"{esc(env)} (version {flag.get('version')})"
        )
        if not config.get("enabled"):
            st.err.print(
                f"[yellow]note:[/] the flag is off in {esc(env)}, so it serves its off variant "
                f"until turned on: flagstaff flags toggle {esc(key)} --on --env {esc(env)}",
                highlight=False,
            )

    emit(st, output, flag, show)


def _fallthrough(
    flag: dict[str, Any], variant: str | None, percent: float | None, rollout: list[str],
    bucket_by: str | None,
) -> dict[str, Any]:  # fmt: skip
    variants = list(flag.get("variants") or {})
    if variant is not None:
        if variant not in variants:
            raise CliError(f"--variant {variant!r}: the flag's variants are {', '.join(variants)}")
        return {"variant": variant}
    if percent is not None:
        if flag.get("type") != "boolean":
            raise CliError("--percent is for boolean flags; use --rollout VARIANT=PERCENT ...")
        weights = {"true": round(percent, 3), "false": round(100 - percent, 3)}
    else:
        weights = {}
        for item in rollout:
            name, sep, raw = item.partition("=")
            try:
                weights[name] = float(raw)
            except ValueError:
                sep = ""
            if not sep or name not in variants:
                raise CliError(
                    f"--rollout {item!r}: expected VARIANT=PERCENT with a variant of the flag "
                    f"({', '.join(variants)})"
                )
    result: dict[str, Any] = {"variations": [
        {"variant": name, "weight": int(w) if w == int(w) else w} for name, w in weights.items()
    ]}  # fmt: skip
    if bucket_by:
        result["bucket_by"] = bucket_by
    return {"rollout": result}


def describe_serve(serve: dict[str, Any] | None) -> str:
    if not serve:
        return "its off variant"
    if "variant" in serve:
        return f"{serve['variant']!r} to everyone"
    parts = [f"{v['variant']} {v['weight']:g}%" for v in serve["rollout"]["variations"]]
    return "a rollout of " + ", ".join(parts)


@app.command("kill")
def kill(
    ctx: typer.Context,
    key: KeyArg,
    env: EnvOption,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="why (kept in the audit record)")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Kill switch: turn a flag off in one environment at once (audited as "killed").

    Example: flagstaff flags kill new-checkout --env production --reason "errors after deploy"
    """
    st = state(ctx)
    with st.client() as client:
        before = client.get(path("flags", key))
        body = {"reason": reason} if reason else None
        flag = client.send("POST", path("flags", key, "environments", env, "kill"), body)
        last = None
        if flag.get("version") == before.get("version"):  # nothing was written: already off
            found = client.get(
                "/audit", kind="flag", key=key, environment=env, order="newest", limit=1
            )["items"]
            last = found[0] if found else None

    def show(console: Console) -> None:
        version = flag.get("version")
        if flag.get("version") != before.get("version"):
            console.print(
                f"[red]killed[/] flag {esc(key)} in {esc(env)}: it now serves its off variant "
                f"(version {version})"
            )
            return
        if last is not None and last.get("action") == "killed":
            why = (last.get("context") or {}).get("reason")
            console.print(
                f"flag {esc(key)} was already killed in {esc(env)} by {esc(last.get('actor'))} "
                f"at {esc(last.get('created_at'))}" + (f" ({esc(why)})" if why else "")
                + f"; nothing changed (version {version})"
            )
        else:
            console.print(
                f"flag {esc(key)} is already off in {esc(env)}; nothing changed (version {version})"
            )

    emit(st, output, flag, show)


@app.command("archive")
def archive(
    ctx: typer.Context,
    key: KeyArg,
    force: Annotated[
        bool,
        typer.Option("--force", help="archive even though code still references the flag "
                     "(as the last flagstaff scan --report found)"),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Archive a flag: it leaves evaluation but stays in the audit log and can be restored.

    A flag that scanned code still references (flagstaff scan --report) is not archived
    without --force: that code would get the default value.

    Example: flagstaff flags archive old-banner
    """
    st = state(ctx)
    with st.client() as client:
        found = client.get(path("flags", key, "code-references"))
        if found.get("total") and not force:
            warn_code_references(st.err, key, found)
            raise CliError(
                f"flag {key} not archived: code still references it (see the warning above); "
                "remove the references and scan again, or run again with --force"
            )
        flag = client.send("DELETE", path("flags", key))

    def show(console: Console) -> None:
        if found.get("total"):
            warn_code_references(console, key, found)
        console.print(f"archived flag {esc(key)} (flagstaff flags restore {esc(key)} brings it back)")

    emit(st, output, flag, show)


def warn_code_references(console: Console, key: str, found: dict[str, Any], shown: int = 5) -> None:
    """The references of a flag, per repository with its scan time (at most ``shown`` each)."""
    repos = found.get("repositories") or []
    console.print(
        f"[bold red]WARNING:[/] {esc(key)} is referenced in code: {found['total']} place(s) in "
        f"{len(repos)} repositor{'y' if len(repos) == 1 else 'ies'}; that code gets the default "
        "value once the flag is archived", highlight=False,
    )
    for repo in repos:
        console.print(
            f"  {esc(repo['repository'])} (scanned {esc(repo['scanned_at'][:16].replace('T', ' '))} UTC):",
            highlight=False,
        )
        for ref in repo["references"][:shown]:
            console.print(f"    {esc(ref['file'])}:{ref['line']}", highlight=False)
        if repo["count"] > min(shown, len(repo["references"])):
            console.print(f"    and {repo['count'] - min(shown, len(repo['references']))} more", highlight=False)


@app.command("restore")
def restore(ctx: typer.Context, key: KeyArg, output: OutputOption = None) -> None:
    """Restore an archived flag.

    Example: flagstaff flags restore old-banner
    """
    st = state(ctx)
    with st.client() as client:
        flag = client.send("POST", path("flags", key, "restore"))
    emit(st, output, flag, lambda c: c.print(f"restored flag {esc(key)}"))


@app.command("audit")
def audit(ctx: typer.Context, key: KeyArg, output: OutputOption = None) -> None:
    """Show a flag's history: who changed what, when, as readable diffs.

    Example: flagstaff flags audit new-checkout
    """
    st = state(ctx)
    with st.client() as client:
        records = list(client.items(path("flags", key, "audit")))

    def show(console: Console) -> None:
        for record in records:
            env = f" ({esc(record['environment'])})" if record.get("environment") else ""
            why = (record.get("context") or {}).get("reason")
            console.print(
                f"[bold]{esc(record.get('created_at'))}[/]  {esc(record.get('actor'))}  "
                f"{esc(record.get('action'))}{env}" + (f"  reason: {esc(why)}" if why else ""),
                highlight=False,
            )
            for line in render(record.get("diff") or []):
                console.print(line, highlight=False)
        if not records:
            console.print("no history")

    emit(st, output, records, show)
