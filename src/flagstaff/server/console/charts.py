"""Geometry for the console's server-rendered SVG charts (no chart library, no script).

:func:`exposure_chart` lays out exposures per variant over time as lines; :func:`ci_chart`
lays out each treatment's relative lift with its confidence interval around zero.  The
templates draw the returned shapes; everything is plain numbers and strings.
"""

from __future__ import annotations

from typing import Any

# Colour-blind-safe palette (Okabe-Ito), dark enough for text on white.
PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"]
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 720, 260, 56, 16, 16, 40


def exposure_chart(report: dict[str, Any]) -> dict[str, Any]:
    """Lines of evaluations per bucket, one per variant."""
    series = report.get("series") or []
    starts = sorted({p["start"] for p in series})
    variants = [v["variant"] for v in report.get("variants") or []]
    peak = max([p["evaluations"] for p in series] or [0]) or 1
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def x(i: int) -> float:
        return PAD_L + (inner_w * i / (len(starts) - 1) if len(starts) > 1 else inner_w / 2)

    def y(value: float) -> float:
        return PAD_T + inner_h * (1 - value / peak)

    lines = []
    for n, variant in enumerate(variants):
        by_start = {p["start"]: p["evaluations"] for p in series if p["variant"] == variant}
        points = [(x(i), y(by_start.get(s, 0))) for i, s in enumerate(starts)]
        lines.append({
            "variant": variant, "color": PALETTE[n % len(PALETTE)],
            "points": " ".join(f"{px:.1f},{py:.1f}" for px, py in points),
            "dots": points,
        })
    ticks = [{"y": y(peak * f), "label": f"{round(peak * f):,}"} for f in (0, 0.5, 1)]
    labels = [{"x": x(i), "label": s[:10] if report.get("bucket") == "day" else s[5:16].replace("T", " ")}
              for i, s in enumerate(starts)]
    step = max(1, len(labels) // 8)
    return {"width": WIDTH, "height": HEIGHT, "lines": lines, "ticks": ticks,
            "labels": labels[::step], "left": PAD_L, "right": WIDTH - PAD_R,
            "bottom": HEIGHT - PAD_B, "empty": not series}


def ci_chart(comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """Relative lift (percent) with its interval per treatment, on a shared axis around 0."""
    rows = [c for c in comparisons if c.get("relative_ci") and c.get("relative_lift") is not None]
    widest = max([abs(float(c["relative_ci"][k])) for c in rows for k in ("lower", "upper")] or [0.1])
    bound = max(widest, 0.01) * 1.15
    row_h, top = 36, 20
    height = top + row_h * max(1, len(rows)) + 34
    inner_w = WIDTH - 160 - PAD_R

    def x(value: float) -> float:
        return 160 + inner_w * (value + bound) / (2 * bound)

    bars = []
    for i, c in enumerate(rows):
        lo, hi = c["relative_ci"]["lower"], c["relative_ci"]["upper"]
        color = "#116329" if lo > 0 else "#b3261e" if hi < 0 else "#57606a"
        bars.append({"variant": c["variant"], "y": top + row_h * i + row_h / 2, "x1": x(lo),
                     "x2": x(hi), "mid": x(c["relative_lift"]), "color": color,
                     "text": f"{c['relative_lift'] * 100:+.1f} % [{lo * 100:+.1f}, {hi * 100:+.1f}]"})
    ticks = [{"x": x(v), "label": f"{v * 100:+.0f} %"} for v in (-bound / 1.15, 0.0, bound / 1.15)]
    return {"width": WIDTH, "height": height, "bars": bars, "zero": x(0.0), "top": top,
            "bottom": height - 30, "ticks": ticks}
