"""``flagstaff experiments``: set up, list, move through their status, read results.

Results show per variant the exposed users, conversions and rate (or mean), and per treatment
the absolute lift (in percentage points for conversion rates) and relative lift with their
confidence intervals, the p-value (Holm-adjusted, and labelled so, only with several
treatments) and whether the difference is significant; a line under the table says in words
what won, by how much and how sure.  A sample ratio mismatch is
printed as a red warning above the table: the randomisation is broken and the numbers below
must not be trusted (docs/statistics.md §6).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli.client import ApiClient, path
from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, emit, esc, state, styled, table

app = typer.Typer(help="Experiments: create, list, start, pause, resume, complete, results.",
                  no_args_is_help=True)
ENV_OPTION = {"environment": "--env"}

EnvOption = Annotated[
    str | None,
    typer.Option("--env", "-e", help="environment (may be left out when the flag has one experiment)"),
]


def _pct(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:+.{digits}f}%"


def _pp(value: Any) -> str:
    """A difference of two rates, in percentage points (10 % -> 12 % is +2.00 pp, not +2 %)."""
    return "-" if value is None else f"{value * 100:+.2f} pp"


def _rate(value: Any, metric_type: str) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.2f}%" if metric_type == "conversion" else f"{value:.4g}"


def _ci(interval: Any) -> str:
    if not interval:
        return "-"
    return f"[{_pct(interval['lower'])}, {_pct(interval['upper'])}]"


def _lift(value: Any, metric_type: str) -> str:
    if metric_type == "conversion" or value is None:
        return _pp(value)
    return f"{value:+.4g}"


def _interval(interval: Any, metric_type: str) -> str:
    if not interval:
        return "-"
    if metric_type == "conversion":
        return f"[{_pp(interval['lower'])}, {_pp(interval['upper'])}]"
    return f"[{interval['lower']:+.4g}, {interval['upper']:+.4g}]"


def _p(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


@app.command("list")
def list_experiments(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="draft, running, paused or completed")] = None,
    output: OutputOption = None,
) -> None:
    """List experiments with their status, metric and variations."""
    st = state(ctx)
    with st.client() as client:
        data = client.get("/experiments", status=status)

    def show(console: Console) -> None:
        rows = [(x["key"], x["environment"], x["status"], x["primary_metric"], x["metric_kind"],
                 f"{x['allocation']}%", ", ".join(f"{v['variant']} {v['weight']}%" for v in x["variations"]))
                for x in data["items"]]  # fmt: skip
        console.print(table("experiments", ["flag", "env", "status", "metric", "kind", "allocation",
                                            "variations"], rows))

    emit(st, output, data, show)


@app.command("create")
def create(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="flag key")],
    env: Annotated[str, typer.Option("--env", "-e", help="environment to experiment in")],
    metric: Annotated[str, typer.Option(help="primary metric: the event name sent with track()")],
    kind: Annotated[
        str, typer.Option(help="conversion (did the user do it?) or numeric (a value per user)")
    ] = "conversion",
    variation: Annotated[
        list[str] | None,
        typer.Option("--variation", help="VARIANT=WEIGHT (repeatable; default: every variant, "
                     "equal weights)"),
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="the baseline variant (default: the off variant)")
    ] = None,
    allocation: Annotated[
        float, typer.Option(min=0, max=100, help="percent of the default rule's users in it")
    ] = 100,
    salt: Annotated[
        str | None, typer.Option(help="bucketing salt (default: KEY.ENV.experiment)")
    ] = None,
    start: Annotated[bool, typer.Option("--start", help="start it right away")] = False,
    output: OutputOption = None,
) -> None:
    """Set up an experiment on a flag in one environment (or replace a draft).

    Users who reach the flag's default rule are split between the variations; rules and
    targets still win.  Example: flagstaff experiments create new-checkout --env production
    --metric purchase --start
    """
    if kind not in ("conversion", "numeric"):
        raise CliError(f"--kind {kind!r}: expected conversion or numeric")
    st = state(ctx)
    with st.client() as client:
        flag = client.get(path("flags", key))
        variations = _variations(flag, variation or [])
        names = [v["variant"] for v in variations]
        chosen = control or (flag.get("off_variant") if flag.get("off_variant") in names else names[0])
        if chosen not in names:
            raise CliError(f"--control {chosen!r} is not one of the variations ({', '.join(names)})")
        body = {
            "allocation": int(allocation) if allocation == int(allocation) else allocation,
            "variations": variations, "control": chosen, "primary_metric": metric,
            "metric_kind": kind, "salt": salt or f"{key}.{env}.experiment",
        }
        data = client.request(
            "PUT", path("experiments", key), params={"environment": env}, json=body,
            options=ENV_OPTION,
        ).json()
        if start:
            data = client.request(
                "POST", path("experiments", key, "start"), params={"environment": env}
            ).json()

    def show(console: Console) -> None:
        split = ", ".join(f"{v['variant']} {v['weight']:g}%" for v in data["variations"])
        console.print(
            f"experiment [bold]{esc(key)}[/] ({esc(env)}) is [bold]{esc(data['status'])}[/]: "
            f"{esc(split)} of {data['allocation']:g}% of users, control {esc(data['control'])}, "
            f"metric {esc(data['primary_metric'])}", highlight=False)
        if data["status"] == "draft":
            console.print(f"start it with: flagstaff experiments start {esc(key)} --env {esc(env)}")

    emit(st, output, data, show)


def _variations(flag: dict[str, Any], given: list[str]) -> list[dict[str, Any]]:
    variants = list(flag.get("variants") or {})
    if not given:
        # Equal weights with at most 3 decimals that sum to exactly 100 (the first gets the rest).
        share = int(100_000 / len(variants)) / 1000
        weights = [round(100 - share * (len(variants) - 1), 3)] + [share] * (len(variants) - 1)
        return [{"variant": name, "weight": _number(w)} for name, w in zip(variants, weights, strict=True)]
    result = []
    for item in given:
        name, sep, raw = item.partition("=")
        try:
            weight = float(raw)
        except ValueError:
            sep = ""
        if not sep or name not in variants:
            raise CliError(f"--variation {item!r}: expected VARIANT=WEIGHT with a variant of the "
                           f"flag ({', '.join(variants)})")
        result.append({"variant": name, "weight": _number(weight)})
    return result


def _number(value: float) -> float | int:
    return int(value) if value == int(value) else value


def _transition(action: str) -> Any:
    def command(
        ctx: typer.Context,
        key: Annotated[str, typer.Argument(help="flag key")],
        env: EnvOption = None,
        output: OutputOption = None,
    ) -> None:
        st = state(ctx)
        with st.client() as client:
            data = _with_hint(client, key, lambda: client.request(
                "POST", path("experiments", key, action), params={"environment": env},
                options=ENV_OPTION,
            ).json())
        emit(st, output, data, lambda console: console.print(
            f"experiment [bold]{esc(key)}[/] ({esc(data['environment'])}) is now "
            f"[bold]{esc(data['status'])}[/]"))

    command.__doc__ = f"{action.capitalize()} an experiment (the change is audited and streamed)."
    return command


for _action in ("start", "pause", "resume", "complete"):
    app.command(_action)(_transition(_action))


@app.command("results")
def results(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="flag key")],
    env: EnvOption = None,
    sequential: Annotated[
        bool, typer.Option("--sequential", help="always-valid p-values and intervals (mSPRT)")
    ] = False,
    run: Annotated[
        int | None, typer.Option("--run", min=1, help="the run's number (default: the latest)")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Results of one run of an experiment with 95 % intervals, p-values and the SRM check.

    Only the run's own exposures count (each start of the experiment is a run).

    Example: flagstaff experiments results new-checkout --env production --sequential
    """
    st = state(ctx)
    params = {"environment": env, "sequential": "true" if sequential else None, "run": run}
    with st.client() as client:
        data = _with_hint(client, key, lambda: client.request(
            "GET", path("experiments", key, "results"), params=params, options=ENV_OPTION
        ).json())
    emit(st, output, data, lambda console: render_results(console, data))


