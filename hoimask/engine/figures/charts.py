"""Charts drawn with Pillow: line charts (loss curves, log-y) and grouped bar charts.

No plotting library is needed: axes, ticks, grid lines, labels and the
legend are drawn here, in the shared colour scheme (:mod:`hoimask.engine.figures.scheme`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from hoimask._checks import DTypeError, ShapeError, ValueRangeError, check_int
from hoimask.engine.figures._text import draw_text, line_height, text_size, vertical_text, wrap
from hoimask.engine.figures.grid import legend_strip
from hoimask.engine.figures.scheme import (
    GRID_COLOUR,
    INK_COLOUR,
    PAPER_COLOUR,
    SERIES_COLOURS,
    Colour,
    check_colour,
)

__all__ = ["line_chart", "bar_chart"]

_PAD = 6


def _format(value: float) -> str:
    """A tick or bar label: short, no trailing zeros (``0.001``, ``2.5``, ``12345``, ``1e5``, ``1.2e-4``)."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        mantissa, exponent = f"{value:.1e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _linear_ticks(lo: float, hi: float, target: int = 5) -> tuple[float, float, list[float]]:
    """Round limits around ``[lo, hi]`` and about ``target`` ticks at 1, 2, 2.5 or 5 times a power of ten."""
    if not hi > lo:
        lo, hi = lo - 0.5 if lo == hi else lo, hi + 0.5
    raw = (hi - lo) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    ticks = [round(k * step, 12) for k in range(first, last + 1)]
    return ticks[0], ticks[-1], ticks


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Limits a little outside ``[lo, hi]`` (both > 0) and ticks at 1, 2, 5 times powers of ten inside them."""
    if not hi > lo:
        lo, hi = lo / 2, hi * 2
    lo, hi = lo / 1.15, hi * 1.15
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)

    def inside(mantissas: Sequence[int]) -> list[float]:
        return [m * 10.0**k for k in decades for m in mantissas if lo <= m * 10.0**k <= hi]

    ticks = inside((1, 2, 5))
    if len(ticks) > 8:
        ticks = inside((1,))
        if len(ticks) > 8:  # many decades: every other one
            ticks = ticks[::2]
    if len(ticks) < 3:  # less than a decade: every integer mantissa
        ticks = inside(range(1, 10))
    if len(ticks) < 2:
        ticks = [lo, hi]
    return lo, hi, ticks


class _Axes:
    """A canvas with a plot area, grid lines at the y ticks, tick labels, axis labels and a title."""

    def __init__(self, size: tuple[int, int], *, title: str | None, x_label: str | None, y_label: str | None,
                 x_limits: tuple[float, float], x_ticks: Sequence[tuple[float, str]],
                 y_limits: tuple[float, float], y_ticks: Sequence[float], log_y: bool, font_size: int) -> None:
        W, H = size
        self.log_y, fs = log_y, font_size
        self.img = Image.new("RGB", (W, H), PAPER_COLOUR)
        self.draw = ImageDraw.Draw(self.img)
        labels = [_format(t) for t in y_ticks]
        tick_w = max(text_size(t, fs)[0] for t in labels)
        x_tick_h = max([text_size(t, fs)[1] for _, t in x_ticks] or [0])
        title_text = wrap(title, fs + 2, W - 2 * _PAD) if title else ""
        top = _PAD + (text_size(title_text, fs + 2)[1] + _PAD if title_text else 0) + _PAD
        left = _PAD + (line_height(fs) + _PAD if y_label else 0) + tick_w + 6
        bottom = H - (_PAD + (line_height(fs) + _PAD if x_label else 0) + x_tick_h + 6)
        right = W - 3 * _PAD
        if right - left < 20 or bottom - top < 20:
            raise ValueRangeError(f"chart: argument 'size' {size} leaves no room for the plot area")
        self.box = (left, top, right, bottom)
        self.x_limits, self.y_limits = x_limits, y_limits
        d = self.draw
        if title_text:
            draw_text(d, ((W - text_size(title_text, fs + 2)[0]) // 2, _PAD), title_text, fs + 2, INK_COLOUR,
                      align="center")
        for t, label in zip(y_ticks, labels):
            y = self.y(t)
            d.line([(left, y), (right, y)], fill=GRID_COLOUR, width=1)
            tw, th = text_size(label, fs)
            draw_text(d, (left - 6 - tw, y - th // 2), label, fs, INK_COLOUR)
        for t, label in x_ticks:
            x = self.x(t)
            d.line([(x, bottom), (x, bottom + 4)], fill=INK_COLOUR, width=1)
            tw = text_size(label, fs)[0]
            draw_text(d, (x - tw // 2, bottom + 6), label, fs, INK_COLOUR, align="center")
        d.rectangle([left, top, right, bottom], outline=INK_COLOUR, width=1)
        if x_label:
            tw = text_size(x_label, fs)[0]
            draw_text(d, ((left + right - tw) // 2, H - _PAD - line_height(fs)), x_label, fs, INK_COLOUR)
        if y_label:
            label = vertical_text(y_label, fs, INK_COLOUR, PAPER_COLOUR)
            self.img.paste(label, (_PAD, max(top, (top + bottom - label.height) // 2)))

    def x(self, value: float) -> float:
        lo, hi = self.x_limits
        left, _, right, _ = self.box
        return left + (value - lo) / (hi - lo) * (right - left)

    def y(self, value: float) -> float:
        lo, hi = self.y_limits
        if self.log_y:
            value, lo, hi = math.log10(value), math.log10(lo), math.log10(hi)
        _, top, _, bottom = self.box
        return bottom - (value - lo) / (hi - lo) * (bottom - top)

    def picture(self) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.img).copy())


def _as_vector(values: object, *, name: str, fn: str) -> np.ndarray:
    try:
        array = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DTypeError(f"{fn}(): argument '{name}' expected a 1-D sequence of numbers: {err}") from None
    if array.ndim != 1:
        raise ShapeError(f"{fn}(): argument '{name}' expected a 1-D sequence, got shape {array.shape}")
    return array


def _colours(names: Sequence[str], colours: Mapping[str, Colour] | None, fn: str) -> dict[str, tuple[Colour, bool]]:
    """Colour and dashing of each series: given ones, then :data:`SERIES_COLOURS` in turn (dashed on a repeat)."""
    out, k = {}, 0
    for name in names:
        if colours is not None and name in colours:
            out[name] = (check_colour(colours[name], name=f"colours[{name!r}]", fn=fn), False)
        else:
            out[name] = (SERIES_COLOURS[k % len(SERIES_COLOURS)], k >= len(SERIES_COLOURS))
            k += 1
    return out


def _polyline(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour: Colour, width: int,
              dashed: bool) -> None:
    if len(points) == 1:
        (x, y), r = points[0], width + 1
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif not dashed:
        draw.line(points, fill=colour, width=width, joint="curve")
    else:  # 6 px on, 4 px off, along the whole polyline
        phase = 0.0
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            length = math.hypot(x1 - x0, y1 - y0)
            s = 0.0
            while s < length:
                on = phase < 6
                run = min((6 - phase) if on else (10 - phase), length - s)
                if on:
                    a, b = s / length, (s + run) / length
                    draw.line([(x0 + a * (x1 - x0), y0 + a * (y1 - y0)), (x0 + b * (x1 - x0), y0 + b * (y1 - y0))],
                              fill=colour, width=width)
                s += run
                phase = (phase + run) % 10


def line_chart(
    series: Mapping[str, tuple[Sequence[float] | torch.Tensor, Sequence[float] | torch.Tensor]],
    *,
    title: str | None = None,
    x_label: str | None = "step",
    y_label: str | None = None,
    log_y: bool = False,
    colours: Mapping[str, Colour] | None = None,
    emphasis: Sequence[str] = (),
    legend: bool = True,
    size: tuple[int, int] = (640, 360),
    font_size: int = 13,
) -> torch.Tensor:
    """A line chart: one line per series, axes with ticks and labels, a legend below.

    Points whose ``x`` or ``y`` is not finite (and, on a log axis, whose ``y``
    is not positive) are left out; the line breaks there.

    Args:
        series: name -> ``(x, y)``, two 1-D sequences of equal length.
        title: above the plot.
        x_label: label of the x axis.
        y_label: label of the y axis.
        log_y: logarithmic y axis (ticks at 1, 2, 5 x 10^k).
        colours: name -> RGB for some series; the others take
            :data:`SERIES_COLOURS` in turn (dashed once those repeat).
        emphasis: names of series drawn thicker (e.g. the total loss).
        legend: draw the legend strip below the chart.
        size: ``(width, height)`` of the chart without its legend, pixels.
        font_size: text height in pixels.

    Returns:
        uint8 picture.

    Shape:
        ``-> (size[1] + legend height, size[0], 3)``.

    Raises:
        ValueRangeError: no series.
        ShapeError: ``x`` and ``y`` of a series differ in length, or are not 1-D.

    Example:
        >>> fig = line_chart({"loss": ([1, 2, 3], [1.0, 0.5, 0.2])}, log_y=True, y_label="loss")
        >>> fig.shape[1:], fig.dtype
        (torch.Size([640, 3]), torch.uint8)
    """
    fn = "line_chart"
    if not isinstance(series, Mapping) or not series:
        raise ValueRangeError(f"{fn}(): argument 'series' expected a non-empty mapping name -> (x, y)")
    font_size = check_int(font_size, name="font_size", low=4, fn=fn)
    data = {}
    for name, pair in series.items():
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise DTypeError(f"{fn}(): argument 'series' entry {name!r} expected an (x, y) pair")
        x = _as_vector(pair[0], name=f"series[{name!r}] x", fn=fn)
        y = _as_vector(pair[1], name=f"series[{name!r}] y", fn=fn)
        if x.shape != y.shape:
            raise ShapeError(f"{fn}(): argument 'series' entry {name!r}: x has {x.size} values, y has {y.size}")
        ok = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)
        data[str(name)] = (x, y, ok)
    style = _colours(list(data), colours, fn)
    xs = np.concatenate([x[ok] for x, _, ok in data.values()])
    ys = np.concatenate([y[ok] for _, y, ok in data.values()])
    empty = xs.size == 0
    x_lo, x_hi, x_ticks = _linear_ticks(*(0.0, 1.0) if empty else (float(xs.min()), float(xs.max())))
    if log_y:
        y_lo, y_hi, y_ticks = _log_ticks(*(1.0, 10.0) if empty else (float(ys.min()), float(ys.max())))
    else:
        y_lo, y_hi, y_ticks = _linear_ticks(*(0.0, 1.0) if empty else (float(ys.min()), float(ys.max())))
    axes = _Axes(tuple(size), title=title, x_label=x_label, y_label=y_label, x_limits=(x_lo, x_hi),
                 x_ticks=[(t, _format(t)) for t in x_ticks], y_limits=(y_lo, y_hi), y_ticks=y_ticks, log_y=log_y,
                 font_size=font_size)
    if empty:
        left, top, right, bottom = axes.box
        tw, th = text_size("nothing to plot", font_size)
        draw_text(axes.draw, ((left + right - tw) // 2, (top + bottom - th) // 2), "nothing to plot", font_size,
                  INK_COLOUR)
    bold = {str(n) for n in emphasis}
    for name, (x, y, ok) in sorted(data.items(), key=lambda item: item[0] in bold):  # emphasised lines on top
        colour, dashed = style[name]
        run: list[tuple[float, float]] = []
        for xi, yi, oki in zip(x.tolist(), y.tolist(), ok.tolist()):
            if oki:
                run.append((axes.x(xi), axes.y(yi)))
            elif run:
                _polyline(axes.draw, run, colour, 3 if name in bold else 2, dashed)
                run = []
        if run:
            _polyline(axes.draw, run, colour, 3 if name in bold else 2, dashed)
    chart = axes.picture()
    if not legend:
        return chart
    entries = [(name, style[name][0], "dashed" if style[name][1] else "line") for name in data]
    return torch.cat([chart, legend_strip(entries, width=int(chart.shape[1]), font_size=font_size)], dim=0)


def bar_chart(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float] | torch.Tensor],
    *,
    title: str | None = None,
    x_label: str | None = None,
    y_label: str | None = None,
    colours: Mapping[str, Colour] | None = None,
    value_format: str = "{:.1f}",
    legend: bool = True,
    size: tuple[int, int] = (640, 360),
    font_size: int = 13,
) -> torch.Tensor:
    """A grouped bar chart: one group per category, one bar per series, values printed above the bars.

    A value that is not finite draws no bar and ``n/a`` in its place.

    Args:
        categories: ``K`` group labels under the x axis (``"\\n"`` for a second line).
        series: name -> ``K`` values.
        title: above the plot.
        x_label: label of the x axis.
        y_label: label of the y axis.
        colours: name -> RGB for some series; the others take :data:`SERIES_COLOURS`.
        value_format: ``str.format`` pattern of the numbers above the bars.
        legend: draw the legend strip below the chart.
        size: ``(width, height)`` of the chart without its legend, pixels.
        font_size: text height in pixels.

    Returns:
        uint8 picture.

    Shape:
        ``-> (size[1] + legend height, size[0], 3)``.

    Raises:
        ValueRangeError: no categories or no series.
        ShapeError: a series with a number of values other than ``K``.

    Example:
        >>> fig = bar_chart(["0-25 %", "25-50 %"], {"model": [20.0, 30.0], "mean_pose": [40.0, 45.0]},
        ...                 y_label="error (mm)")
        >>> fig.shape[1:]
        torch.Size([640, 3])
    """
    fn = "bar_chart"
    if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence) or not categories:
        raise ValueRangeError(f"{fn}(): argument 'categories' expected a non-empty sequence of labels")
    if not isinstance(series, Mapping) or not series:
        raise ValueRangeError(f"{fn}(): argument 'series' expected a non-empty mapping name -> values")
    font_size = check_int(font_size, name="font_size", low=4, fn=fn)
    K = len(categories)
    data = {}
    for name, values in series.items():
        v = _as_vector(values, name=f"series[{name!r}]", fn=fn)
        if v.size != K:
            raise ShapeError(f"{fn}(): argument 'series' entry {name!r} expected {K} values (one per category), "
                             f"got {v.size}")
        data[str(name)] = v
    style = _colours(list(data), colours, fn)
    finite = np.concatenate([v[np.isfinite(v)] for v in data.values()])
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(0.0, float(finite.max())) if finite.size else 1.0
    y_lo, y_hi, y_ticks = _linear_ticks(lo, hi * 1.08 if hi > 0 else hi)
    axes = _Axes(tuple(size), title=title, x_label=x_label, y_label=y_label, x_limits=(0.0, float(K)),
                 x_ticks=[(k + 0.5, str(c)) for k, c in enumerate(categories)], y_limits=(y_lo, y_hi),
                 y_ticks=y_ticks, log_y=False, font_size=font_size)
    d, small = axes.draw, max(4, font_size - 2)
    S = len(data)
    group = axes.x(1.0) - axes.x(0.0)
    bar = 0.8 * group / S
    base = axes.y(0.0)
    for k in range(K):
        for s, (name, values) in enumerate(data.items()):
            x0 = axes.x(k) + 0.1 * group + s * bar
            value = float(values[k])
            label = value_format.format(value) if math.isfinite(value) else "n/a"
            if math.isfinite(value):
                top = axes.y(value)
                d.rectangle([x0 + 1, min(top, base), x0 + bar - 1, max(top, base)], fill=style[name][0],
                            outline=INK_COLOUR)
            else:
                top = base
            tw, th = text_size(label, small)
            if tw <= bar + 6:
                y = top - th - 2 if value >= 0 or not math.isfinite(value) else top + 2
                draw_text(d, (x0 + (bar - tw) / 2, y), label, small, INK_COLOUR)
    d.line([(axes.box[0], base), (axes.box[2], base)], fill=INK_COLOUR, width=1)
    chart = axes.picture()
    if not legend:
        return chart
    entries = [(name, style[name][0], "patch") for name in data]
    return torch.cat([chart, legend_strip(entries, width=int(chart.shape[1]), font_size=font_size)], dim=0)
