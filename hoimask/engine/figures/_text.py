"""Text for figures: Pillow's built-in font (no font files, works offline), measuring and word-wrapping."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

#: Pixels between the lines of a multi-line label.
LINE_SPACING = 2


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` pixels.

    Pillow >= 10.1 with FreeType ships a scalable font (``load_default(size=...)``);
    older or FreeType-less builds fall back to the fixed bitmap font (about 11 px).
    """
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 (no size argument), or no FreeType
        return ImageFont.load_default()


_SCRATCH = ImageDraw.Draw(Image.new("RGB", (1, 1)))


def text_size(text: str, size: int) -> tuple[int, int]:
    """Width and height in pixels of (possibly multi-line) ``text`` drawn by :func:`draw_text`."""
    if not text:
        return 0, 0
    left, _, right, bottom = _SCRATCH.multiline_textbbox((0, 0), text, font=font(size), spacing=LINE_SPACING)
    return right - left, bottom  # from the line's top (ascender space included), so rows of labels align


def line_height(size: int) -> int:
    """Height of one line of text, ascenders to descenders."""
    return text_size("Ag|", size)[1]


def wrap(text: str, size: int, max_width: int) -> str:
    """``text`` with line breaks so that no line is wider than ``max_width`` pixels (words are kept whole
    unless a single word is wider, which is then split)."""
    out: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if text_size(candidate, size)[0] <= max_width:
                line = candidate
                continue
            if line:
                out.append(line)
            while text_size(word, size)[0] > max_width and len(word) > 1:  # split an over-long word
                cut = len(word) - 1
                while cut > 1 and text_size(word[:cut], size)[0] > max_width:
                    cut -= 1
                out.append(word[:cut])
                word = word[cut:]
            line = word
        out.append(line)
    return "\n".join(out)


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int, fill,
              *, align: str = "left") -> None:
    """Draw ``text`` with its top-left corner (the box :func:`text_size` measures) at ``xy``."""
    if not text:
        return
    left = draw.multiline_textbbox((0, 0), text, font=font(size), spacing=LINE_SPACING)[0]
    draw.multiline_text((xy[0] - left, xy[1]), text, fill=tuple(fill), font=font(size), spacing=LINE_SPACING,
                        align=align)


def vertical_text(text: str, size: int, fill, background) -> Image.Image:
    """``text`` on a small image, rotated a quarter turn anticlockwise (for a y-axis label)."""
    w, h = text_size(text, size)
    img = Image.new("RGB", (max(w, 1), max(h, 1)), tuple(background))
    draw_text(ImageDraw.Draw(img), (0, 0), text, size, tuple(fill))
    return img.rotate(90, expand=True)
