"""Drawing primitives of mednet's PNG figures, with numpy and Pillow: a canvas, placed slices, outlines, PNG.

:class:`Canvas` holds RGB pixels and queued texts (antialiased, matplotlib's bundled DejaVu
Sans, drawn by Pillow when saved); :func:`place` fits a ``(rows, cols)`` slice into a
:class:`Box` keeping its physical aspect ratio (nearest neighbour, as matplotlib's
``imshow(aspect=...)``); :func:`outline` and :func:`draw_outline` draw a mask's boundary as
a band of pixels (dashed or not); :func:`png_bytes` encodes the PNG. Used by
:mod:`mednet.report.overview` (the case overview and the synthetic cohort's preview), where
the reasons for not drawing with matplotlib are given.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mednet.io.atomic import atomic_path
from mednet.io.grid import bounding_box

__all__ = ["DPI", "POINT", "Box", "Canvas", "Placement", "draw_outline", "load_font", "outline", "place", "png_bytes",
           "rgb"]  # fmt: skip

#: Pixels per inch of the PNGs (panels of 3.2 inches: 288 pixels).
DPI = 90
#: Pixels per typographic point: font sizes in points, as matplotlib's.
POINT = DPI / 72


def rgb(colour) -> tuple[int, int, int]:
    """A matplotlib colour (name, hex or RGB(A) floats) as 0..255 RGB."""
    from matplotlib.colors import to_rgba

    return tuple(round(255 * c) for c in to_rgba(colour)[:3])


@functools.lru_cache(maxsize=32)
def load_font(pixels: float, bold: bool = False):
    """Matplotlib's bundled DejaVu Sans (bold or not) at ``pixels`` pixels (em size), for Pillow."""
    import matplotlib
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    if not path.exists():  # an unusual matplotlib install: ask its font manager
        from matplotlib.font_manager import FontProperties, findfont

        path = findfont(FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    return ImageFont.truetype(str(path), size=pixels)


def _fitted(text: str, points: float, bold: bool, width: float | None) -> tuple[str, object]:
    """The text and a font for it at ``points``, smaller (down to 3/4) or cut with "…" to fit ``width`` pixels."""
    font = load_font(points * POINT, bold)
    if width is None or font.getlength(text) <= width:
        return text, font
    smaller = load_font(max(points * 0.75, points * width / font.getlength(text)) * POINT, bold)
    while len(text) > 1 and smaller.getlength(text) > width:
        text = text[:-2] + "…"
    return text, smaller


@dataclass
class Canvas:
    """An RGB picture being drawn: numpy pixels at once, texts queued and drawn by Pillow when saved.

    Attributes:
        pixels: ``(height, width, 3)`` uint8 RGB, white to start with.
        texts: the queued texts: ``(x, y, text, font, RGB, Pillow anchor)``.
    """

    width: int
    height: int
    pixels: np.ndarray = field(init=False)
    texts: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pixels = np.full((self.height, self.width, 3), 255, np.uint8)

    def text(self, x: float, y: float, text: str, *, points: float, colour="black", anchor: str = "la",
             bold: bool = False, width: float | None = None) -> None:  # fmt: skip
        """Queue a text at ``(x, y)`` pixels, placed by a Pillow ``anchor``; made to fit ``width`` pixels when given.

        Args:
            x: column of the anchor.
            y: row of the anchor.
            text: the text.
            points: its font size in points (as matplotlib's ``fontsize``).
            colour: a matplotlib colour.
            anchor: Pillow's two-letter text anchor (``"ma"``: centred, ascender at ``y``).
            bold: bold DejaVu Sans.
            width: shrink (to 3/4 at most) or cut the text to this many pixels.
        """
        text, font = _fitted(text, points, bold, width)
        self.texts.append((x, y, text, font, rgb(colour), anchor))

    def fill(self, rows: slice, cols: slice, colour, alpha: float = 1.0) -> None:
        """Fill the pixels ``[rows, cols]`` with a colour (blended with ``alpha``)."""
        value = np.array(rgb(colour), float)
        if alpha >= 1:
            self.pixels[rows, cols] = value.astype(np.uint8)
        else:
            here = self.pixels[rows, cols].astype(float)
            self.pixels[rows, cols] = np.round(here * (1 - alpha) + value * alpha).astype(np.uint8)

    def save(self, out: os.PathLike | str) -> Path:
        """Draw the queued texts and write the PNG atomically (see :func:`png_bytes`)."""
        from PIL import Image, ImageDraw

        picture = Image.fromarray(self.pixels, "RGB")
        draw = ImageDraw.Draw(picture)
        for x, y, text, font, colour, anchor in self.texts:
            draw.text((x, y), text, fill=colour, font=font, anchor=anchor)
        data = png_bytes(np.asarray(picture))
        with atomic_path(out, suffix=".png", parents=True) as tmp:
            tmp.write_bytes(data)
        return Path(out)


def png_bytes(pixels: np.ndarray, level: int = 1) -> bytes:
    """An 8-bit RGB PNG of ``(height, width, 3)`` uint8 pixels, at :data:`DPI`: every row "Up"-filtered, zlib ``level``.

    Not Pillow's encoder: it tries every filter on every row, 35 to 60 ms for an overview of
    1152 x 639 pixels whatever its ``compress_level``. One filter computed with numpy and zlib
    at level 1 take 10 to 18 ms (the benchmark's noisy synthetic case: 340 kB; Pillow at
    level 3: 300 kB, 60 ms; zlib level 3: 310 kB, 30 ms).
    """
    import struct
    import zlib

    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(height, 3 * width)
    raw = np.empty((height, 1 + 3 * width), np.uint8)
    raw[:, 0] = 2  # "Up": each byte less the one above it (the first row: less zero)
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    per_metre = round(DPI / 0.0254)
    return b"".join([b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
                     chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
                     chunk(b"IDAT", zlib.compress(raw.tobytes(), level)), chunk(b"IEND", b"")])  # fmt: skip


class Box(NamedTuple):
    """A panel's box in the canvas, in (fractional) pixels from the top left."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class Placement:
    """Where a ``(rows, cols)`` slice is drawn: its pixels' rectangle and, per pixel, the slice's row or column.

    Attributes:
        top: first canvas row.
        left: first canvas column.
        rows: ``(height,)`` the slice row each canvas row shows (nearest neighbour).
        cols: ``(width,)`` the slice column each canvas column shows.
    """

    top: int
    left: int
    rows: np.ndarray
    cols: np.ndarray

    @property
    def height(self) -> int:
        """Rows of canvas pixels."""
        return len(self.rows)

    @property
    def width(self) -> int:
        """Columns of canvas pixels."""
        return len(self.cols)

    def region(self) -> tuple[slice, slice]:
        """The canvas pixels ``(rows, cols)`` the slice covers."""
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def scale(self, plane: np.ndarray) -> np.ndarray:
        """A ``(rows, cols, ...)`` slice at canvas resolution: ``(height, width, ...)``, nearest neighbour."""
        return plane[self.rows[:, None], self.cols[None, :]]


def place(box: Box, shape: tuple[int, int], aspect: float) -> Placement:
    """Fit a ``(rows, cols)`` slice into ``box``, centred, keeping its physical aspect ratio.

    Args:
        box: the panel's box.
        shape: ``(rows, cols)`` of the slice.
        aspect: a pixel's height over its width (row spacing / column spacing).

    Returns:
        The placement: as matplotlib's ``imshow(aspect=aspect)`` in axes of ``box`` (anchored at the centre).
    """
    rows, cols = max(int(shape[0]), 1), max(int(shape[1]), 1)
    scale = min(box.width / cols, box.height / (rows * aspect))
    width, height = cols * scale, rows * aspect * scale
    left, top = box.left + (box.width - width) / 2, box.top + (box.height - height) / 2
    x0, y0 = round(left), round(top)
    n_cols, n_rows = max(round(left + width) - x0, 1), max(round(top + height) - y0, 1)
    return Placement(y0, x0, np.minimum(((np.arange(n_rows) + 0.5) * rows / n_rows).astype(int), rows - 1),
                     np.minimum(((np.arange(n_cols) + 0.5) * cols / n_cols).astype(int), cols - 1))  # fmt: skip


def _erode(mask: np.ndarray) -> np.ndarray:
    """``mask`` less its pixels with a 4-neighbour outside it (beyond the edge counts as inside)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its pixels' 4-neighbours."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def outline(mask: np.ndarray, inside: int = 1, outside: int = 1, dash: int = 0,
            origin: tuple[int, int] = (0, 0)) -> np.ndarray:  # fmt: skip
    """The boundary of a ``(rows, cols)`` mask as a band of pixels: ``inside`` pixels within it, ``outside`` around.

    Nothing is drawn along the picture's edge (a mask cut by it stays open there, as a contour would).

    Args:
        mask: ``(rows, cols)`` bool, at the resolution drawn.
        inside: the band's pixels within the mask.
        outside: the band's pixels outside it.
        dash: dashed when positive: every other ``dash x dash`` block of pixels left out (a
            checkerboard: dashes along rows, columns and diagonals).
        origin: the mask's first pixel in the panel (the dashes' pattern is the panel's).

    Returns:
        ``(rows, cols)`` bool: the band.
    """
    inner, outer = mask, mask
    for _ in range(inside):
        inner = _erode(inner)
    for _ in range(outside):
        outer = _dilate(outer)
    band = outer & ~inner
    if dash > 0:
        rows, cols = np.ogrid[origin[0] : origin[0] + mask.shape[0], origin[1] : origin[1] + mask.shape[1]]
        band &= (rows // dash + cols // dash) % 2 == 0
    return band


def draw_outline(canvas: Canvas, where: Placement, mask: np.ndarray, colour, *, inside: int = 1, outside: int = 1,
                 dash: int = 0) -> None:  # fmt: skip
    """Outline a slice's mask in a panel: :func:`outline` of the mask scaled to the panel, in ``colour``.

    Args:
        canvas: the canvas.
        where: the panel's slice placement.
        mask: ``(rows, cols)`` bool at the slice's resolution.
        colour: an RGBA or matplotlib colour.
        inside: the outline's pixels within the mask.
        outside: its pixels outside the mask.
        dash: dashed in blocks of this many pixels when positive.
    """
    around = bounding_box(mask)
    if around is None:
        return
    margin = outside + 1  # the pixels around the mask's that the outline may reach, and one more (outside it)
    (top, bottom), (left, right) = ((max(int(np.searchsorted(shown, span.start)) - margin, 0),
                                     min(int(np.searchsorted(shown, span.stop)) + margin, len(shown)))
                                    for shown, span in zip((where.rows, where.cols), around, strict=True))  # fmt: skip
    window = Placement(where.top + top, where.left + left, where.rows[top:bottom], where.cols[left:right])
    band = outline(window.scale(mask), inside, outside, dash, origin=(top, left))  # the mask's part of the panel only
    canvas.pixels[window.region()][band] = rgb(colour)