def _with_hint(client: ApiClient, key: str, call: Any) -> Any:
    """``call()``; a flag without any experiment gets a message saying how to set one up."""
    try:
        return call()
    except CliError as exc:
        if "has no experiment in any environment" not in exc.message:
            raise
        raise CliError(
            f"flag {key!r} has no experiment yet. Set one up with: flagstaff experiments create "
            f"{key} --env production --metric <event name> (then experiments start {key})",
            exc.code,
        ) from None


@app.command("runs")
def runs(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="flag key")],
    env: EnvOption = None,
    output: OutputOption = None,
) -> None:
    """The runs of an experiment: each start, with its salt, variations and time span.

    Example: flagstaff experiments runs new-checkout --env production
    """
    st = state(ctx)
    with st.client() as client:
        data = client.get(path("experiments", key, "runs"), environment=env)

    def show(console: Console) -> None:
        rows = [(r["number"], r["salt"], r["started_at"], r["ended_at"] or "(open)",
                 ", ".join(f"{v['variant']} {v['weight']}%" for v in r["variations"] or []))
                for r in data["items"]]  # fmt: skip
        console.print(table(f"runs of {data['key']} ({data['environment']})",
                            ["run", "salt", "started", "ended", "variations"], rows))

    emit(st, output, data, show)


