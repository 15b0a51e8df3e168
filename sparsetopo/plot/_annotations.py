"""Text and axes of the MGE picture, drawn straight onto its pixels with Pillow.

matplotlib drew them before, on a transparent figure laid over the drawing; importing it and
laying its figure out took 0.6-0.9 s of the main job's picture thread (the critical path, longer
than the topometrics it runs beside), while the drawing itself needs no plotting library.
Sizes are in points as in matplotlib (``pt * dpi / 72`` pixels); the font is Pillow's own
(``ImageFont.load_default(size)``: Aileron, a scalable font; it needs Pillow built with FreeType,
as every Pillow wheel is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

BLACK = (0, 0, 0)
SPINE_PT = 0.8  # matplotlib's default axes and tick line widths
TICK_LENGTH_PT, TICK_PAD_PT = 3.5, 3.5
YLABEL_PAD_PT = 4.0


def font(size_pt: float, dpi: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font at ``size_pt`` points for ``dpi``."""
    return ImageFont.load_default(size=max(1, round(size_pt * dpi / 72)))


def rgb8(colour: Sequence[float]) -> tuple[int, int, int]:
    """A 0-1 RGB triple as 0-255 integers."""
    return tuple(int(round(255 * float(c))) for c in colour)


def paste_rotated(page: Image.Image, text: str, fnt, at: tuple[float, float], angle: float,
                  anchor: str, fill: tuple[int, int, int]) -> None:
    """Draw ``text`` onto ``page`` turned ``angle`` degrees counter-clockwise about its point
    ``anchor`` (Pillow's text anchors, e.g. ``"ra"``: right end, ascender line), which lands at
    the page pixel ``at``. The glyphs are rendered upright into a mask, which one affine
    resampling (bicubic) turns; the page is painted through it."""
    left, top, right, bottom = fnt.getbbox(text, anchor=anchor)
    if right <= left or bottom <= top:
        return
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=fnt, fill=255, anchor=anchor)
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    # A point (dx, dy) from the anchor (y down) goes to (dx cos + dy sin, dy cos - dx sin).
    corners = [(x, y) for x in (left, right) for y in (top, bottom)]
    xs = [x * cos + y * sin for x, y in corners]
    ys = [y * cos - x * sin for x, y in corners]
    x0, y0 = math.floor(at[0] + min(xs)), math.floor(at[1] + min(ys))
    size = (math.ceil(at[0] + max(xs)) - x0 + 1, math.ceil(at[1] + max(ys)) - y0 + 1)
    # Output pixel (X, Y) lies at (ox, oy) = (x0 + X - at_x, y0 + Y - at_y) from the anchor;
    # turning it back gives the mask pixel (ox cos - oy sin - left, ox sin + oy cos - top).
    ox, oy = x0 - at[0], y0 - at[1]
    turned = mask.transform(size, Image.Transform.AFFINE,
                            (cos, -sin, ox * cos - oy * sin - left,
                             sin, cos, ox * sin + oy * cos - top),
                            resample=Image.Resampling.BICUBIC)
    page.paste(fill, (x0, y0), turned)


def draw_axes(page: Image.Image, box: tuple[int, int, int, int], ticks: Sequence[int],
              labels: Sequence[str], ylabel: str, dpi: int, label_pt: float,
              ylabel_pt: float) -> None:
    """Left and bottom spines around the drawing ``box = (left, top, width, height)``
    (pixels), an outward tick under every page column of ``ticks``, its label turned 55 degrees
    and ending under the tick (matplotlib's ``ha="right"``, ``rotation_mode="anchor"``), and
    ``ylabel`` turned 90 degrees, centred left of the drawing."""
    left, top, width, height = box
    pt = dpi / 72
    line = max(1, round(SPINE_PT * pt))
    draw = ImageDraw.Draw(page)
    bottom = top + height  # the first row below the drawing
    draw.rectangle((left - line, top, left - 1, bottom + line - 1), fill=BLACK)
    draw.rectangle((left - line, bottom, left + width - 1, bottom + line - 1), fill=BLACK)
    tick_end = bottom + round(TICK_LENGTH_PT * pt)
    half = (line - 1) // 2
    for x in ticks:
        draw.rectangle((x - half, bottom, x - half + line - 1, tick_end), fill=BLACK)
    fnt = font(label_pt, dpi)
    for x, label in zip(ticks, labels, strict=True):
        paste_rotated(page, label, fnt, (x + 0.5, tick_end + TICK_PAD_PT * pt), 55, "ra", BLACK)
    paste_rotated(page, ylabel, font(ylabel_pt, dpi),
                  (left - line - YLABEL_PAD_PT * pt, top + height / 2), 90, "md", BLACK)


def draw_lines(page: Image.Image, lines: Sequence[tuple[str, float, tuple[int, int, int]]],
               dpi: int, top: float, line_px: float) -> None:
    """Centred text lines ``(text, size in points, colour)``, the first one's ascender at pixel
    row ``top``, each next one ``line_px`` lower."""
    draw = ImageDraw.Draw(page)
    for i, (text, size_pt, fill) in enumerate(lines):
        draw.text((page.width / 2, top + i * line_px), text, font=font(size_pt, dpi), fill=fill,
                  anchor="ma")


def draw_legend(page: Image.Image, entries: Sequence[tuple[str, str, tuple[int, int, int]]],
                dpi: int, size_pt: float, right: float, top: float) -> None:
    """One row of legend entries ``(kind, label, colour)``, ``kind`` ``"line"`` (a 1.5 pt
    stroke, two font sizes long) or ``"square"`` (a 4 pt marker), right-aligned to pixel
    column ``right`` with the text's ascender at row ``top``; spacing as matplotlib's
    defaults (handle to text 0.8, between entries 2 font sizes)."""
    fnt = font(size_pt, dpi)
    em = size_pt * dpi / 72
    handle, pad, gap = 2.0 * em, 0.8 * em, 2.0 * em
    widths = [handle + pad + fnt.getlength(label) for _, label, _ in entries]
    x = right - sum(widths) - gap * (len(entries) - 1)
    _, ink_top, _, ink_bottom = fnt.getbbox("Ag", anchor="la")
    middle = top + (ink_top + ink_bottom) / 2
    draw = ImageDraw.Draw(page)
    for (kind, label, fill), w in zip(entries, widths, strict=True):
        if kind == "line":
            half = max(1.0, 1.5 * dpi / 72) / 2
            draw.rectangle((x, middle - half, x + handle, middle + half), fill=fill)
        else:
            half = 2.0 * dpi / 72
            centre = x + handle / 2
            draw.rectangle((centre - half, middle - half, centre + half, middle + half),
                           fill=fill)
        draw.text((x + handle + pad, top), label, font=fnt, fill=BLACK, anchor="la")
        x += w + gap
