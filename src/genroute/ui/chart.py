"""A stacked bar chart of spend over time, drawn on the server as SVG geometry.

`stacked_bars` turns periods (days or hours) and series (a key, team, end user or model
each: spend per period) into rectangles, axis ticks and a legend; the template writes
them out as SVG, escaped like every other value. No script draws it, so it needs nothing
from the browser but SVG, and the CSP allows no inline style: colours are attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["PALETTE", "Bar", "Chart", "Tick", "nice_ceiling", "stacked_bars"]

PALETTE = (
    "#2563eb",
    "#f59e0b",
    "#10b981",
    "#ef4444",
    "#8b5cf6",
    "#06b6d4",
    "#ec4899",
    "#84cc16",
    "#64748b",
)
WIDTH, HEIGHT = 960, 320
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 56
MAX_LABELS = 12
TICKS = 4  # dollar ticks above $0


@dataclass(frozen=True, slots=True)
class Bar:
    """One series' part of one period's bar."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str  # the tooltip: series, period and amount


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis label at a position."""

    position: float
    label: str


@dataclass(slots=True)
class Chart:
    """What the template draws."""

    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_width: float = WIDTH - LEFT - RIGHT
    plot_height: float = HEIGHT - TOP - BOTTOM
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour, series)
    total: float = 0.0

    @property
    def bottom(self) -> float:
        return self.top + self.plot_height


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above `value` (> 0)."""
    if value <= 0:
        return 1.0
    power: float = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10 * power


def _dollars(value: float) -> str:
    """`$1,250`, `$0.10`, `$0.125`, `$0.0025`: as many decimals as the value needs, at
    least two below $10."""
    if value >= 10:
        return f"${value:,.0f}"
    text = f"{value:.6f}".rstrip("0")
    decimals = len(text.partition(".")[2])
    return f"${value:,.{max(decimals, 2)}f}"


def stacked_bars(periods: list[str], series: dict[str, dict[str, float]]) -> Chart:
    """Bars per period, one segment per series (in the order given), with y ticks in
    dollars, at most MAX_LABELS period labels and a legend."""
    chart = Chart()
    totals = [sum(values.get(p, 0.0) for values in series.values()) for p in periods]
    chart.total = sum(totals)
    step = nice_ceiling(max(totals, default=0.0) / TICKS)  # ticks at round amounts
    top = step * TICKS
    for i in range(TICKS + 1):
        position = chart.bottom - chart.plot_height * i / TICKS
        chart.y_ticks.append(Tick(position, _dollars(step * i)))
    if not periods:
        return chart
    slot = chart.plot_width / len(periods)
    width = max(slot * 0.7, 1.0)
    every = max(1, math.ceil(len(periods) / MAX_LABELS))
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    chart.legend = list((colours[name], name) for name in series)
    for index, period in enumerate(periods):
        x = chart.left + slot * index + (slot - width) / 2
        if index % every == 0:
            chart.x_ticks.append(Tick(x + width / 2, period))
        y = chart.bottom
        for name, values in series.items():
            amount = values.get(period, 0.0)
            if amount <= 0:
                continue
            height = chart.plot_height * amount / top
            y -= height
            title = f"{name}, {period}: ${amount:,.6f}"
            chart.bars.append(Bar(x, y, width, height, colours[name], title))
    return chart
