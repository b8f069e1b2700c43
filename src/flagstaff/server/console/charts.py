"""Geometry for the console's server-rendered SVG charts (no chart library, no script).

:func:`exposure_chart` lays out exposures per variant over time as lines (a marker shape and
line style per variant, so equal series stay visible); :func:`ci_chart`
lays out each treatment's relative lift with its confidence interval around zero.  The
templates draw the returned shapes; everything is plain numbers and strings.
"""

from __future__ import annotations

from typing import Any

# Colour-blind-safe palette (Okabe-Ito), dark enough for text on white.
PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"]
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 720, 260, 56, 16, 16, 40


# Each variant also gets its own marker shape, fill and line style, so series that coincide
# (equal exposures under an even split) stay apart without colour: later series are drawn
# thinner over earlier ones, and markers at one bucket sit side by side (dodged).
SHAPES = ["circle", "square", "triangle", "diamond", "triangle-down"]
DASHES = ["", "7 4", "2 3", "9 3 2 3", "4 4"]
DODGE = 14.0  # px between the centres of neighbouring series' markers at one bucket (no overlap)


def marker_path(shape: str, x: float, y: float, r: float) -> str:
    """An SVG path for a marker of radius ``r`` centred on (x, y)."""
    if shape == "circle":
        return f"M{x - r:.1f},{y:.1f}a{r:.1f},{r:.1f} 0 1,0 {2 * r:.1f},0a{r:.1f},{r:.1f} 0 1,0 {-2 * r:.1f},0Z"
    if shape == "square":
        q = r * 0.85
        corners = [(x - q, y - q), (x + q, y - q), (x + q, y + q), (x - q, y + q)]
    elif shape == "triangle":
        corners = [(x, y - r * 1.1), (x + r, y + r * 0.75), (x - r, y + r * 0.75)]
    elif shape == "triangle-down":
        corners = [(x, y + r * 1.1), (x + r, y - r * 0.75), (x - r, y - r * 0.75)]
    else:  # diamond
        corners = [(x, y - r * 1.15), (x + r * 1.15, y), (x, y + r * 1.15), (x - r * 1.15, y)]
    return "M" + "L".join(f"{cx:.1f},{cy:.1f}" for cx, cy in corners) + "Z"


def exposure_chart(report: dict[str, Any]) -> dict[str, Any]:
    """Lines of evaluations per bucket, one per variant, each with its own marker."""
    series = report.get("series") or []
    starts = sorted({p["start"] for p in series})
    variants = [v["variant"] for v in report.get("variants") or []]
    peak = max([p["evaluations"] for p in series] or [0]) or 1
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    count = len(variants)

    def x(i: int) -> float:
        return PAD_L + (inner_w * i / (len(starts) - 1) if len(starts) > 1 else inner_w / 2)

    def y(value: float) -> float:
        return PAD_T + inner_h * (1 - value / peak)

    lines = []
    for n, variant in enumerate(variants):
        by_start = {p["start"]: p["evaluations"] for p in series if p["variant"] == variant}
        points = [(x(i), y(by_start.get(s, 0))) for i, s in enumerate(starts)]
        shape, dodge = SHAPES[n % len(SHAPES)], (n - (count - 1) / 2) * DODGE
        radius = max(3.5, 6.0 - n)
        lines.append({
            "variant": variant, "color": PALETTE[n % len(PALETTE)], "shape": shape,
            "width": max(1.5, 5.0 - 1.5 * n), "dash": DASHES[n % len(DASHES)],
            "hollow": n % 2 == 1,
            "points": " ".join(f"{px:.1f},{py:.1f}" for px, py in points),
            "markers": [
                {"d": marker_path(shape, px + dodge, py, radius),
                 "title": f"{variant}, {s[:16].replace('T', ' ')}: {by_start.get(s, 0):,}"}
                for (px, py), s in zip(points, starts, strict=True)
            ],
            "legend": marker_path(shape, 14, 8, 5),
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
    # The numbers go in a column right of the plot, never over it (where the zero line runs).
    label_w = 200
    inner_w = WIDTH - 160 - label_w

    def x(value: float) -> float:
        return 160 + inner_w * (value + bound) / (2 * bound)

    bars = []
    for i, c in enumerate(rows):
        lo, hi = c["relative_ci"]["lower"], c["relative_ci"]["upper"]
        color = "#116329" if lo > 0 else "#b3261e" if hi < 0 else "#57606a"
        name = str(c["variant"])
        bars.append({"variant": name if len(name) <= 18 else name[:17] + "…", "full": name,
                     "y": top + row_h * i + row_h / 2, "x1": x(lo),
                     "x2": x(hi), "mid": x(c["relative_lift"]), "color": color,
                     "text": f"{c['relative_lift'] * 100:+.1f} % [{lo * 100:+.1f}, {hi * 100:+.1f}]"})
    ticks = [{"x": x(v), "label": f"{v * 100:+.0f} %" if v else "0 %"}
             for v in (-bound / 1.15, 0.0, bound / 1.15)]
    return {"width": WIDTH, "height": height, "bars": bars, "zero": x(0.0), "top": top,
            "bottom": height - 30, "ticks": ticks, "label_x": 160 + inner_w + 14}
