"""Labelled figures: a grid of pictures with row titles, column titles, a title and a legend; PNG output."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from hoimask._checks import DTypeError, ShapeError, ValueRangeError, check_int
from hoimask.engine.figures._text import draw_text, line_height, text_size, wrap
from hoimask.engine.figures.overlays import check_picture
from hoimask.engine.figures.scheme import INK_COLOUR, PAPER_COLOUR, Colour, check_colour

__all__ = ["LEGEND_KINDS", "LegendEntry", "legend_strip", "label_grid", "save_figure"]

#: How a legend entry's swatch is drawn: a filled square, a line (a chart's series), a dashed line, a bone
#: with its joint (a hand skeleton), a hollow box (an object box).
LEGEND_KINDS: tuple[str, ...] = ("patch", "line", "dashed", "skeleton", "box")
#: ``(label, colour)`` (a filled patch) or ``(label, colour, kind)`` with ``kind`` in :data:`LEGEND_KINDS`.
LegendEntry = tuple[str, Colour] | tuple[str, Colour, str]


def _check_entries(entries: Sequence[LegendEntry], fn: str) -> list[tuple[str, Colour, str]]:
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise DTypeError(f"{fn}(): argument 'legend' expected a sequence of (label, colour[, kind]) tuples, "
                         f"got {type(entries).__name__}")
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) not in (2, 3):
            raise DTypeError(f"{fn}(): argument 'legend' entry {i} expected (label, colour) or "
                             f"(label, colour, kind), got {entry!r}")
        kind = entry[2] if len(entry) == 3 else "patch"
        if kind not in LEGEND_KINDS:
            raise ValueRangeError(f"{fn}(): argument 'legend' entry {i}: kind expected one of {LEGEND_KINDS}, "
                                  f"got {kind!r}")
        out.append((str(entry[0]), check_colour(entry[1], name=f"legend[{i}] colour", fn=fn), kind))
    return out


def _swatch(draw: ImageDraw.ImageDraw, x: int, y: int, size: int, colour: Colour, kind: str) -> None:
    dark = tuple(int(c * 0.25) for c in colour)
    if kind == "patch":
        draw.rectangle([x, y, x + size - 1, y + size - 1], fill=colour, outline=INK_COLOUR)
    elif kind == "box":
        draw.rectangle([x, y, x + size - 1, y + size - 1], outline=dark, width=4)
        draw.rectangle([x + 1, y + 1, x + size - 2, y + size - 2], outline=colour, width=2)
    elif kind in ("line", "dashed"):
        mid = y + size // 2
        step = 7 if kind == "dashed" else size * 2
        for x0 in range(x, x + size * 2, step):
            draw.line([(x0, mid), (min(x0 + (4 if kind == "dashed" else step) - 1, x + size * 2 - 1), mid)],
                      fill=colour, width=3)
    else:  # skeleton: a bone with its joint, edged as draw_skeleton draws them
        mid = y + size // 2
        draw.line([(x, mid), (x + size * 2 - 1, mid)], fill=dark, width=5)
        draw.line([(x, mid), (x + size * 2 - 1, mid)], fill=colour, width=3)
        draw.ellipse([x + size - 4, mid - 4, x + size + 4, mid + 4], fill=dark)
        draw.ellipse([x + size - 3, mid - 3, x + size + 3, mid + 3], fill=colour)


def legend_strip(entries: Sequence[LegendEntry], *, width: int, font_size: int = 13, pad: int = 6) -> torch.Tensor:
    """A legend: coloured swatches with their labels, left to right, wrapping onto more lines.

    Args:
        entries: ``(label, colour)`` or ``(label, colour, kind)``, ``kind`` in
            :data:`LEGEND_KINDS` (``"patch"`` by default).
        width: width of the strip in pixels.
        font_size: text height in pixels (Pillow's default font).
        pad: margin and spacing in pixels.

    Returns:
        uint8 picture on :data:`PAPER_COLOUR` (height 0 for no entries).

    Shape:
        ``-> (h, width, 3)``.

    Example:
        >>> from hoimask.engine.figures import SEGMENTATION_LEGEND
        >>> legend_strip(SEGMENTATION_LEGEND, width=300).shape[1:]
        torch.Size([300, 3])
    """
    fn = "legend_strip"
    items = _check_entries(entries, fn)
    width = check_int(width, name="width", low=1, fn=fn)
    font_size = check_int(font_size, name="font_size", low=4, fn=fn)
    pad = check_int(pad, name="pad", low=0, fn=fn)
    if not items:
        return torch.full((0, width, 3), 255, dtype=torch.uint8)
    lh = line_height(font_size)
    size = lh
    placed, x, y = [], pad, pad
    for label, colour, kind in items:
        sw = size if kind in ("patch", "box") else size * 2
        w = sw + 5 + text_size(label, font_size)[0]
        if x > pad and x + w > width - pad:
            x, y = pad, y + lh + pad
        placed.append((x, y, sw, label, colour, kind))
        x += w + 3 * pad
    img = Image.new("RGB", (width, y + lh + pad), PAPER_COLOUR)
    draw = ImageDraw.Draw(img)
    for x, y, sw, label, colour, kind in placed:
        _swatch(draw, x, y, size, colour, kind)
        draw_text(draw, (x + sw + 5, y), label, font_size, INK_COLOUR)
    return torch.from_numpy(np.asarray(img).copy())


def _titles(titles: Sequence[str | None] | None, count: int, name: str, fn: str) -> list[str]:
    if titles is None:
        return [""] * count
    if isinstance(titles, (str, bytes)) or not isinstance(titles, Sequence):
        raise DTypeError(f"{fn}(): argument '{name}' expected a sequence of {count} strings, got {titles!r}")
    if len(titles) != count:
        raise ShapeError(f"{fn}(): argument '{name}' expected {count} titles (one per "
                         f"{'row' if name == 'row_titles' else 'column'}), got {len(titles)}")
    return ["" if t is None else str(t) for t in titles]


def label_grid(
    tiles: Sequence[Sequence[torch.Tensor]] | torch.Tensor,
    *,
    row_titles: Sequence[str | None] | None = None,
    column_titles: Sequence[str | None] | None = None,
    title: str | None = None,
    legend: Sequence[LegendEntry] | None = None,
    font_size: int = 13,
    pad: int = 4,
    row_title_width: int = 140,
) -> torch.Tensor:
    """Compose pictures into a grid with titled rows and columns, a title and a legend.

    Each column is as wide as its widest picture and each row as tall as its
    tallest; smaller pictures are centred in their cell. Titles are wrapped at
    word boundaries (column titles to their column's width, row titles to
    ``row_title_width``); ``"\\n"`` starts a new line.

    Args:
        tiles: ``R`` rows of ``C`` uint8 pictures ``(h, w, 3)``, or one
            ``(R, C, h, w, 3)`` uint8 tensor.
        row_titles: ``R`` titles, left of the rows (``None`` entries: none).
        column_titles: ``C`` titles, above the columns.
        title: the figure's title, above everything.
        legend: entries for :func:`legend_strip`, below the grid.
        font_size: text height in pixels (the title is 3 px larger).
        pad: spacing in pixels.
        row_title_width: the widest a row-title column may be, pixels.

    Returns:
        uint8 picture on :data:`PAPER_COLOUR`.

    Shape:
        ``-> (H, W, 3)``.

    Raises:
        ShapeError: rows of different lengths, or a title count that does not match.
        DTypeError: a tile that is not a uint8 ``(h, w, 3)`` tensor.

    Example:
        >>> tile = torch.zeros(32, 48, 3, dtype=torch.uint8)
        >>> fig = label_grid([[tile, tile]], row_titles=["image"], column_titles=["a", "b"],
        ...                  legend=[("hand", (230, 160, 120))])
        >>> fig.dtype, fig.shape[0] > 32, fig.shape[1] > 96
        (torch.uint8, True, True)
    """
    fn = "label_grid"
    if isinstance(tiles, torch.Tensor):
        if tiles.dim() != 5:
            raise ShapeError(f"{fn}(): argument 'tiles' expected a (R, C, h, w, 3) tensor, got shape "
                             f"{tuple(tiles.shape)}")
        tiles = [list(row) for row in tiles]
    if isinstance(tiles, (str, bytes)) or not isinstance(tiles, Sequence) or not tiles:
        raise ShapeError(f"{fn}(): argument 'tiles' expected a non-empty sequence of rows of pictures")
    rows = [list(r) if isinstance(r, Sequence) and not isinstance(r, (str, bytes)) else None for r in tiles]
    if any(r is None for r in rows):
        raise DTypeError(f"{fn}(): argument 'tiles' expected rows that are sequences of pictures")
    R, C = len(rows), len(rows[0])
    if C == 0 or any(len(r) != C for r in rows):
        raise ShapeError(f"{fn}(): argument 'tiles' expected rows of one non-zero length, got lengths "
                         f"{[len(r) for r in rows]}")
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            check_picture(tile, name=f"tiles[{i}][{j}]", fn=fn)
    font_size = check_int(font_size, name="font_size", low=4, fn=fn)
    pad = check_int(pad, name="pad", low=0, fn=fn)
    row_title_width = check_int(row_title_width, name="row_title_width", low=1, fn=fn)
    rtitles = [wrap(t, font_size, row_title_width) for t in _titles(row_titles, R, "row_titles", fn)]
    col_w = [max(int(rows[i][j].shape[1]) for i in range(R)) for j in range(C)]
    ctitles = [wrap(t, font_size, max(col_w[j], 1)) for j, t in enumerate(_titles(column_titles, C, "column_titles",
                                                                                    fn))]
    row_h = [max(max(int(t.shape[0]) for t in rows[i]), text_size(rtitles[i], font_size)[1]) for i in range(R)]
    left = max(text_size(t, font_size)[0] for t in rtitles)
    left = left + 2 * pad if left else 0
    header = max(text_size(t, font_size)[1] for t in ctitles)
    header = header + pad if header else 0
    W = left + sum(col_w) + pad * (C + 1)
    title_text = wrap(title, font_size + 3, max(W - 2 * pad, 1)) if title else ""
    title_h = text_size(title_text, font_size + 3)[1] + pad if title_text else 0
    strip = legend_strip(legend, width=W, font_size=font_size, pad=pad + 2) if legend else None
    top = pad + title_h + header
    H = top + sum(row_h) + pad * R + (0 if strip is None else int(strip.shape[0]))
    img = Image.new("RGB", (W, H), PAPER_COLOUR)
    draw = ImageDraw.Draw(img)
    if title_text:
        tw = text_size(title_text, font_size + 3)[0]
        draw_text(draw, ((W - tw) // 2, pad), title_text, font_size + 3, INK_COLOUR, align="center")
    xs = [left + pad + sum(col_w[:j]) + pad * j for j in range(C)]
    for j, text in enumerate(ctitles):
        tw, th = text_size(text, font_size)
        draw_text(draw, (xs[j] + (col_w[j] - tw) // 2, top - th - pad // 2), text, font_size, INK_COLOUR,
                  align="center")
    y = top
    for i in range(R):
        th = text_size(rtitles[i], font_size)[1]
        draw_text(draw, (pad, y + (row_h[i] - th) // 2), rtitles[i], font_size, INK_COLOUR)
        for j in range(C):
            tile = rows[i][j]
            h, w = int(tile.shape[0]), int(tile.shape[1])
            img.paste(Image.fromarray(tile.detach().cpu().numpy()), (xs[j] + (col_w[j] - w) // 2,
                                                                      y + (row_h[i] - h) // 2))
        y += row_h[i] + pad
    if strip is not None:
        img.paste(Image.fromarray(strip.numpy()), (0, y))
    return torch.from_numpy(np.asarray(img).copy())


def save_figure(path: str | os.PathLike, picture: torch.Tensor | Image.Image) -> Path:
    """Write a picture as PNG, atomically (temporary file, then rename; normal file permissions).

    Args:
        path: destination ``.png``; its folder is created.
        picture: uint8 ``(H, W, 3)`` tensor, or a PIL image.

    Returns:
        The path.

    Shape:
        picture: ``(H, W, 3)``.
    """
    from hoimask.engine.checkpoint import atomic_write

    if not isinstance(picture, Image.Image):
        check_picture(picture, name="picture", fn="save_figure")
        picture = Image.fromarray(picture.detach().cpu().numpy())
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return atomic_write(path, buf.getvalue())