def render_results(console: Console, data: dict[str, Any]) -> None:
    metric_type = data["metric_type"]
    srm = data["srm"]
    run = data.get("run")
    if run:
        span = f"{run['started_at']} to {run['ended_at'] or 'now (open)'}"
        console.print(f"run {run['number']} (salt {esc(run['salt'])}): {esc(span)}", highlight=False)
    if srm["mismatch"]:
        console.print(
            f"[bold red]WARNING: sample ratio mismatch[/] (chi-square p = {_p(srm['p_value'])} < "
            f"{srm['threshold']}): exposed users do not match the configured allocation. The "
            "randomisation is broken; do not trust these results.", highlight=False)
    elif srm["share_deviation"]:
        console.print("[yellow]note:[/] a variant's share deviates from its allocation by more "
                      f"than {srm['tolerance'] * 100:g} points (chi-square p = {_p(srm['p_value'])}).")
    title = esc(f"{data['key']} ({data['environment']}, {data['status']}): {data['primary_metric']}, "
             f"{data['test']}, {data['confidence_level'] * 100:g}% intervals")
    comparisons = {c["variant"]: c for c in data["comparisons"]}
    several = len(comparisons) > 1
    if not any(v["users"] for v in data["variants"]):
        console.print(table(title, ["variant", "users"], [(v["variant"], 0) for v in data["variants"]]))
        console.print("no data yet: nobody has been exposed to this experiment. Check that it is "
                      "running and that the SDKs send exposures.")
        return
    rows: list[tuple[Any, ...]] = []
    for variant in data["variants"]:
        name = variant["variant"]
        value = _rate(variant["value"], metric_type)
        if metric_type == "conversion":
            value = f"{value} ({variant['conversions']})"
        c = comparisons.get(name)
        if c is None:  # the control
            rows.append((f"{name} (control)", variant["users"], value, "-", "-", "-", "-"))
            continue
        rows.append((
            name, variant["users"], value,
            f"{_lift(c['absolute_lift'], metric_type)} {_interval(c['absolute_ci'], metric_type)}",
            f"{_pct(c['relative_lift'], 1)} {_ci(c['relative_ci'])}",
            f"{_p(c['p_value'])} ({_p(c['adjusted_p_value'])})" if several else _p(c["p_value"]),
            styled("yes", "green") if c["significant"] else "no",
        ))
    value_name = "rate (conv.)" if metric_type == "conversion" else "mean"
    console.print(table(title, ["variant", "users", value_name, "abs. lift [CI]", "rel. lift [CI]",
                                "p (Holm adj.)" if several else "p", "sig."], rows))
    excluded = data.get("multiple_variant_users") or 0
    console.print(f"exposed users: {data['exposed_users']}; seen in several variants and left "
                  f"out of the analysis: {excluded}", highlight=False)
    for line in verdict(data):
        console.print(line, highlight=False)
    console.print(f"SRM: chi-square p = {_p(srm['p_value'])}"
                  + ("  [bold red](MISMATCH)[/]" if srm["mismatch"] else "  (ok)"), highlight=False)


def verdict(data: dict[str, Any]) -> list[str]:
    """Each treatment's result in one sentence: better or worse, by how much, how sure."""
    metric_type = data["metric_type"]
    level = f"{data['confidence_level'] * 100:g} %"
    lines = []
    control = next((v["variant"] for v in data["variants"] if v["variant"] not in
                    {c["variant"] for c in data["comparisons"]}), "control")  # fmt: skip
    for c in data["comparisons"]:
        lift = c["absolute_lift"]
        if lift is None:
            lines.append(f"{esc(c['variant'])}: not enough data to compare with {esc(control)} yet")
            continue
        by = _lift(lift, metric_type)
        if c["significant"]:
            word = "[green]better[/]" if lift > 0 else "[red]worse[/]"
            lines.append(f"{esc(c['variant'])} is {word} than {esc(control)}: {by} "
                         f"({_pct(c['relative_lift'], 1)} relative), significant at {level}")
        else:
            lines.append(f"{esc(c['variant'])} vs {esc(control)}: {by}, not significant at {level}; "
                         "the difference may be chance (keep collecting data)")
    return lines
