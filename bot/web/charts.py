"""The dashboard's charts: bars drawn in inline SVG (no charting library, no CDN), every
word and number beside them as HTML text.

Labels are not SVG text: a chart's SVG is scaled to the page's width, and its text with
it (issue #24: on a 390 px phone the labels of a 600-unit-wide chart came out at ~6 px).
As HTML they keep the page's font size at any width.
"""

from __future__ import annotations

from html import escape
from typing import Any

from bot.web.i18n import ENGLISH, Texts


def _shown(value: float, field: str) -> str:
    return f"${value:,.4f}" if field == "cost_usd" else f"{value:,.0f}"


def bars(days: list[dict[str, Any]], field: str, *, width: int = 600, height: int = 120,
         color: str = "#2a7", label: str = "", t: Texts = ENGLISH) -> str:
    """A bar per day; the title of each bar reads the day and the value; under the bars
    the first day and the scale. With nothing to show, the scale says so (not a made-up
    maximum); a day with little is still a sliver."""
    values = [max(0.0, float(d[field])) for d in days]
    top = max(values, default=0.0)
    n = max(1, len(values))
    step = width / n
    out = [f'<figure class="chart"><svg viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(label)}" preserveAspectRatio="none">']
    for i, (day, value) in enumerate(zip((d["day"] for d in days), values, strict=True)):
        h = round(max(value / top * height, 1.0), 1) if value > 0 else 0.0
        out.append(f'<rect x="{i * step + 1:.1f}" y="{height - h:.1f}" '
                   f'width="{max(step - 2, 0.5):.1f}" height="{h}" fill="{color}">'
                   f'<title>{escape(day)}: {_shown(value, field)}</title></rect>')
    scale = t("chart.max", value=_shown(top, field)) if top > 0 else t("chart.no_data")
    first = escape(days[0]["day"]) if days else ""
    out.append(f'</svg><figcaption class="axis"><span>{first}</span>'
               f'<span class="scale">{escape(scale)}</span></figcaption></figure>')
    return "".join(out)


FUNNEL = ("lead", "customer", "active_user", "churned")


def funnel(counts: dict[str, int], *, t: Texts = ENGLISH) -> str:
    """Leads → customers → active → churned: a row each, its name, a bar, its count."""
    top = max([counts.get(k, 0) for k in FUNNEL] + [1])
    out = [f'<div class="funnel" role="list" aria-label="{escape(t("chart.funnel"))}">']
    for stage in FUNNEL:
        n = counts.get(stage, 0)
        name = escape(t(f"funnel.{stage}"))
        w = max(0.5, n / top * 100)
        out.append(f'<div class="funnel-row" role="listitem" data-stage="{stage}">'
                   f'<span class="name">{name}</span>'
                   '<svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">'
                   f'<rect x="0" y="0" width="{w:.1f}" height="10" fill="#37a">'
                   f'<title>{name}: {n:,}</title></rect></svg>'
                   f'<span class="n">{n:,}</span></div>')
    out.append("</div>")
    return "".join(out)
