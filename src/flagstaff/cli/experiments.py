"""``flagstaff experiments``: list experiments, move them through their status, read results.

Results show per variant the exposed users, conversions and rate (or mean), and per treatment
the absolute and relative lift with their confidence intervals, p-values (Holm-adjusted with
several treatments) and whether the difference is significant.  A sample ratio mismatch is
printed as a red warning above the table: the randomisation is broken and the numbers below
must not be trusted (docs/statistics.md §6).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli.client import path
from flagstaff.cli.output import OutputOption, emit, state, table

app = typer.Typer(help="Experiments: list, start, pause, resume, complete, results.",
                  no_args_is_help=True)

EnvOption = Annotated[
    str | None,
    typer.Option("--env", "-e", help="environment (may be left out when the flag has one experiment)"),
]


def _pct(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:+.{digits}f}%"


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
        return _pct(value)
    return f"{value:+.4g}"


def _interval(interval: Any, metric_type: str) -> str:
    if metric_type == "conversion" or not interval:
        return _ci(interval)
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


def _transition(action: str) -> Any:
    def command(
        ctx: typer.Context,
        key: Annotated[str, typer.Argument(help="flag key")],
        env: EnvOption = None,
        output: OutputOption = None,
    ) -> None:
        st = state(ctx)
        with st.client() as client:
            data = client.request(
                "POST", path("experiments", key, action), params={"environment": env}
            ).json()
        emit(st, output, data, lambda console: console.print(
            f"experiment [bold]{key}[/] ({data['environment']}) is now [bold]{data['status']}[/]"))

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
    output: OutputOption = None,
) -> None:
    """Results of an experiment with 95 % intervals, p-values and the SRM check.

    Example: flagstaff experiments results new-checkout --env production --sequential
    """
    st = state(ctx)
    params = {"environment": env, "sequential": "true" if sequential else None}
    with st.client() as client:
        data = client.get(path("experiments", key, "results"), **params)
    emit(st, output, data, lambda console: render_results(console, data))


def render_results(console: Console, data: dict[str, Any]) -> None:
    metric_type = data["metric_type"]
    srm = data["srm"]
    if srm["mismatch"]:
        console.print(
            f"[bold red]WARNING: sample ratio mismatch[/] (chi-square p = {_p(srm['p_value'])} < "
            f"{srm['threshold']}): exposed users do not match the configured allocation. The "
            "randomisation is broken; do not trust these results.", highlight=False)
    elif srm["share_deviation"]:
        console.print("[yellow]note:[/] a variant's share deviates from its allocation by more "
                      f"than {srm['tolerance'] * 100:g} points (chi-square p = {_p(srm['p_value'])}).")
    title = (f"{data['key']} ({data['environment']}, {data['status']}): {data['primary_metric']}, "
             f"{data['test']}, {data['confidence_level'] * 100:g}% intervals")
    comparisons = {c["variant"]: c for c in data["comparisons"]}
    rows = []
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
            f"{_p(c['p_value'])} ({_p(c['adjusted_p_value'])})",
            "[green]yes[/]" if c["significant"] else "no",
        ))
    value_name = "rate (conv.)" if metric_type == "conversion" else "mean"
    console.print(table(title, ["variant", "users", value_name, "abs. lift [CI]", "rel. lift [CI]",
                                "p (adj.)", "sig."], rows))
    console.print(f"SRM: chi-square p = {_p(srm['p_value'])}"
                  + ("  [bold red](MISMATCH)[/]" if srm["mismatch"] else "  (ok)"), highlight=False)
