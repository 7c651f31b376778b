"""Inline SVG charts for the page: no charting library, no CDN."""

from __future__ import annotations

from html import escape
from typing import Any


def _shown(value: float, field: str) -> str:
    return f"${value:,.4f}" if field == "cost_usd" else f"{value:,.0f}"


def bars(days: list[dict[str, Any]], field: str, *, width: int = 600, height: int = 120,
         color: str = "#2a7", label: str = "") -> str:
    """A bar per day; the title of each bar reads the day and the value. With nothing to
    show, the scale says so (not a made-up maximum); a day with little is still a sliver."""
    values = [max(0.0, float(d[field])) for d in days]
    top = max(values, default=0.0)
    n = max(1, len(values))
    step = width / n
    out = [f'<svg class="chart" viewBox="0 0 {width} {height + 16}" role="img" '
           f'aria-label="{escape(label)}" preserveAspectRatio="none">']
    for i, (day, value) in enumerate(zip((d["day"] for d in days), values, strict=True)):
        h = round(max(value / top * height, 1.0), 1) if value > 0 else 0.0
        out.append(f'<rect x="{i * step + 1:.1f}" y="{height - h:.1f}" '
                   f'width="{max(step - 2, 0.5):.1f}" height="{h}" fill="{color}">'
                   f'<title>{escape(day)}: {_shown(value, field)}</title></rect>')
    scale = f"max {_shown(top, field)}" if top > 0 else "no data yet"
    out.append(f'<text x="0" y="{height + 13}" font-size="11">'
               f'{escape(days[0]["day"]) if days else ""}</text>'
               f'<text x="{width}" y="{height + 13}" font-size="11" text-anchor="end">'
               f'{scale}</text></svg>')
    return "".join(out)


def funnel(counts: dict[str, int], *, width: int = 600) -> str:
    """Leads → customers → active → churned, one horizontal bar each."""
    order = [("lead", "leads"), ("customer", "customers"), ("active_user", "active"),
             ("churned", "churned")]
    top = max([counts.get(k, 0) for k, _ in order] + [1])
    row = 26
    out = [f'<svg class="chart" viewBox="0 0 {width} {row * len(order)}" role="img" '
           'aria-label="lifecycle funnel">']
    for i, (stage, name) in enumerate(order):
        n = counts.get(stage, 0)
        w = max(2.0, n / top * (width - 160))
        out.append(f'<text x="0" y="{i * row + 17}" font-size="13">{name}</text>'
                   f'<rect x="80" y="{i * row + 4}" width="{w:.1f}" height="{row - 8}" '
                   f'fill="#37a"><title>{name}: {n:,}</title></rect>'
                   f'<text x="{84 + w:.1f}" y="{i * row + 17}" font-size="13">{n:,}</text>')
    out.append("</svg>")
    return "".join(out)
